"""A real prefect-aws ECS worker against moto: the round's task on Fargate, and an OOM crash."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
import yaml
from prefect.client.orchestration import get_client

from deployments.aws import stack
from deployments.aws.pool import apply_work_pool, base_job_template, size
from tests.aws.conftest import aws_environment

ROOT = Path(__file__).resolve().parents[2]
STACK = "numerai-prefect-ecs"
POOL = "numerai-ecs-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/numerai-prefect:0123456789ab"
WORKER_KEY = "AKIDWORKER"  # the worker's calls are told apart from the test's by access key
PREFECT_API_KEY = "pnu_worker-key-that-must-never-reach-ecs-in-plain-text"
T = TypeVar("T")

pytestmark = pytest.mark.integration


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ecs_stack(aws: str) -> Iterator[dict[str, str]]:
    """The stack on moto, plus the keys secret moto's CloudFormation cannot make.

    As `setup --aws` does for Prefect Cloud, the API key goes to its secret first and the stack
    is given its ARN, which it outputs for the pool.
    """
    api_key_arn, _ = stack.put_prefect_api_key(STACK, PREFECT_API_KEY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = stack.deploy(STACK, {"PrefectApiKeySecretArn": api_key_arn}, poll_seconds=1)
    assert outputs["PrefectApiKeySecretArn"] == api_key_arn
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"{STACK}/numerai-keys", SecretString='{"public_id": "", "secret_key": ""}'
    )
    outputs["NumeraiKeysSecretArn"] = secret["ARN"]
    yield outputs
    stack.delete(STACK, poll_seconds=1)
    assert stack.delete_prefect_api_key(STACK)


@pytest.fixture
def events_queue(ecs_stack: dict[str, str]) -> Iterator[str]:
    """A fresh queue on the stack's ECS events rule, for one test's worker.

    A stopped worker's long poll lives on in moto's server for up to 20 s and takes the next
    message it sees out of sight for the observer's 300 s visibility timeout; a queue per test
    keeps one test's worker from taking the next test's events.
    """
    sqs, events = boto3.client("sqs"), boto3.client("events")
    rule = f"{STACK}-ecs-task-events"
    name = f"{STACK}-events-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_targets(Rule=rule, Targets=[{"Id": name, "Arn": arn}])
    yield name
    events.remove_targets(Rule=rule, Ids=[name])
    sqs.delete_queue(QueueUrl=url)


def recorded_requests(path: Path) -> list[tuple[str, str]]:
    """(service:Action, body) of every request the worker made (moto's request recorder)."""
    requests = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        credential = re.search(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/", headers["authorization"])
        if not credential or credential.group(1) != WORKER_KEY:
            continue
        service = {"monitoring": "cloudwatch"}.get(credential.group(2), credential.group(2))
        body = entry["body"] or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode()
        if target := headers.get("x-amz-target"):
            action = target.rsplit(".", 1)[-1]
        else:
            action = re.search(r"Action=(\w+)", body + entry["url"]).group(1)  # type: ignore[union-attr]
        requests.append((f"{service}:{action}", body))
    return requests


def recorded_actions(path: Path) -> set[str]:
    """service:Action of every request the worker made."""
    return {action for action, _ in recorded_requests(path)}


def worker_role_actions() -> set[str]:
    role = stack.load_template(stack.TEMPLATE.read_text())["Resources"]["WorkerRole"]
    actions: set[str] = set()
    for statement in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def stopped_event(task: dict[str, Any], exit_code: int, reason: str) -> dict[str, Any]:
    """An ECS "Task State Change" event as EventBridge delivers it, for a STOPPED task."""
    return {
        "Source": "aws.ecs",
        "DetailType": "ECS Task State Change",
        "Detail": json.dumps(
            {
                "taskArn": task["taskArn"],
                "clusterArn": task["clusterArn"],
                "taskDefinitionArn": task["taskDefinitionArn"],
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "stoppedReason": "Essential container in task exited",
                "containers": [{"name": "prefect", "exitCode": exit_code, "reason": reason}],
            }
        ),
    }


def test_worker_registers_the_preset_task_and_an_oom_stop_crashes_the_run(
    prefect_server: str, ecs_stack: dict[str, str], events_queue: str, tmp_path: Path
) -> None:
    from moto.moto_api import recorder

    apply_work_pool(POOL, base_job_template(ecs_stack))
    config = yaml.safe_load((ROOT / "deployments/aws/prefect-ecs.yaml").read_text())
    round_deployment = next(d for d in config["deployments"] if d["name"] == "round")
    job_variables = {**round_deployment["work_pool"]["job_variables"], "image": IMAGE}
    job_variables.update(size("cpu-md"))  # a size picked per deployment
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("submit-round")
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name="round-ecs-test",
            work_pool_name=POOL,
            entrypoint=round_deployment["entrypoint"],
            parameters=round_deployment["parameters"],
            job_variables=job_variables,
            pull_steps=config["pull"],
        )
        flow_run = client.create_flow_run_from_deployment(deployment_id)

    recording = tmp_path / "moto-recording.jsonl"
    recording.touch()
    recorder._location = str(recording)
    recorder.start_recording()
    env = {
        **os.environ,
        **aws_environment(os.environ["AWS_ENDPOINT_URL"], access_key=WORKER_KEY),
        "PREFECT_API_URL": prefect_server,
        # A Prefect Cloud worker's key (the local server ignores it): it must reach the task
        # only as the ECS secret the pool names, never in the task definition or RunTask.
        "PREFECT_API_KEY": PREFECT_API_KEY,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": events_queue,
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "ecs"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ecs = boto3.client("ecs")
        cluster = ecs_stack["ClusterArn"]
        task_arns = wait_for("RunTask", lambda: ecs.list_tasks(cluster=cluster)["taskArns"])
        task = ecs.describe_tasks(cluster=cluster, tasks=task_arns, include=["TAGS"])["tasks"][0]
        tags = {t["key"]: t["value"] for t in task.get("tags", [])}
        assert tags["prefect.io/flow-run-id"] == str(flow_run.id)

        definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
        taskdef = definition["taskDefinition"]
        assert (int(taskdef["cpu"]), int(taskdef["memory"])) == (2048, 4096)
        assert taskdef["requiresCompatibilities"] == ["FARGATE"]
        assert taskdef["networkMode"] == "awsvpc"
        assert taskdef["executionRoleArn"] == ecs_stack["ExecutionRoleArn"]
        container = taskdef["containerDefinitions"][0]
        assert container["image"] == IMAGE
        arn = ecs_stack["NumeraiKeysSecretArn"]
        assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == {
            "NUMERAI_PUBLIC_ID": f"{arn}:public_id::",
            "NUMERAI_SECRET_KEY": f"{arn}:secret_key::",
            "PREFECT_API_KEY": ecs_stack["PrefectApiKeySecretArn"],
        }
        options = container["logConfiguration"]["options"]
        assert options["awslogs-group"] == ecs_stack["LogGroupName"]
        # No key value anywhere in what ECS holds: only references.
        assert 'secret_key":' not in json.dumps(definition)

        # ECS reports the container killed for memory (exit 137) through EventBridge -> SQS.
        events = boto3.client("events")
        reason = "OutOfMemoryError: Container killed due to memory usage"
        events.put_events(Entries=[stopped_event(task, 137, reason)])

        def crashed() -> Any:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run.id).state
            return state if state is not None and state.is_crashed() else None

        state = wait_for("the run to be Crashed", crashed, timeout=90)
        assert "prefect" in (state.message or "")
    finally:
        recorder.stop_recording()
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        print((tmp_path / "worker.log").read_text()[-4000:])

    requests = recorded_requests(recording)
    run_task = [body for action, body in requests if action == "ecs:RunTask"]
    registered = [body for action, body in requests if action == "ecs:RegisterTaskDefinition"]
    assert run_task and registered
    assert str(flow_run.id) in run_task[0]  # the overrides are in what is searched
    for body in run_task + registered:
        assert PREFECT_API_KEY not in body and 'PREFECT_API_KEY"' not in body.split("secrets")[0]
    called = recorded_actions(recording)
    assert {"ecs:RegisterTaskDefinition", "ecs:RunTask", "sqs:ReceiveMessage"} <= called
    assert called <= worker_role_actions(), called - worker_role_actions()


FAILED_TO_START = {
    "image missing": "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
    "failed to resolve ref numerai-prefect:gone: not found",
    "task fails to start": "ResourceInitializationError: unable to pull secrets or registry auth",
    "capacity unavailable": "Capacity is unavailable at this time. Please try again later.",
}


def failed_to_start_event(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """A STOPPED event for a task ECS could not start: no containers ran at all."""
    return {
        "Source": "aws.ecs",
        "DetailType": "ECS Task State Change",
        "Detail": json.dumps(
            {
                "taskArn": task["taskArn"],
                "clusterArn": task["clusterArn"],
                "taskDefinitionArn": task["taskDefinitionArn"],
                "lastStatus": "STOPPED",
                "desiredStatus": "STOPPED",
                "stopCode": "TaskFailedToStart",
                "stoppedReason": reason,
                "containers": [],
            }
        ),
    }


def test_tasks_that_never_start_crash_their_runs_saying_why(
    prefect_server: str, ecs_stack: dict[str, str], events_queue: str, tmp_path: Path
) -> None:
    from tests.support import prefect_worker

    pool = f"{POOL}-start"
    apply_work_pool(pool, base_job_template(ecs_stack))
    config = yaml.safe_load((ROOT / "deployments/aws/prefect-ecs.yaml").read_text())
    round_deployment = next(d for d in config["deployments"] if d["name"] == "round")
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name("submit-round"),
            name="round-ecs-start-test",
            work_pool_name=pool,
            entrypoint=round_deployment["entrypoint"],
            job_variables={**round_deployment["work_pool"]["job_variables"], "image": IMAGE},
            pull_steps=config["pull"],
        )
        runs = {
            label: client.create_flow_run_from_deployment(deployment_id).id
            for label in FAILED_TO_START
        }
    env = {
        **aws_environment(os.environ["AWS_ENDPOINT_URL"], access_key=WORKER_KEY),
        "PREFECT_API_URL": prefect_server,
        "PREFECT_API_KEY": PREFECT_API_KEY,  # a Cloud pool's worker has one (see pool.py)
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": events_queue,
    }
    ecs, events = boto3.client("ecs"), boto3.client("events")
    cluster = ecs_stack["ClusterArn"]
    with prefect_worker(pool, env, tmp_path / "worker.log", worker_type="ecs"):

        def started() -> dict[str, dict[str, Any]] | None:
            arns = ecs.list_tasks(cluster=cluster)["taskArns"]
            if not arns:
                return None
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"]
            by_run = {
                t["value"]: task
                for task in tasks
                for t in task.get("tags", [])
                if t["key"] == "prefect.io/flow-run-id"
            }
            wanted = {str(run_id) for run_id in runs.values()}
            return by_run if wanted <= set(by_run) else None

        tasks = wait_for("RunTask for every run", started, timeout=90)
        for label, run_id in runs.items():
            reason = FAILED_TO_START[label]
            events.put_events(Entries=[failed_to_start_event(tasks[str(run_id)], reason)])

        for label, run_id in runs.items():

            def crashed(run_id: Any = run_id) -> Any:
                with get_client(sync_client=True) as client:
                    state = client.read_flow_run(run_id).state
                return state if state is not None and state.is_crashed() else None

            state = wait_for(f"{label}: the run to be Crashed", crashed, timeout=90)
            assert FAILED_TO_START[label].split(":")[0] in (state.message or ""), state.message
