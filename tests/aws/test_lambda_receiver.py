"""The webhook Lambda: function-URL events through the handler, the secret from Secrets Manager.

The handler runs in-process with the events a function URL delivers (payload format 2.0),
against a real Prefect server, with its secret read from moto's Secrets Manager, exactly as
the stack configures it (only ARNs in the environment). What this does not check: the image
the stack points the Lambda at (tests/aws/test_container.py builds that image), and AWS's own
function-URL front end.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import boto3
import pytest

from deployments import receiver
from deployments.aws import lambda_handler, stack
from tests.support import runs_of, unpooled_deployment

DEPLOYMENT = "submit-round/lambda-test"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment_id(prefect_server: str) -> Iterator[UUID]:
    """A deployment of the real submit-round flow without a work pool: its runs stay Scheduled."""
    with unpooled_deployment(DEPLOYMENT.split("/")[1]) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def webhook_secret(aws: str) -> Iterator[tuple[str, str]]:
    """The webhook secret in moto's Secrets Manager: (ARN, value)."""
    value = secrets.token_urlsafe(32)
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name=f"lambda-test-{uuid.uuid4().hex[:8]}", SecretString=value)
    yield arn["ARN"], value
    client.delete_secret(SecretId=arn["ARN"], ForceDeleteWithoutRecovery=True)


@pytest.fixture(scope="module")
def function_env(
    prefect_server: str, deployment_id: UUID, webhook_secret: tuple[str, str]
) -> dict[str, str]:
    """The function's environment as stack.yaml sets it: the secret's ARN, never its value."""
    return {
        "PREFECT_API_URL": prefect_server,
        "NUMERAI_DEPLOYMENT": DEPLOYMENT,
        "NUMERAI_WEBHOOK_SECRET_ARN": webhook_secret[0],
        "NUMERAI_WEBHOOK_SECRET_VERSION": "",
        "PREFECT_API_KEY_SECRET_ARN": "",
        "PREFECT_API_KEY_SECRET_VERSION": "",
        "NUMERAI_WEBHOOK_MAX_BYTES": "4096",
    }


