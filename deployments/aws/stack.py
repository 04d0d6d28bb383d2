"""Create, read and delete the CloudFormation stack of stack.yaml (used by `setup --aws`).

    python -m deployments.aws.stack deploy [--name numerai-prefect] [--param Key=Value ...]
    python -m deployments.aws.stack outputs|delete [--name numerai-prefect]

Keys and the AWS endpoint come from boto3's usual environment (AWS_PROFILE, AWS_REGION,
AWS_ENDPOINT_URL for a moto server in tests).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

TEMPLATE = Path(__file__).resolve().parent / "stack.yaml"
DEFAULT_STACK = "numerai-prefect"
CAPABILITIES = ["CAPABILITY_IAM"]
# Every resource that takes tags gets this one (CloudFormation passes stack tags on); the
# deployer policy requires it where a service lets a policy look at tags (see permissions.py).
TAG_KEY, TAG_VALUE = "project", "numerai-prefect"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _any_tag)


def load_template(text: str) -> dict[str, Any]:
    """The template as data (short tags become {"Ref": ...}-like mappings)."""
    data: dict[str, Any] = yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


def resource_types(text: str) -> set[str]:
    """The CloudFormation resource types a template declares."""
    return {r["Type"] for r in load_template(text)["Resources"].values()}


def default_network(session: boto3.Session | None = None) -> tuple[str, list[str]]:
    """The default VPC and its subnets (what the stack's VpcId/SubnetIds take when not given)."""
    ec2 = (session or boto3.Session()).client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise RuntimeError("no default VPC in this region: pass VpcId and SubnetIds")
    vpc_id = vpcs[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    return vpc_id, sorted(s["SubnetId"] for s in subnets)


def _stack_status(cfn: Any, name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return str(stacks[0]["StackStatus"]) if stacks else None


def changed_at(name: str = DEFAULT_STACK, *, session: boto3.Session | None = None) -> str | None:
    """When the stack was last created or updated (None: no stack), to tell an update happened."""
    cfn = (session or boto3.Session()).client("cloudformation")
    if _stack_status(cfn, name) is None:
        return None
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return str(stack.get("LastUpdatedTime") or stack["CreationTime"])


def status(name: str = DEFAULT_STACK, *, session: boto3.Session | None = None) -> str | None:
    """The stack's status, or None when there is no such stack."""
    return _stack_status((session or boto3.Session()).client("cloudformation"), name)


def template_parameters(text: str | None = None) -> dict[str, str | None]:
    """The parameters stack.yaml declares, with their defaults (None: none)."""
    declared = load_template(text or TEMPLATE.read_text()).get("Parameters", {})
    return {k: None if "Default" not in v else str(v["Default"]) for k, v in declared.items()}


def _previous_parameters(cfn: Any, name: str) -> set[str]:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"] for p in stack.get("Parameters", [])}


def deploy(
    name: str = DEFAULT_STACK,
    parameters: Mapping[str, str] | None = None,
    *,
    session: boto3.Session | None = None,
    poll_seconds: int = 10,
) -> dict[str, str]:
    """Create the stack, or update it when it exists; wait; return its outputs.

    An update changes only the parameters given: every other one keeps its value
    (UsePreviousValue), so re-running never turns off the worker or the receiver, nor moves the
    stack to other subnets. A parameter the stack did not have yet takes the template's default.
    A new stack is given every parameter, defaults included, so that it records them all.
    """
    session = session or boto3.Session()
    cfn = session.client("cloudformation")
    text = TEMPLATE.read_text()
    declared = template_parameters(text)
    params = dict(parameters or {})
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"stack.yaml has no parameter {', '.join(unknown)}")
    status = _stack_status(cfn, name)
    creating = status is None or status == "ROLLBACK_COMPLETE"
    kept: list[str] = []
    if creating:
        if "VpcId" not in params or "SubnetIds" not in params:
            vpc_id, subnets = default_network(session)
            params.setdefault("VpcId", vpc_id)
            params.setdefault("SubnetIds", ",".join(subnets))
        params = {k: v for k, v in declared.items() if v is not None} | params
    else:
        kept = sorted((set(declared) & _previous_parameters(cfn, name)) - set(params))
    listed: list[dict[str, Any]] = [
        {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())
    ]
    listed += [{"ParameterKey": k, "UsePreviousValue": True} for k in kept]
    request: dict[str, Any] = {
        "StackName": name,
        "TemplateBody": text,
        "Parameters": listed,
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": TAG_KEY, "Value": TAG_VALUE}],
    }
    waiter_config = {"Delay": poll_seconds, "MaxAttempts": max(1, 1800 // poll_seconds)}
    if creating:
        if status == "ROLLBACK_COMPLETE":
            delete(name, session=session, poll_seconds=poll_seconds)
        cfn.create_stack(**request, OnFailure="ROLLBACK")
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig=waiter_config)
    else:
        try:
            cfn.update_stack(**request)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
        else:
            cfn.get_waiter("stack_update_complete").wait(StackName=name, WaiterConfig=waiter_config)
    return outputs(name, session=session)


def current_parameters(
    name: str = DEFAULT_STACK, *, session: boto3.Session | None = None
) -> dict[str, str]:
    """The stack's current parameter values by key."""
    cfn = (session or boto3.Session()).client("cloudformation")
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}


def outputs(name: str = DEFAULT_STACK, *, session: boto3.Session | None = None) -> dict[str, str]:
    """The stack's outputs by key."""
    cfn = (session or boto3.Session()).client("cloudformation")
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def delete(
    name: str = DEFAULT_STACK, *, session: boto3.Session | None = None, poll_seconds: int = 10
) -> None:
    """Delete the stack and everything in it (the ECR repository is emptied first by AWS)."""
    cfn = (session or boto3.Session()).client("cloudformation")
    if _stack_status(cfn, name) is None:
        return
    cfn.delete_stack(StackName=name)
    cfn.get_waiter("stack_delete_complete").wait(
        StackName=name,
        WaiterConfig={"Delay": poll_seconds, "MaxAttempts": max(1, 1800 // poll_seconds)},
    )


def read_secret(arn: str, *, session: boto3.Session | None = None) -> str | None:
    """A secret's current string value, or None when the secret does not exist."""
    client = (session or boto3.Session()).client("secretsmanager")
    try:
        return str(client.get_secret_value(SecretId=arn)["SecretString"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return None
        raise


def put_secret(arn: str, value: str, *, session: boto3.Session | None = None) -> str | None:
    """Store a new value unless the secret already holds it; the new version's id, or None."""
    if read_secret(arn, session=session) == value:
        return None
    client = (session or boto3.Session()).client("secretsmanager")
    return str(client.put_secret_value(SecretId=arn, SecretString=value)["VersionId"])


def numerai_keys_value(public_id: str, secret_key: str) -> str:
    """The JSON the keys secret holds; the pool's ECS secrets read its two fields."""
    return json.dumps({"public_id": public_id, "secret_key": secret_key})


def put_numerai_keys(
    secret_arn: str, public_id: str, secret_key: str, *, session: boto3.Session | None = None
) -> bool:
    """Store the Numerai keys in the stack's secret (the only place on AWS that holds them).

    Returns whether they changed.
    """
    value = numerai_keys_value(public_id, secret_key)
    return put_secret(secret_arn, value, session=session) is not None


def prefect_api_key_secret_name(stack_name: str) -> str:
    """The secret `setup --aws` keeps a Prefect Cloud API key in, beside the stack's own."""
    return f"{stack_name}/prefect-api-key"


def put_prefect_api_key(
    stack_name: str, api_key: str, *, session: boto3.Session | None = None
) -> tuple[str, str | None]:
    """Create or update the Prefect API key secret; its ARN and the new version's id (or None).

    It lives outside the stack so that it holds the key before the stack's worker, which reads
    it at start, is created.
    """
    client = (session or boto3.Session()).client("secretsmanager")
    name = prefect_api_key_secret_name(stack_name)
    try:
        arn = str(client.describe_secret(SecretId=name)["ARN"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        created = client.create_secret(
            Name=name,
            Description="Prefect Cloud API key of the numerai-prefect stack's worker, tasks and "
            "receiver (numerai-prefect setup --aws)",
            SecretString=api_key,
            Tags=[{"Key": TAG_KEY, "Value": TAG_VALUE}],
        )
        return str(created["ARN"]), str(created["VersionId"])
    return arn, put_secret(arn, api_key, session=session)


def delete_prefect_api_key(stack_name: str, *, session: boto3.Session | None = None) -> bool:
    """Delete the Prefect API key secret now (teardown); False when there is none."""
    client = (session or boto3.Session()).client("secretsmanager")
    try:
        client.delete_secret(
            SecretId=prefect_api_key_secret_name(stack_name), ForceDeleteWithoutRecovery=True
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return False
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: deploy, outputs or delete."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=["deploy", "outputs", "delete"])
    parser.add_argument("--name", default=DEFAULT_STACK)
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.command == "delete":
        delete(args.name)
        return 0
    if args.command == "deploy":
        params = dict(p.split("=", 1) for p in args.param)
        print(json.dumps(deploy(args.name, params), indent=2))
    else:
        print(json.dumps(outputs(args.name), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
