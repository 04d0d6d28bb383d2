"""The notifier blocks: Prefect's own, secrets kept as secrets, delivering through the server;
and one message, with a working link, for each failure of a round."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import cloudpickle
import pytest
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger

from deployments.automations import RenderOptions, apply_automations, render
from deployments.notifications import (
    NOTIFIER_BLOCK_NAME,
    build_notifier,
    email_notifier,
    save_notifier,
    smtp_url,
)
from tests.flows.conftest import rank_first_feature

from .conftest import Sink

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "smtp-pass-" + uuid.uuid4().hex


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA) to receive messages on loopback."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.messages: list[str] = []
        self.logins: list[str] = []
        self.received = threading.Event()


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpSink

    def _reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self._reply("220 sink")
        while line := self.rfile.readline().decode().rstrip("\r\n"):
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self._reply("250-sink")
                self._reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                self.server.logins.append(base64.b64decode(line.split()[-1]).decode())
                self._reply("235 ok")
            elif verb == "DATA":
                self._reply("354 go on")
                lines = []
                while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                    lines.append(data)
                self.server.messages.append("".join(lines))
                self.server.received.set()
                self._reply("250 queued")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("250 ok")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 recording every message."""
    server = SmtpSink()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _email_settings(port: int) -> dict[str, object]:
    return {
        "email_to": ["ops@example.org"],
        "smtp_server": "127.0.0.1",
        "smtp_port": port,
        "smtp_type": "INSECURE",
        "username": "numerai",
        "password": SMTP_PASSWORD,
        "email_from": "numerai@example.org",
    }


def test_each_kind_saves_its_secret_as_a_secret(automation_server: str, sink: Sink) -> None:
    slack_url = "https://hooks.slack.com/services/T000/B000/" + uuid.uuid4().hex
    slack_id = save_notifier("slack", url=slack_url)
    slack = cast(SlackWebhook, SlackWebhook.load(NOTIFIER_BLOCK_NAME))
    assert slack.url.get_secret_value() == slack_url
    webhook_id = save_notifier("webhook", url=sink.url + "/secret-path", token="tkn")
    webhook = cast(
        CustomWebhookNotificationBlock, CustomWebhookNotificationBlock.load(NOTIFIER_BLOCK_NAME)
    )
    assert webhook.url == "{{url}}" and "secret-path" not in webhook.model_dump_json()
    email_id = save_notifier("email", **_email_settings(25))
    email = cast(SlackWebhook, SlackWebhook.load(NOTIFIER_BLOCK_NAME))
    assert SMTP_PASSWORD in email.url.get_secret_value()
    with get_client(sync_client=True) as client:
        for document_id, secret in ((slack_id, slack_url), (email_id, SMTP_PASSWORD)):
            stored = client.read_block_document(document_id, include_secrets=False)
            assert secret not in str(stored.data)
        assert "secret-path" not in str(
            client.read_block_document(webhook_id, include_secrets=False).data
        )
    with pytest.raises(ValueError, match="unknown notifier kind"):
        save_notifier("pager", url="x")  # type: ignore[arg-type]


def test_every_notifier_is_one_of_prefects_own_blocks() -> None:
    """The Prefect server sends with the block's class: none may need this project's code."""
    blocks = [
        build_notifier("slack", url="https://hooks.slack.com/services/T0/B0/X"),
        build_notifier("webhook", url="http://127.0.0.1:9/hook"),
        build_notifier("email", **_email_settings(25)),
        build_notifier("apprise", url="tgram://123456789:abcdefg_hijklmnop/12315544/"),
    ]
    for block in blocks:
        cls = Block.get_block_class_from_key(block.get_block_type_slug())
        assert cls.__module__.startswith("prefect."), cls
        assert "notify" in cls.get_block_capabilities()


def test_smtp_url_quotes_the_login_and_names_the_security() -> None:
    url = smtp_url(
        ["a@x.org", "b@x.org"], "smtp.x.org", smtp_port=587, username="me@x.org",
        password="p@ss/word:1",
    )  # fmt: skip
    assert url.startswith("mailtos://me%40x.org:p%40ss%2Fword%3A1@smtp.x.org:587/?")
    assert "to=a%40x.org%2Cb%40x.org" in url and "mode=starttls" in url
    assert "from=me%40x.org" in url
    assert smtp_url("a@x.org", "h", smtp_type="SSL").startswith("mailtos://h/?")
    assert smtp_url("a@x.org", "h", smtp_type="insecure").startswith("mailto://h/?")
    with pytest.raises(ValueError, match="Apprise cannot load this nosuch:// URL"):
        build_notifier("apprise", url="nosuch://x")
    with pytest.raises(ValueError, match="SMTP type 'TLS'"):
        smtp_url("a@x.org", "h", smtp_type="TLS")


def test_email_notifier_sends_through_smtp(smtp_sink: SmtpSink) -> None:
    settings = {k: v for k, v in _email_settings(smtp_sink.server_address[1]).items()}
    block = email_notifier(**settings)  # type: ignore[arg-type]
    asyncio.run(block.anotify("round 1000 failed for alpha", subject="Numerai: alpha"))
    assert smtp_sink.received.wait(10)
    assert "Subject: Numerai: alpha" in smtp_sink.messages[0]
    assert "round 1000 failed for alpha" in smtp_sink.messages[0]
    assert SMTP_PASSWORD in smtp_sink.logins[0]  # logged in, and only there