@pytest.fixture
def handler(function_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The module's handler in a fresh execution environment (its cold start still to come)."""
    for name, value in function_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(lambda_handler, "_receiver", None)
    # Outside every round window whatever the time: a webhook naming no round runs its model.
    monkeypatch.setattr(receiver, "window_at", lambda _: None)
    yield lambda_handler.handler


def url_event(
    path: str, body: Any = None, method: str = "POST", *, raw: bytes | None = None
) -> dict[str, Any]:
    """What a Lambda function URL hands the function (payload format 2.0)."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "content-length": str(len(data)),
            "host": "abc123.lambda-url.us-east-1.on.aws",
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
            "x-forwarded-for": "203.0.113.7",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "numerai",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1796126400000,
        },
        "body": base64.b64encode(data).decode(),
        "isBase64Encoded": True,
    }


class Context:
    """The parts of a Lambda context an ASGI adapter may read."""

    function_name = "numerai-prefect-webhook"
    aws_request_id = "test-request"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:numerai-prefect-webhook"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def answer(response: dict[str, Any]) -> tuple[int, Any]:
    body = response.get("body", "")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        return response["statusCode"], json.loads(body)
    except ValueError:
        return response["statusCode"], body


def test_right_secret_creates_the_models_run_once(
    handler: Any, webhook_secret: tuple[str, str], deployment_id: UUID
) -> None:
    trigger = f"lambda-{uuid.uuid4()}"
    path = f"/webhook/{webhook_secret[1]}/example-small"
    status, body = answer(handler(url_event(path, {"triggerId": trigger}), Context()))
    assert status == 200, body
    assert body["duplicate"] is False
    (run,) = runs_of(deployment_id, trigger)
    assert str(run.id) == body["flow_run_id"]
    assert run.parameters == {"trigger_id": trigger, "models": ["example-small"]}
    assert "numerai-webhook" in run.tags
    assert run.state is not None and run.state.is_scheduled()

    # Numerai delivering the same trigger again: the same run, not a second one.
    status, again = answer(handler(url_event(path, {"triggerId": trigger}), Context()))
    assert (status, again["flow_run_id"], again["duplicate"]) == (200, body["flow_run_id"], True)
    assert len(runs_of(deployment_id, trigger)) == 1


def test_the_webhooks_of_a_round_share_one_run_as_on_the_local_receiver(
    handler: Any, webhook_secret: tuple[str, str], deployment_id: UUID
) -> None:
    number = 100_000 + secrets.randbelow(900_000)
    ids = set()
    for model in ("lambda-a", "lambda-b"):
        path = f"/webhook/{webhook_secret[1]}/{model}"
        body = {"triggerId": f"lambda-{uuid.uuid4()}", "roundNumber": number}
        status, answered = answer(handler(url_event(path, body), Context()))
        assert status == 200, answered
        ids.add(answered["flow_run_id"])
    [run_id] = ids
    [run] = [r for r in runs_of(deployment_id) if str(r.id) == run_id]
    assert (run.parameters, run.idempotency_key) == ({}, f"numerai-round-{number}")


def test_wrong_or_missing_secret_is_404_and_creates_nothing(
    handler: Any, webhook_secret: tuple[str, str], deployment_id: UUID
) -> None:
    trigger = f"lambda-{uuid.uuid4()}"
    wrong = secrets.token_urlsafe(32)
    for path in (f"/webhook/{wrong}/example-small", f"/webhook/{wrong}", "/", "/webhook"):
        status, body = answer(handler(url_event(path, {"triggerId": trigger}), Context()))
        assert (status, body) == (404, "Not Found"), path
    assert runs_of(deployment_id, trigger) == []


def test_limits_and_answers_are_the_receivers(
    handler: Any, webhook_secret: tuple[str, str]
) -> None:
    base = f"/webhook/{webhook_secret[1]}"
    status, body = answer(handler(url_event(f"{base}/x", {"roundNumber": 1}), Context()))
    assert status == 422 and "triggerId" in body["detail"]
    status, body = answer(handler(url_event(f"{base}/Not_A_Block", {"triggerId": "t"}), Context()))
    assert status == 422 and "model" in body["detail"]
    status, body = answer(handler(url_event(f"{base}/x", raw=b"{" + b" " * 5000 + b"}"), Context()))
    assert status == 413
    status, _ = answer(handler(url_event(f"{base}/x", method="GET"), Context()))
    assert status == 405
    assert answer(handler(url_event("/health", method="GET"), Context())) == (
        200,
        {"status": "ok"},
    )


def test_a_pinned_version_is_the_secret_read(
    handler: Any, webhook_secret: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # setup --aws stores a new secret and pins its version: the receiver takes that one, not
    # whichever is current when an instance starts.
    client = boto3.client("secretsmanager")
    arn, old = webhook_secret
    new = secrets.token_urlsafe(32)
    version = stack.put_secret(arn, new)
    assert version is not None
    try:
        pinned_old = client.list_secret_version_ids(SecretId=arn)["Versions"]
        old_version = next(v["VersionId"] for v in pinned_old if v["VersionId"] != version)
        monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET_VERSION", old_version)
        status, _ = answer(handler(url_event(f"/webhook/{new}", {"triggerId": "t"}), Context()))
        assert status == 404  # this instance was started on the old version
    finally:
        client.put_secret_value(SecretId=arn, SecretString=old)


def test_an_unusable_configuration_answers_503_and_the_next_call_retries(
    handler: Any, webhook_secret: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.client("secretsmanager")
    short = client.create_secret(Name=f"short-{uuid.uuid4().hex[:8]}", SecretString="too-short")
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET_ARN", short["ARN"])
    status, body = answer(handler(url_event("/webhook/too-short", {"triggerId": "t"}), Context()))
    assert status == 503
    assert "too-short" not in json.dumps(body)
    assert lambda_handler._receiver is None  # nothing half-built is kept

    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET_ARN", webhook_secret[0])
    assert answer(handler(url_event("/health", method="GET"), Context()))[0] == 200


def test_stack_gives_the_function_arns_and_the_handler_it_runs() -> None:
    template = stack.load_template(stack.TEMPLATE.read_text())
    function = template["Resources"]["ReceiverFunction"]["Properties"]
    assert function["PackageType"] == "Image"
    assert function["ImageConfig"]["Command"] == ["deployments.aws.lambda_handler.handler"]
    assert function["ImageConfig"]["EntryPoint"][-2:] == ["-m", "awslambdaric"]
    variables = function["Environment"]["Variables"]
    assert "NUMERAI_WEBHOOK_SECRET" not in variables and "PREFECT_API_KEY" not in variables
    assert variables["NUMERAI_WEBHOOK_SECRET_ARN"] == {"Ref": "WebhookSecret"}
    generated = template["Resources"]["WebhookSecret"]["Properties"]
    assert "SecretString" not in generated and generated["GenerateSecretString"]
    module, _, name = function["ImageConfig"]["Command"][0].rpartition(".")
    assert module == lambda_handler.__name__ and callable(getattr(lambda_handler, name))
