"""The CloudFormation stack: lint, created and deleted on moto, and the deployer's policy."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployments.aws import stack
from deployments.aws.permissions import (
    BOUNDARY_NAME,
    BOUNDED_IAM_ACTIONS,
    NOT_USED,
    RESOURCE_ACTIONS,
    TAGGING_ACTIONS,
    boundary_policy,
    deployer_policy,
    handler_permissions,
    required_actions,
)

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deployments/aws/deployer-policy.json"
# Resource types moto's CloudFormation does not model (it skips them with a warning).
NOT_IN_MOTO = {"AWS::SecretsManager::Secret", "AWS::SQS::QueuePolicy", "AWS::Lambda::Url"}


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(stack.TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def template_types() -> set[str]:
    return stack.resource_types(stack.TEMPLATE.read_text())


def test_every_resource_type_has_its_actions() -> None:
    assert template_types() <= set(RESOURCE_ACTIONS)


def test_deployer_policy_file_is_generated_from_the_template() -> None:
    assert json.loads(POLICY.read_text()) == deployer_policy(template_types())


def allowed_actions(policy: dict[str, Any]) -> set[str]:
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_deployer_policy_covers_the_stack_and_has_no_wildcards() -> None:
    policy = json.loads(POLICY.read_text())
    actions = allowed_actions(policy)
    assert required_actions(template_types()) <= actions
    assert not [a for a in actions if "*" in a], "no service or action wildcards"
    for statement in policy["Statement"]:
        if any(a.startswith("iam:") for a in statement["Action"]):
            assert statement["Resource"] != "*", "IAM actions are scoped to the stack's roles"


def test_worker_role_allows_no_wildcard_actions() -> None:
    template = stack.load_template(stack.TEMPLATE.read_text())
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Action" not in statement:  # an !If wrapper
                    continue
                listed = statement["Action"]
                for action in [listed] if isinstance(listed, str) else listed:
                    assert "*" not in action, f"{name}: {action}"


def test_repository_lifecycle_expires_old_images() -> None:
    repository = stack.load_template(stack.TEMPLATE.read_text())["Resources"]["Repository"]
    text = repository["Properties"]["LifecyclePolicy"]["LifecyclePolicyText"]["Sub"]
    rules = json.loads(text.replace("${ImagesToKeep}", "10"))["rules"]
    assert {r["selection"]["tagStatus"] for r in rules} == {"untagged", "any"}
    assert all(r["action"]["type"] == "expire" for r in rules)


@pytest.mark.usefixtures("aws")
def test_stack_is_created_and_deleted() -> None:
    name = "numerai-prefect-test"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns about the types it does not model
        outputs = stack.deploy(
            name, {"PrefectApiUrl": "http://prefect.internal:4200/api"}, poll_seconds=1
        )
    assert outputs["ClusterArn"].endswith(f":cluster/{name}")
    assert outputs["EventsQueueName"] == f"{name}-ecs-events"
    cfn = boto3.client("cloudformation")
    created = {
        r["ResourceType"]
        for r in cfn.describe_stack_resources(StackName=name)["StackResources"]
        if r.get("ResourceType")
    }
    assert created == template_types() - NOT_IN_MOTO - {
        "AWS::Lambda::Function",
        "AWS::Lambda::Permission",
    }
    ecr = boto3.client("ecr")
    assert ecr.describe_repositories(repositoryNames=[name])["repositories"]
    logs = boto3.client("logs")
    groups = logs.describe_log_groups(logGroupNamePrefix="/numerai-prefect/")["logGroups"]
    assert [g.get("retentionInDays") for g in groups] == [30]
    ecs = boto3.client("ecs")
    services = ecs.describe_services(cluster=name, services=[f"{name}-worker"])["services"]
    assert services[0]["desiredCount"] == 1  # moto's CloudFormation drops LaunchType
    worker = ecs.describe_task_definition(taskDefinition=services[0]["taskDefinition"])
    environment = {
        e["name"]: e["value"]
        for e in worker["taskDefinition"]["containerDefinitions"][0]["environment"]
    }
    assert (
        environment["PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME"] == f"{name}-ecs-events"
    )

    stack.delete(name, poll_seconds=1)
    assert stack.status(name) is None
    assert name not in [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


@pytest.mark.usefixtures("aws")
def test_redeploying_keeps_every_parameter_not_given() -> None:
    name = "numerai-prefect-again"
    api = "http://prefect.internal:4200/api"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stack.deploy(name, {"PrefectApiUrl": api, "LogRetentionDays": "7"}, poll_seconds=1)
        first = stack.current_parameters(name)
        assert first["PrefectApiUrl"] == api and first["RunWorker"] == "true"
        # What `setup --aws` without options sends: nothing; every value is the stack's own.
        stack.deploy(name, {}, poll_seconds=1)
        assert stack.current_parameters(name) == first
        stack.deploy(name, {"RunWorker": "false"}, poll_seconds=1)
        assert stack.current_parameters(name) == {**first, "RunWorker": "false"}
        with pytest.raises(ValueError, match="no parameter Nope"):
            stack.deploy(name, {"Nope": "1"}, poll_seconds=1)
    stack.delete(name, poll_seconds=1)


def test_update_request_uses_previous_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # What CloudFormation itself is sent on an update (moto accepts more than it does).
    sent: dict[str, Any] = {}

    class Cfn:
        def describe_stacks(self, StackName: str) -> dict[str, Any]:
            keys = ["VpcId", "SubnetIds", "PrefectApiUrl", "WebhookReceiver", "ReceiverImageTag"]
            params = [{"ParameterKey": k, "ParameterValue": "x"} for k in keys]
            return {"Stacks": [{"StackStatus": "UPDATE_COMPLETE", "Parameters": params}]}

        def update_stack(self, **request: Any) -> None:
            sent.update(request)

        def get_waiter(self, name: str) -> Any:
            return type("W", (), {"wait": lambda *a, **k: None})()

    class Session:
        def client(self, service: str) -> Cfn:
            return Cfn()

    monkeypatch.setattr(stack, "outputs", lambda *a, **k: {})
    stack.deploy("numerai-prefect", {"RunWorker": "false"}, session=Session())
    by_key = {p["ParameterKey"]: p for p in sent["Parameters"]}
    assert by_key.pop("RunWorker") == {"ParameterKey": "RunWorker", "ParameterValue": "false"}
    assert all(p == {"ParameterKey": k, "UsePreviousValue": True} for k, p in by_key.items())
    assert set(by_key) == {
        "VpcId",
        "SubnetIds",
        "PrefectApiUrl",
        "WebhookReceiver",
        "ReceiverImageTag",
    }


def test_worker_service_rolls_back_a_failed_deployment() -> None:
    service = stack.load_template(stack.TEMPLATE.read_text())["Resources"]["WorkerService"]
    breaker = service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}


BOUNDARY = ROOT / "deployments/aws/boundary-policy.json"


def test_deployer_policy_covers_every_handler_permission_the_template_needs() -> None:
    # CloudFormation's registry schemas list what creating, reading, updating and deleting each
    # resource type calls; the policy allows all of it but what NOT_USED names.
    allowed = allowed_actions(json.loads(POLICY.read_text()))
    for resource_type in template_types():
        needed = handler_permissions(resource_type) - set(NOT_USED)
        assert needed, resource_type
        assert needed <= allowed, (resource_type, sorted(needed - allowed))


def _set_properties(properties: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every property set (Code.S3Bucket, ...)."""
    if not isinstance(properties, dict):
        return set()
    paths = set()
    for key, value in properties.items():
        paths.add(prefix + key)
        paths |= _set_properties(value, f"{prefix}{key}.")
    return paths


