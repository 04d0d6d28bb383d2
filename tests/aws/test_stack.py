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
from deployments.aws.permissions import RESOURCE_ACTIONS, deployer_policy, required_actions

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
