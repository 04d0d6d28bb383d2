"""The notifier blocks: saved with their secrets as secrets, and delivering through the server."""

from __future__ import annotations

import asyncio
import base64
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger

from deployments.notifications import NOTIFIER_BLOCK_NAME, EmailNotification, save_notifier

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
    email = cast(EmailNotification, EmailNotification.load(NOTIFIER_BLOCK_NAME))
    assert email.credentials.password.get_secret_value() == SMTP_PASSWORD
    with get_client(sync_client=True) as client:
        for document_id, secret in ((slack_id, slack_url), (email_id, SMTP_PASSWORD)):
            stored = client.read_block_document(document_id, include_secrets=False)
            assert secret not in str(stored.data)
        assert "secret-path" not in str(
            client.read_block_document(webhook_id, include_secrets=False).data
        )
    with pytest.raises(ValueError, match="unknown notifier kind"):
        save_notifier("pager", url="x")  # type: ignore[arg-type]


def test_email_notifier_sends_through_smtp(smtp_sink: SmtpSink) -> None:
    port = smtp_sink.server_address[1]
    credentials = {k: v for k, v in _email_settings(port).items() if k != "email_to"}
    block = EmailNotification.model_validate(
        {"credentials": credentials, "email_to": ["ops@x.org"]}
    )
    asyncio.run(block.notify("round 1000 failed for alpha", subject="Numerai: alpha"))
    assert smtp_sink.received.wait(10)
    assert "Subject: Numerai: alpha" in smtp_sink.messages[0]
    assert "round 1000 failed for alpha" in smtp_sink.messages[0]
    assert SMTP_PASSWORD in smtp_sink.logins[0]  # logged in, and only there


def test_server_sends_email_notifications(automation_server: str, smtp_sink: SmtpSink) -> None:
    """The server loads the e-mail block class through the prefect.collections entry point."""
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


def test_email_block_is_a_notification_block() -> None:
    assert "notify" in EmailNotification.get_block_capabilities()
    assert Block.get_block_class_from_key("numerai-email-notification") is EmailNotification