def test_what_the_policy_leaves_out_is_for_properties_the_template_does_not_set() -> None:
    template = stack.load_template(stack.TEMPLATE.read_text())
    kms = {"KmsKeyArn", "KmsKeyId", "KmsMasterKeyId", "EncryptionConfiguration", "Configuration"}
    for action, (types, prop) in NOT_USED.items():
        assert types, action
        for name, resource in template["Resources"].items():
            if resource["Type"] not in types:
                continue
            props = _set_properties(resource.get("Properties", {}))
            unset = kms if prop == "KMS keys" else {prop}
            assert not props & unset, (action, name, props & unset)
        # each one is a handler permission of the types it names: nothing left out by mistake
        assert any(action in handler_permissions(t) for t in types), action


def test_created_roles_carry_the_boundary_and_stay_inside_it() -> None:
    template = stack.load_template(stack.TEMPLATE.read_text())
    boundary = json.loads(BOUNDARY.read_text())
    assert boundary == boundary_policy()
    bounded = allowed_actions(boundary)
    roles = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles
    for name, role in roles.items():
        arn = role["Properties"]["PermissionsBoundary"]["Sub"]
        assert arn.endswith(":policy/${PermissionsBoundaryName}"), name
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                if "Action" not in statement:
                    continue
                listed = statement["Action"]
                for action in [listed] if isinstance(listed, str) else listed:
                    assert action in bounded, (name, action)
    default = template["Parameters"]["PermissionsBoundaryName"]["Default"]
    assert default == BOUNDARY_NAME


