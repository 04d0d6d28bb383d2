"""The ECS work pool: its base job template, filled from the stack, and the task size presets."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model.sizes import DEFAULT_SIZE, SIZES

__all__ = ["DEFAULT_SIZE", "SIZES", "apply_work_pool", "base_job_template", "size"]

HERE = Path(__file__).resolve().parent
JOB_TEMPLATE = HERE / "ecs-job-template.json"
POOL_TYPE = "ecs"

# Fargate's CPU -> allowed memory (MiB): (min, max, step).
_FARGATE_MEMORY: dict[int, tuple[int, int, int]] = {
    256: (512, 2048, 512),  # 512, 1024, 2048 only; 1536 is not offered
    512: (1024, 4096, 1024),
    1024: (2048, 8192, 1024),
    2048: (4096, 16384, 1024),
    4096: (8192, 30720, 1024),
    8192: (16384, 61440, 4096),
    16384: (32768, 122880, 8192),
}


def fargate_supports(cpu: int, memory: int) -> bool:
    """Whether Fargate offers this CPU and memory combination."""
    if cpu not in _FARGATE_MEMORY:
        return False
    low, high, step = _FARGATE_MEMORY[cpu]
    if cpu == 256:
        return memory in {512, 1024, 2048}
    return low <= memory <= high and (memory - low) % step == 0


def size(name: str) -> dict[str, int]:
    """The job variables of a size preset."""
    try:
        cpu, memory = SIZES[name]
    except KeyError:
        raise KeyError(f"unknown size {name!r}; one of {', '.join(SIZES)}") from None
    return {"cpu": cpu, "memory": memory}


def size_table() -> str:
    """The presets as a Markdown table (for the README)."""
    rows = ["| size | vCPU | memory (GiB) |", "|---|---|---|"]
    for name, (cpu, memory) in SIZES.items():
        rows.append(f"| `{name}` | {cpu / 1024:g} | {memory / 1024:g} |")
    return "\n".join(rows)


def load_job_template() -> dict[str, Any]:
    """The checked-in base job template (no account-specific values)."""
    template: dict[str, Any] = json.loads(JOB_TEMPLATE.read_text())
    return template


def base_job_template(outputs: Mapping[str, str]) -> dict[str, Any]:
    """The pool's template with the stack's cluster, roles, network, logs and key references.

    `outputs` are the stack's outputs (deployments.aws.stack.outputs). Only ARNs and names go in:
    the Numerai keys (and a Prefect Cloud API key) stay in Secrets Manager and reach the task as
    ECS secrets at its start.
    """
    template = copy.deepcopy(load_job_template())
    variables = template["variables"]["properties"]
    secret = outputs["NumeraiKeysSecretArn"]
    defaults: dict[str, Any] = {
        "cluster": outputs["ClusterArn"],
        "execution_role_arn": outputs["ExecutionRoleArn"],
        "task_role_arn": outputs["TaskRoleArn"],
        "vpc_id": outputs["VpcId"],
        "network_configuration": {
            "subnets": [s for s in outputs["SubnetIds"].split(",") if s],
            "securityGroups": [outputs["SecurityGroupId"]],
            "assignPublicIp": "ENABLED",
        },
        "configure_cloudwatch_logs": True,
        "cloudwatch_logs_options": {
            "awslogs-group": outputs["LogGroupName"],
            "awslogs-create-group": "false",
        },
        "numerai_secrets": numerai_secrets(secret),
    }
    if outputs.get("RepositoryUri"):
        defaults["image"] = f"{outputs['RepositoryUri']}:latest"
    # Prefect Cloud: the worker passes this ARN as an ECS secret and drops PREFECT_API_KEY from
    # the task's environment overrides, where it would otherwise travel in plain text. (prefect-aws
    # 0.7.12 then expects the worker to have PREFECT_API_KEY, as every Cloud worker does: without
    # one it fails each run with KeyError; so only the stack of a Cloud setup outputs the ARN.)
    if outputs.get("PrefectApiKeySecretArn"):
        defaults["prefect_api_key_secret_arn"] = outputs["PrefectApiKeySecretArn"]
    for name, value in defaults.items():
        variables[name]["default"] = value
    return template


def numerai_secrets(secret_arn: str) -> list[dict[str, str]]:
    """ECS secrets that put the keys of a JSON secret into numerapi's environment variables."""
    return [
        {"name": "NUMERAI_PUBLIC_ID", "valueFrom": f"{secret_arn}:public_id::"},
        {"name": "NUMERAI_SECRET_KEY", "valueFrom": f"{secret_arn}:secret_key::"},
    ]


def apply_work_pool(name: str, template: dict[str, Any]) -> None:
    """Create the ECS work pool on the current Prefect server, or update its template."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template)
            )
        except ObjectAlreadyExists:
            client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