def test_server_sends_email_notifications(automation_server: str, smtp_sink: SmtpSink) -> None:
    """The server sends the e-mail with Prefect's own Apprise block."""
    block_id = save_notifier("email", **_email_settings(smtp_sink.server_address[1]))
    event = f"numerai.test.email-{uuid.uuid4().hex[:6]}"
    automation = AutomationCore(
        name=f"test-{event}",
        trigger=EventTrigger(expect={event}, match={"prefect.resource.id": "numerai.test"}),
        actions=[SendNotification(block_document_id=block_id, subject="Numerai test", body="hi")],
    )
    with get_client(sync_client=True) as client:
        automation_id = client.create_automation(automation)
    try:
        time.sleep(1)
        emit_event(event=event, resource={"prefect.resource.id": "numerai.test"})
        assert smtp_sink.received.wait(20), "no e-mail arrived"
        assert "Subject: Numerai test" in smtp_sink.messages[0]
        assert SMTP_PASSWORD not in smtp_sink.messages[0]
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation_id)


def _constant(live_features: Any, live_benchmark_models: Any) -> Any:
    """A predictor whose output fails validation (constant predictions)."""
    frame = live_features.iloc[:, :0].copy()
    frame["prediction"] = 0.5
    return frame


def _failed_run_events(run_id: uuid.UUID) -> list[dict[str, Any]]:
    with get_client(sync_client=True) as client:
        response = client._client.post(
            "/events/filter",
            json={
                "filter": {
                    "any_resource": {"id": [f"prefect.flow-run.{run_id}"]},
                    "event": {"name": ["prefect.flow-run.Failed"]},
                    "occurred": {
                        "since": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
                    },
                }
            },
        )
        response.raise_for_status()
        return list(response.json()["events"])


def test_a_failed_model_is_one_message_with_model_round_reason_retry_and_link(
    automation_server: str, sink: Sink, tmp_path: Path
) -> None:
    """A model that fails in a round used to bring a message for the model and another for
    the round run, neither with a link that opens the run."""
    from prefect.server.events.schemas.automations import EventTrigger as ServerTrigger
    from prefect.server.events.schemas.events import ReceivedEvent
    from pydantic import SecretStr

    from blocks import NumeraiCredentials, NumeraiModel
    from flows import submit_round
    from sandbox import Sandbox

    block_id = save_notifier("webhook", url=sink.url + "/one-message")
    apply_automations(block_id, options=RenderOptions())
    time.sleep(1)  # the triggers service picks automation changes up asynchronously
    tag = uuid.uuid4().hex[:6]
    good, bad = f"good_{tag}", f"bad_{tag}"
    predictor = tmp_path / "constant.pkl"
    predictor.write_bytes(cloudpickle.dumps(_constant))
    passing = tmp_path / "rank.pkl"
    passing.write_bytes(cloudpickle.dumps(rank_first_feature))
    with Sandbox(tmp_path / "sandbox", seed=1, size="tiny") as sandbox:
        for name in (good, bad):
            sandbox.add_model(name)
        sandbox.open_round()
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
        ).save(f"numerai-{tag}")
        for name, path in ((good, passing), (bad, predictor)):
            NumeraiModel(model_name=name, predictor_path=str(path), feature_set="small").save(
                name.replace("_", "-")
            )
        state = submit_round(
            models=[good.replace("_", "-"), bad.replace("_", "-")],
            credentials_block=f"numerai-{tag}",
            data_dir=str(tmp_path / "data"),
            return_state=True,
        )
    assert state.is_failed()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    note = sink.wait_for(lambda r: bad in r.body, timeout=30).json()
    assert note["subject"] == f"Numerai: {bad} round 1000 failed"
    assert "predictions not uploaded" in note["body"]
    assert "Next retry:" in note["body"]
    assert f"Run: {automation_server.removesuffix('/api')}/runs/flow-run/{run_id}" in note["body"]
    # The round run's Failed event, as the server recorded it, is not one run-failed answers.
    (run_failed,) = [a for a in render(block_id) if a.name == "numerai-run-failed"]
    trigger = ServerTrigger.model_validate(run_failed.trigger.model_dump())
    for _ in range(50):
        if events := _failed_run_events(run_id):
            break
        time.sleep(0.2)
    assert events, "the server recorded the run's Failed event"
    for event in events:
        assert not trigger.covers(ReceivedEvent.model_validate(event))
    assert not sink.matching(f"run {state.state_details.flow_run_id}")
    assert [r for r in sink.received if good in r.body] == []


def test_run_failed_still_answers_a_round_that_failed_for_another_reason() -> None:
    from prefect.server.events.schemas.automations import EventTrigger as ServerTrigger
    from prefect.server.events.schemas.events import ReceivedEvent

    (run_failed,) = [a for a in render(uuid.uuid4()) if a.name == "numerai-run-failed"]
    trigger = ServerTrigger.model_validate(run_failed.trigger.model_dump())

    def failed(message: str) -> ReceivedEvent:
        return ReceivedEvent.model_validate(
            {
                "occurred": dt.datetime.now(dt.UTC),
                "event": "prefect.flow-run.Failed",
                "resource": {
                    "prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}",
                    "prefect.state-message": message,
                },
                "related": [
                    {
                        "prefect.resource.id": f"prefect.flow.{uuid.uuid4()}",
                        "prefect.resource.role": "flow",
                        "prefect.resource.name": "submit-round",
                    }
                ],
                "id": uuid.uuid4(),
            }
        )

    assert trigger.covers(failed("No Numerai Model blocks are saved: nothing to submit"))
    assert trigger.covers(failed("Flow run encountered an exception. KeyError: 'data'"))
    assert not trigger.covers(failed("Round 1000: 1 of 2 models failed: bad: ValueError: x"))