def test_deployer_writes_roles_only_with_the_boundary_and_never_lifts_it() -> None:
    policy = json.loads(POLICY.read_text())
    for statement in policy["Statement"]:
        writes = set(statement["Action"]) & BOUNDED_IAM_ACTIONS
        if writes:
            condition = statement["Condition"]["StringLike"]["iam:PermissionsBoundary"]
            assert condition.endswith(f":policy/{BOUNDARY_NAME}")
        assert "iam:DeleteRolePermissionsBoundary" not in statement["Action"]
        assert "iam:CreatePolicyVersion" not in statement["Action"]
    assert {"iam:CreateRole", "iam:PutRolePolicy"} <= allowed_actions(policy)


def test_tag_on_create_conditions_use_each_services_documented_key() -> None:
    statements = {s["Sid"]: s for s in json.loads(POLICY.read_text())["Statement"]}
    # EC2: the group must carry the stack's tag when made, and tagging is allowed only as part
    # of that create (ec2:CreateAction); other changes only to groups that carry the tag.
    assert statements["Ec2CreateTaggedGroup"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/project": "numerai-prefect"}
    }
    assert statements["Ec2TagOnCreate"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}
    }
    assert statements["Ec2StackGroups"]["Condition"] == {
        "StringEquals": {"aws:ResourceTag/project": "numerai-prefect"}
    }
    assert "ec2:DeleteSecurityGroup" in statements["Ec2StackGroups"]["Action"]
    assert not [
        a for a in statements["Unscoped"]["Action"] if a.startswith("ec2:") and "Describe" not in a
    ]
    # Other services: tagging actions take only the stack's keys (aws:TagKeys).
    tagged = [s for sid, s in statements.items() if sid.endswith("Tags")]
    assert {a for s in tagged for a in s["Action"]} == TAGGING_ACTIONS & allowed_actions(
        {"Statement": tagged}
    )
    for statement in tagged:
        assert statement["Condition"] == {
            "ForAllValues:StringLike": {"aws:TagKeys": ["project", "aws:cloudformation:*"]}
        }
    # The worker tags tasks only as it starts them (ECS's key for tagging on create).
    role = stack.load_template(stack.TEMPLATE.read_text())["Resources"]["WorkerRole"]
    [tagging] = [
        s
        for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if s["Action"] == "ecs:TagResource"
    ]
    assert tagging["Condition"] == {
        "StringEquals": {"ecs:CreateAction": ["RunTask", "RegisterTaskDefinition"]}
    }
