"""The ECS base job template and the size presets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect_aws.workers.ecs_worker import ECSWorker

from deployments.aws.pool import (
    DEFAULT_SIZE,
    SIZES,
    base_job_template,
    fargate_supports,
    load_job_template,
    size,
    size_table,
)

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "ClusterArn": "arn:aws:ecs:us-east-1:123456789012:cluster/numerai-prefect",
    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/numerai-prefect-ExecutionRole-X",
    "TaskRoleArn": "arn:aws:iam::123456789012:role/numerai-prefect-TaskRole-X",
    "VpcId": "vpc-1",
    "SubnetIds": "subnet-1,subnet-2",
    "SecurityGroupId": "sg-1",
    "LogGroupName": "/numerai-prefect/numerai-prefect",
    "NumeraiKeysSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf",
    "RepositoryUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/numerai-prefect",
}


def ecs_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "deployments/aws/prefect-ecs.yaml").read_text())
    return data


def test_every_preset_is_a_fargate_size() -> None:
    assert not [name for name, (cpu, mem) in SIZES.items() if not fargate_supports(cpu, mem)]
    assert not fargate_supports(8192, 30720)  # numerai-cli's gen-xl: not offered by Fargate
    assert DEFAULT_SIZE in SIZES
    assert "| `mem-md` | 2 | 16 |" in size_table()


def test_template_extends_prefect_aws_default() -> None:
    default = ECSWorker.get_default_base_job_template()
    ours = load_job_template()
    assert set(default["variables"]["properties"]) <= set(ours["variables"]["properties"])
    assert set(default["job_configuration"]) == set(ours["job_configuration"])
    container = ours["job_configuration"]["task_definition"]["containerDefinitions"][0]
    assert container["secrets"] == "{{ numerai_secrets }}"
    variables = ours["variables"]["properties"]
    assert (variables["cpu"]["default"], variables["memory"]["default"]) == SIZES[DEFAULT_SIZE]
    assert variables["numerai_secrets"]["default"] == []


def test_template_filled_from_the_stack_holds_references_only() -> None:
    template = base_job_template(OUTPUTS)
    defaults = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    assert defaults["cluster"] == OUTPUTS["ClusterArn"]
    assert defaults["network_configuration"]["subnets"] == ["subnet-1", "subnet-2"]
    assert defaults["cloudwatch_logs_options"]["awslogs-group"] == OUTPUTS["LogGroupName"]
    secrets = {s["name"]: s["valueFrom"] for s in defaults["numerai_secrets"]}
    arn = OUTPUTS["NumeraiKeysSecretArn"]
    assert secrets == {
        "NUMERAI_PUBLIC_ID": f"{arn}:public_id::",
        "NUMERAI_SECRET_KEY": f"{arn}:secret_key::",
    }
    assert "numerai" not in str(defaults["env"]).lower()


def test_deployment_sizes_match_the_presets() -> None:
    config = ecs_yaml()
    assert {k: (v["cpu"], v["memory"]) for k, v in config["definitions"]["sizes"].items()} == SIZES
    for deployment in config["deployments"]:
        variables = deployment["work_pool"]["job_variables"]
        assert size(DEFAULT_SIZE).items() <= variables.items()
        # No secret in a deployment's stored variables: sizes, the image and the heartbeat.
        assert set(variables) <= {"cpu", "memory", "image", "env"}
        assert variables.get("env", {}) == {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}


def test_ecs_deployments_mirror_the_root_ones() -> None:
    root = {
        d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    }
    for mine in ecs_yaml()["deployments"]:
        theirs = root[mine["name"]]
        assert mine["entrypoint"] == theirs["entrypoint"]
        assert mine.get("schedules") == theirs.get("schedules")


def test_a_prefect_cloud_key_is_referenced_by_its_secret_arn() -> None:
    assert (
        base_job_template(OUTPUTS)["variables"]["properties"]["prefect_api_key_secret_arn"][
            "default"
        ]
        is None
    )  # self-hosted server: no key at all
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:numerai-prefect/prefect-api-key-X"
    template = base_job_template({**OUTPUTS, "PrefectApiKeySecretArn": arn})
    variables = template["variables"]["properties"]
    assert variables["prefect_api_key_secret_arn"]["default"] == arn
    config = template["job_configuration"]
    assert config["prefect_api_key_secret_arn"] == "{{ prefect_api_key_secret_arn }}"
