"""The round-webhook receiver against a real Prefect server, served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import jinja2
import pytest
import yaml
from prefect.automations import AutomationCore
from prefect.events.actions import RunDeployment
from prefect.events.schemas.automations import EventTrigger
from prefect.events.schemas.events import Event, ResourceSpecification

from deployments import receiver as receiver_module
from deployments.receiver import ConfigError, ReceiverSettings, RoundWebhook
from model.names import trigger_variable_name
from model.triggers import WebhookTrigger
from sandbox import Sandbox
from tests.support import LogRecords, runs_of

ROOT = Path(__file__).resolve().parents[2]
Serve = Callable[..., contextlib.AbstractContextManager[str]]


def _post(url: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is not None:
        kwargs["json"] = body
    return httpx.post(url, timeout=10, **kwargs)


def _trigger() -> str:
    return f"test-{uuid.uuid4()}"


# -- creating runs -------------------------------------------------------------------------


def test_health(receiver: str) -> None:
    response = httpx.get(f"{receiver}/health", timeout=5)
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def stored_trigger(model: str) -> WebhookTrigger | None:
    """The trigger the receiver keeps for a model, as the model's task reads it."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(trigger_variable_name(model))
    return WebhookTrigger.from_value(variable.value) if variable is not None else None


def test_the_models_webhooks_of_a_round_start_one_run_and_keep_each_trigger(
    receiver: str, webhook_secret: str, deployment_id: UUID, settings: ReceiverSettings
) -> None:
    number = random.randint(100_000, 999_999)
    models = [f"model-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    triggers = {model: _trigger() for model in models}
    sent = dt.datetime.now(dt.UTC)
    answers = []
    for model, trigger in triggers.items():
        body = {"triggerId": trigger, "roundNumber": number, "dataVersion": "v5.3", "x": 1}
        response = _post(f"{receiver}/webhook/{webhook_secret}/{model}", body)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert [a["duplicate"] for a in answers] == [False, True, True]
    [run_id] = {a["flow_run_id"] for a in answers}
    [run] = [r for r in runs_of(deployment_id) if str(r.id) == run_id]
    assert run.name == answers[0]["flow_run_name"]
    assert run.parameters == {}  # every model, split by size in the flow
    assert run.idempotency_key == f"numerai-round-{number}"
    assert "numerai-webhook" in run.tags
    assert run.state is not None and run.state.is_scheduled()
    gather = dt.timedelta(seconds=settings.gather_seconds)
    assert run.expected_start_time is not None
    assert run.expected_start_time >= sent + gather - dt.timedelta(seconds=1)
    for model, trigger in triggers.items():
        kept = stored_trigger(model)
        assert kept is not None and (kept.trigger_id, kept.round_number) == (trigger, number)

    # A later trigger of one model replaces its own, and joins the same run.
    again = _post(
        f"{receiver}/webhook/{webhook_secret}/{models[0]}",
        {"triggerId": "t-later", "roundNumber": number},
    ).json()
    assert again["flow_run_id"] == run_id
    assert stored_trigger(models[0]).trigger_id == "t-later"  # type: ignore[union-attr]
    assert stored_trigger(models[1]).trigger_id == triggers[models[1]]  # type: ignore[union-attr]


def test_a_webhook_without_a_round_joins_the_run_of_the_open_window(
    receiver: str, webhook_secret: str, deployment_id: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.schedule import ROUND_WINDOWS

    window = random.choice(ROUND_WINDOWS)  # a key of its own, not another test's window
    monkeypatch.setattr(receiver_module, "window_at", lambda _: window)
    answers = [
        _post(f"{receiver}/webhook/{webhook_secret}/{model}", {"triggerId": _trigger()}).json()
        for model in (f"w-{uuid.uuid4().hex[:8]}", f"w-{uuid.uuid4().hex[:8]}")
    ]
    assert answers[0]["flow_run_id"] == answers[1]["flow_run_id"]
    [run] = [r for r in runs_of(deployment_id) if str(r.id) == answers[0]["flow_run_id"]]
    opens, _ = window.occurrence(dt.datetime.now(dt.UTC))
    assert run.idempotency_key == f"numerai-window-{window.name}-{opens:%Y-%m-%d}"


def test_a_test_trigger_starts_a_run_of_its_model_with_its_trigger_id(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    model, trigger = f"tested-{uuid.uuid4().hex[:8]}", _trigger()
    body = {"triggerId": trigger, "roundNumber": 1000, "isTest": True}
    assert _post(f"{receiver}/webhook/{webhook_secret}/{model}", body).status_code == 200
    (run,) = runs_of(deployment_id, trigger)
    assert run.parameters == {"trigger_id": trigger, "models": [model]}
    assert run.idempotency_key == f"numerai-trigger-{model}-{trigger}"
    assert stored_trigger(model) is None  # a test trigger never stands for a round


def test_a_model_webhook_when_no_round_is_known_starts_a_run_of_its_model(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    trigger = _trigger()  # no roundNumber, outside every window (tests/deployments/conftest.py)
    assert _post(f"{receiver}/webhook/{webhook_secret}/example-small", {"triggerId": trigger})
    (run,) = runs_of(deployment_id, trigger)
    assert run.parameters == {"trigger_id": trigger, "models": ["example-small"]}
    assert run.idempotency_key == f"numerai-trigger-example-small-{trigger}"


def test_all_models_webhook_leaves_models_unset(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    trigger = _trigger()
    response = _post(f"{receiver}/webhook/{webhook_secret}", {"triggerId": trigger})
    assert response.status_code == 200, response.text
    (run,) = runs_of(deployment_id, trigger)
    assert run.parameters.get("models") is None
    assert run.idempotency_key == f"numerai-trigger-all-{trigger}"


def test_repeated_delivery_returns_the_same_run(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    url, body = f"{receiver}/webhook/{webhook_secret}/alpha", {"triggerId": _trigger()}
    answers = [_post(url, body).json() for _ in range(5)]
    assert len({a["flow_run_id"] for a in answers}) == 1
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert len(runs_of(deployment_id, body["triggerId"])) == 1

    concurrent = {"triggerId": _trigger()}
    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: _post(url, concurrent), range(5)))
    assert [r.status_code for r in responses] == [200] * 5
    assert len({r.json()["flow_run_id"] for r in responses}) == 1
    assert len(runs_of(deployment_id, concurrent["triggerId"])) == 1


def test_same_trigger_for_two_models_makes_two_runs(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    body = {"triggerId": _trigger()}
    for model in ("alpha", "beta"):
        assert _post(f"{receiver}/webhook/{webhook_secret}/{model}", body).status_code == 200
    models = sorted(r.parameters["models"][0] for r in runs_of(deployment_id, body["triggerId"]))
    assert models == ["alpha", "beta"]


# -- refusing requests ---------------------------------------------------------------------


def near_misses(secret: str) -> list[str]:
    """Paths that almost match a webhook route: each must be 404, none may be logged."""
    wrong = secret[:-1] + ("a" if secret[-1] != "a" else "b")
    return [
        f"/webhook/{wrong}",
        f"/webhook/{wrong}/alpha",
        "/webhook/",
        "/webhook",
        f"/webhook/{secret[:10]}",
        f"/webhook/%C3%A9{secret}",
        f"/webhook/{secret}x",
        f"/webhook/{secret}/",  # trailing slash: no redirect, not even with the right secret
        f"/webhook/{secret}/alpha/",
        f"/webhook/{secret}/alpha/extra",
        f"//webhook/{secret}",
        f"/webhook//{secret}",
        f"/WEBHOOK/{secret}",
        f"/webhooks/{secret}",
        f"/{secret}",
        f"/webhook/x/{secret}",
        f"/health/{secret}",
        f"/webhook;{secret}",
        f"/webhook/{secret};alpha",
        f"/webhook/{secret} ".replace(" ", "%20"),
    ]


def test_wrong_secret_or_near_miss_path_is_404_and_creates_nothing(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    before = len(runs_of(deployment_id))
    body = {"triggerId": _trigger()}
    for path in near_misses(webhook_secret):
        for method in ("POST", "GET", "PUT"):
            response = httpx.request(
                method, receiver + path, json=body, timeout=10, follow_redirects=False
            )
            assert (response.status_code, response.text) == (404, "Not Found"), (method, path)
            assert "location" not in response.headers
    assert len(runs_of(deployment_id)) == before


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not json", "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b"\xff\xfe{}", "Invalid JSON"),
        (b"{}", "triggerId: Field required"),
        (b"[1, 2]", "body: Input should be an object"),
        (b'{"triggerId": 123}', "triggerId: Input should be a valid string"),
        (b'{"triggerId": ""}', "triggerId: must be 1 to 128 characters"),
        (b'{"triggerId": " "}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "abc\\ndef"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "abc\\r\\n2026 INFO forged"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "a\\u001b[31mred"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "a\\u0000b"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "a b"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "caf\\u00e9"}', "triggerId: must be 1 to 128"),
        (b'{"triggerId": "-leading-dash"}', "starting with a letter or digit"),
        (json.dumps({"triggerId": "x" * 129}).encode(), "triggerId: must be 1 to 128"),
        (b'{"triggerId": "t", "roundNumber": "soon"}', "roundNumber: Input should be a valid"),
        (b'{"triggerId": "t", "roundNumber": "1000"}', "roundNumber: Input should be a valid"),
        (b'{"triggerId": "t", "roundNumber": 1000.0}', "roundNumber: Input should be a valid"),
        (b'{"triggerId": "t", "roundNumber": true}', "roundNumber: Input should be a valid"),
        (b'{"triggerId": "t", "roundNumber": 0}', "roundNumber: Input should be greater"),
        (b'{"triggerId": "t", "isTest": "perhaps"}', "isTest: Input should be a valid boolean"),
        (b'{"triggerId": "t", "isTest": "true"}', "isTest: Input should be a valid boolean"),
        (b'{"triggerId": "t", "isTest": 1}', "isTest: Input should be a valid boolean"),
        (b'{"triggerId": "t", "dataVersion": 5.3}', "dataVersion: Input should be a valid"),
        (b'{"triggerId": "t", "dataVersion": "v5\\n"}', "dataVersion: must be a data version"),
    ],
)
def test_invalid_body_is_422_with_the_reason(
    receiver: str, webhook_secret: str, deployment_id: UUID, content: bytes, reason: str
) -> None:
    before = len(runs_of(deployment_id))
    response = _post(f"{receiver}/webhook/{webhook_secret}/alpha", content=content)
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert len(runs_of(deployment_id)) == before


def test_trigger_id_alphabet_accepts_what_numerai_sends(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    for trigger in (str(uuid.uuid4()), "x" * 128, "round:1000.test_trigger-1"):
        response = _post(f"{receiver}/webhook/{webhook_secret}/alpha", {"triggerId": trigger})
        assert response.status_code == 200, response.text
        (run,) = runs_of(deployment_id, trigger)
        assert run.parameters["trigger_id"] == trigger


def test_invalid_model_name_is_422(receiver: str, webhook_secret: str) -> None:
    for model in ("Alpha", "model_a", "a" * 101):
        response = _post(f"{receiver}/webhook/{webhook_secret}/{model}", {"triggerId": "t"})
        assert response.status_code == 422, model
        assert "block name" in response.json()["detail"]


def test_body_over_the_limit_is_413(receiver: str, webhook_secret: str) -> None:
    url = f"{receiver}/webhook/{webhook_secret}/alpha"
    big = {"triggerId": "t", "padding": "x" * 5000}  # the test receiver allows 4096 bytes
    assert _post(url, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        yield b'{"triggerId": "t", "padding": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = httpx.post(url, content=chunks(), timeout=10)
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["detail"]
    # A declared length over the limit is refused before any of the body is read.
    host, port = receiver.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            f"POST /webhook/{webhook_secret}/alpha HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 999999\r\n\r\n".encode()
        )
        assert conn.recv(100).startswith(b"HTTP/1.1 413 ")


def test_only_post(receiver: str, webhook_secret: str) -> None:
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        url = f"{receiver}/webhook/{webhook_secret}/alpha"
        assert httpx.request(method, url, timeout=5).status_code == 405, method
        assert httpx.request(method, f"{receiver}/webhook/{webhook_secret}").status_code == 405
        # With a wrong secret the route does not exist at all.
        wrong = f"{receiver}/webhook/{'w' * 40}"
        assert httpx.request(method, wrong, timeout=5).status_code == 404, method
    assert httpx.post(f"{receiver}/health", timeout=5).status_code == 405


# -- Prefect unavailable ------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prefect_unreachable_is_503(
    settings: ReceiverSettings, serve_with: Serve, deployment_id: UUID
) -> None:
    before = len(runs_of(deployment_id))
    down = f"http://127.0.0.1:{_closed_port()}/api"
    with serve_with(settings, prefect_api_url=down) as url:
        started = time.monotonic()
        response = _post(f"{url}/webhook/{settings.secret}/alpha", {"triggerId": _trigger()})
        assert time.monotonic() - started < settings.prefect_timeout
    assert response.status_code == 503
    assert "Prefect API unreachable" in response.json()["detail"]
    assert len(runs_of(deployment_id)) == before


def test_prefect_hanging_is_503_within_the_timeout(
    settings: ReceiverSettings, serve_with: Serve
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        with serve_with(settings, prefect_api_url=hung, prefect_timeout=1.0) as url:
            started = time.monotonic()
            response = _post(f"{url}/webhook/{settings.secret}", {"triggerId": _trigger()})
            elapsed = time.monotonic() - started
    assert response.status_code == 503 and elapsed < 3
    assert "did not answer within 1 s" in response.json()["detail"]


def test_missing_deployment_is_503_naming_it(settings: ReceiverSettings, serve_with: Serve) -> None:
    with serve_with(settings, deployment="submit-round/not-deployed") as url:
        response = _post(f"{url}/webhook/{settings.secret}/alpha", {"triggerId": _trigger()})
    assert response.status_code == 503
    assert "'submit-round/not-deployed' not found" in response.json()["detail"]


# -- secrets and settings -----------------------------------------------------------------


def test_secret_never_logged(
    receiver: str,
    webhook_secret: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    # uvicorn's loggers do not propagate under Prefect's logging config: listen on them directly.
    uvicorn_records = LogRecords()
    uvicorn_access = logging.getLogger("uvicorn.access")
    old_level = uvicorn_access.level
    uvicorn_access.setLevel(logging.INFO)
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addHandler(uvicorn_records)
    try:
        _post(f"{receiver}/webhook/{webhook_secret}/alpha", {"triggerId": _trigger()})
        _post(f"{receiver}/webhook/{webhook_secret}", content=b"nope")
        httpx.get(f"{receiver}/webhook/{webhook_secret}", timeout=5)
        for path in near_misses(webhook_secret):
            _post(receiver + path + f"?q={webhook_secret}", {"triggerId": "t"})
        time.sleep(0.2)  # access log lines are written after the response
    finally:
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeHandler(uvicorn_records)
        uvicorn_access.setLevel(old_level)
    # The receiver logs in uvicorn's thread; this thread's records are the test client's own.
    here = threading.get_ident()
    records = [r for r in caplog.records + uvicorn_records.records if r.thread != here]
    messages = [r.getMessage() for r in records]
    assert {r.name for r in records} >= {"uvicorn.access", "deployments.receiver.access"}
    assert sum("/webhook/***/alpha" in m for m in messages) >= 2  # ours and uvicorn's line
    assert sum("other path" in m for m in messages) >= 2 * 15
    # Not the secret, nor any 10 characters of it, in any message or traceback.
    pieces = {webhook_secret[i : i + 10] for i in range(len(webhook_secret) - 9)}
    logged = "\n".join(messages + [r.exc_text or "" for r in records])
    assert [p for p in pieces if p in logged] == []
    out, err = capfd.readouterr()  # Prefect's console handler on "uvicorn" writes to stderr
    assert [p for p in pieces if p in out + err] == []


def test_settings_from_env() -> None:
    secret = "s" * 32
    settings = ReceiverSettings.from_env(
        {"NUMERAI_WEBHOOK_SECRET": secret, "PREFECT_API_URL": "http://127.0.0.1:4200/api"}
    )
    assert (settings.deployment, settings.max_bytes) == ("submit-round/round", 16384)
    assert secret not in repr(settings)
    custom = ReceiverSettings.from_env(
        {
            "NUMERAI_WEBHOOK_SECRET": secret,
            "PREFECT_API_URL": "http://prefect:4200/api",
            "NUMERAI_DEPLOYMENT": "submit-round/other",
            "NUMERAI_WEBHOOK_MAX_BYTES": "100",
        }
    )
    assert (custom.deployment, custom.max_bytes) == ("submit-round/other", 100)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "NUMERAI_WEBHOOK_SECRET is not set"),
        ({"NUMERAI_WEBHOOK_SECRET": "short"}, "at least 32 characters"),
        ({"NUMERAI_WEBHOOK_SECRET": "a/b" * 20}, "URL-safe"),
        ({"NUMERAI_WEBHOOK_SECRET": "s" * 32, "NUMERAI_DEPLOYMENT": "round"}, "FLOW/NAME"),
        ({"NUMERAI_WEBHOOK_SECRET": "s" * 32, "NUMERAI_WEBHOOK_MAX_BYTES": "lots"}, "invalid"),
    ],
)
def test_bad_settings_refuse_to_start(env: dict[str, str], message: str) -> None:
    env = {"PREFECT_API_URL": "http://127.0.0.1:4200/api", **env}
    with pytest.raises(ConfigError, match=message) as info:
        ReceiverSettings.from_env(env)
    if "secret" in message.lower() or "characters" in message:
        assert "secrets.token_urlsafe(32)" in str(info.value)


def test_main_refuses_without_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NUMERAI_WEBHOOK_SECRET", raising=False)
    with pytest.raises(SystemExit) as info:
        receiver_module.main(["--port", "0"])
    assert info.value.code == 2
    assert "NUMERAI_WEBHOOK_SECRET is not set" in capsys.readouterr().err


def test_lazy_app_fails_startup_on_a_bad_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMERAI_WEBHOOK_SECRET", "short")
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    lazy = receiver_module._LazyApp()
    asyncio.run(lazy({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "at least 32 characters" in sent[0]["message"]


def test_round_webhook_model() -> None:
    hook = RoundWebhook.model_validate({"triggerId": "t", "roundNumber": 7, "other": [1]})
    assert (hook.triggerId, hook.roundNumber, hook.isTest) == ("t", 7, None)


# -- the loop: sandbox round opens -> receiver -> Prefect run ------------------------------


def test_sandbox_round_opening_starts_a_run_with_its_trigger_id(
    sandbox: Sandbox, receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    alpha = sandbox.models["alpha"]
    sandbox.set_webhook(alpha, f"{receiver}/webhook/{webhook_secret}/alpha")
    rnd = sandbox.open_round()
    (delivery,) = sandbox.wait_for_deliveries(1, timeout=15)
    assert delivery.status == 200 and delivery.round_number == rnd.number
    key = f"numerai-round-{rnd.number}"
    assert [r.parameters for r in runs_of(deployment_id) if r.idempotency_key == key] == [{}]
    kept = stored_trigger("alpha")
    assert kept is not None and (kept.trigger_id, kept.round_number) == (
        delivery.trigger_id,
        rnd.number,
    )

    trigger = sandbox.trigger_webhook(alpha)  # Numerai's test trigger
    assert sandbox.wait_for_deliveries(2, timeout=15)[-1].status == 200
    assert len(runs_of(deployment_id, trigger)) == 1


# -- the Prefect Cloud route ---------------------------------------------------------------


def _cloud_config(model: str, deployment_id: UUID) -> dict[str, Any]:
    text = (ROOT / "deployments" / "cloud-webhook.yaml").read_text()
    text = text.replace("__MODEL__", model).replace("__DEPLOYMENT_ID__", str(deployment_id))
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def _render(template: str, body: Any) -> str:
    env = jinja2.Environment(autoescape=False)  # noqa: S701 -- JSON, not HTML
    return env.from_string(template).render(
        method="POST", headers={"content-type": "application/json"}, body=body
    )


def test_cloud_webhook_template_renders_the_event() -> None:
    config = _cloud_config("example-small", uuid.uuid4())
    body = {"triggerId": 'abc"-123', "roundNumber": 1001, "dataVersion": "v5.3", "isTest": False}
    event = Event.model_validate(json.loads(_render(config["webhook"]["template"], body)))
    assert event.event == "numerai.round.webhook"
    assert event.resource.id == 'numerai.trigger.abc"-123'
    assert event.resource["numerai.model"] == "example-small"
    assert event.payload == body
    minimal = json.loads(_render(config["webhook"]["template"], {"triggerId": "t"}))
    assert minimal["payload"] == {
        "triggerId": "t",
        "roundNumber": None,
        "dataVersion": None,
        "isTest": None,
    }
    with pytest.raises(TypeError):  # no triggerId: rendering fails, Cloud answers 400
        _render(config["webhook"]["template"], {"roundNumber": 1})


def test_cloud_automation_parses_and_runs_the_deployment() -> None:
    deployment_id = uuid.uuid4()
    (automation_data,) = _cloud_config("example-small", deployment_id)["automations"]
    automation = AutomationCore.model_validate(automation_data)
    assert isinstance(automation.trigger, EventTrigger)
    assert automation.trigger.expect == {"numerai.round.webhook"}
    (action,) = automation.actions
    assert isinstance(action, RunDeployment) and action.deployment_id == deployment_id
    assert action.parameters == {
        "models": ["example-small"],
        "trigger_id": "{{ event.payload.triggerId }}",
    }
    config = _cloud_config("example-small", deployment_id)
    event = Event.model_validate(
        json.loads(_render(config["webhook"]["template"], {"triggerId": "t"}))
    )
    match = ResourceSpecification.model_validate(automation_data["trigger"]["match"])
    assert match.matches(event.resource)
    other = event.model_copy(deep=True)
    other.resource.root["numerai.model"] = "another"
    assert not match.matches(other.resource)


def test_cloud_automation_runs_on_a_real_server(deployment_id: UUID) -> None:
    """The automation, applied to the local server, turns the webhook's event into a run."""
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    config = _cloud_config("example-small", deployment_id)
    automation = AutomationCore.model_validate(config["automations"][0])
    trigger = _trigger()
    rendered = json.loads(_render(config["webhook"]["template"], {"triggerId": trigger}))
    with get_client(sync_client=True) as client:
        automation_id = client.create_automation(automation)
    try:
        time.sleep(1)  # the triggers service loads automations on change
        emit_event(**rendered)
        EventsWorker.drain_all()
        deadline = time.monotonic() + 20
        while not (runs := runs_of(deployment_id, trigger)) and time.monotonic() < deadline:
            time.sleep(0.25)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)
    (run,) = runs
    assert run.parameters["models"] == ["example-small"]


@pytest.mark.parametrize("window_open", [True, False])
def test_round_opened_event_is_emitted_inside_a_window_only(
    receiver: str,
    webhook_secret: str,
    prefect_server: str,
    monkeypatch: pytest.MonkeyPatch,
    window_open: bool,
) -> None:
    from model.schedule import ROUND_WINDOWS

    tuesday = ROUND_WINDOWS[0]
    monkeypatch.setattr(receiver_module, "window_at", lambda _: tuesday if window_open else None)
    model = f"opened-{uuid.uuid4().hex[:8]}"
    trigger = _trigger()
    body = {"triggerId": trigger, "roundNumber": 4242}
    assert _post(f"{receiver}/webhook/{webhook_secret}/{model}", body).status_code == 200

    def opened() -> list[dict[str, Any]]:
        response = httpx.post(
            f"{prefect_server}/events/filter",
            json={"filter": {"event": {"name": ["numerai.round.opened"]}}, "limit": 50},
        )
        return [e for e in response.json()["events"] if e["payload"].get("trigger_id") == trigger]

    deadline = time.monotonic() + (15 if window_open else 3)
    while not (events := opened()) and time.monotonic() < deadline:
        time.sleep(0.3)
    if not window_open:
        assert events == []
        return
    [event] = events
    assert event["resource"]["prefect.resource.id"] == f"numerai.model.{model}"
    assert event["resource"]["numerai.window"] == "tuesday"
    assert event["resource"]["numerai.round"] == "4242"
    assert webhook_secret not in json.dumps(event)
