"""Where failure notifications go: one Prefect notification block named ``numerai-notify``.

Automations send through it (their ``send-notification`` action needs a notification block, i.e.
one whose class has the ``notify`` capability). Three kinds: Slack (Prefect's SlackWebhook), a
generic webhook posting JSON ``{subject, body}`` (Prefect's CustomWebhookNotificationBlock) and
e-mail, an SMTP notification block on prefect-email's EmailServerCredentials.

prefect-email has credentials but no notification block, so ``EmailNotification`` is defined here.
The Prefect server loads a block class by its type slug when it sends a notification, so the
server must be able to import this module: the project declares it under the
``prefect.collections`` entry point group, which Prefect imports on start.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any, Literal
from uuid import UUID

import anyio.to_thread
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.types import SecretDict
from prefect_email import EmailServerCredentials
from pydantic import Field, SecretStr

NOTIFIER_BLOCK_NAME = "numerai-notify"
NotifierKind = Literal["slack", "email", "webhook"]
NOTIFIER_KINDS: tuple[NotifierKind, ...] = ("slack", "email", "webhook")


class EmailNotification(NotificationBlock):
    """Send notifications as e-mail through an SMTP server described by prefect-email credentials.

    Example:
        ```python
        from deployments.notifications import EmailNotification

        EmailNotification.load("numerai-notify").notify("round 1000 failed", subject="numerai")
        ```
    """

    _block_type_name = "Numerai Email Notification"
    _block_type_slug = "numerai-email-notification"
    _documentation_url = "https://docs.prefect.io/integrations/prefect-email"  # type: ignore[assignment]

    credentials: EmailServerCredentials = Field(
        description="The SMTP server and login (password kept as a secret)."
    )
    email_to: list[str] = Field(description="Who receives the notifications.")
    email_from: str | None = Field(
        default=None, description="Sender address; defaults to the SMTP username."
    )

    def message(self, body: str, subject: str | None) -> EmailMessage:
        """The e-mail to send for one notification."""
        msg = EmailMessage()
        msg["Subject"] = subject or "Numerai notification"
        msg["From"] = self.email_from or self.credentials.username or "numerai-prefect"
        msg["To"] = ", ".join(self.email_to)
        msg.set_content(body)
        return msg

    def send(self, body: str, subject: str | None = None) -> None:
        """Send one notification, blocking until the SMTP server accepted it."""
        with self.credentials.get_server() as server:
            server.send_message(self.message(body, subject))

    async def notify(self, body: str, subject: str | None = None) -> None:
        """Send one notification (from the Prefect server's actions service or any event loop)."""
        try:
            await anyio.to_thread.run_sync(self.send, body, subject)
        except (OSError, smtplib.SMTPException):
            self.logger.exception("E-mail notification failed")
            if self._raise_on_failure:
                raise


def slack_notifier(url: str) -> SlackWebhook:
    """A Slack incoming-webhook notifier (the URL is the secret)."""
    return SlackWebhook(url=SecretStr(url))


def webhook_notifier(url: str, token: str | None = None) -> CustomWebhookNotificationBlock:
    """A generic webhook notifier posting JSON {subject, body}; URL and token are kept secret."""
    secrets: dict[str, Any] = {"url": url}
    headers = None
    if token:
        secrets["token"] = token
        headers = {"Authorization": "Bearer {{token}}"}
    return CustomWebhookNotificationBlock(
        name=NOTIFIER_BLOCK_NAME,
        url="{{url}}",
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        headers=headers,
        cookies=None,
        secrets=SecretDict(secrets),
    )


def email_notifier(
    email_to: list[str] | str,
    smtp_server: str,
    *,
    smtp_port: int | None = None,
    smtp_type: str = "STARTTLS",
    username: str | None = None,
    password: str | None = None,
    email_from: str | None = None,
) -> EmailNotification:
    """An e-mail notifier through an SMTP server (the password is kept secret)."""
    recipients = [email_to] if isinstance(email_to, str) else list(email_to)
    credentials = EmailServerCredentials(
        smtp_server=smtp_server,
        smtp_port=smtp_port,
        smtp_type=smtp_type,
        username=username,
        password=SecretStr(password or ""),
    )
    return EmailNotification(credentials=credentials, email_to=recipients, email_from=email_from)


def build_notifier(kind: NotifierKind, **settings: Any) -> NotificationBlock:
    """The notification block of the given kind, not yet saved."""
    if kind == "slack":
        return slack_notifier(**settings)
    if kind == "webhook":
        return webhook_notifier(**settings)
    if kind == "email":
        return email_notifier(**settings)
    raise ValueError(f"unknown notifier kind {kind!r}: choose one of {', '.join(NOTIFIER_KINDS)}")


def save_notifier(kind: NotifierKind, **settings: Any) -> UUID:
    """Save the chosen notifier as ``numerai-notify`` (overwriting) and return its document id."""
    block = build_notifier(kind, **settings)
    document_id = block.save(NOTIFIER_BLOCK_NAME, overwrite=True)
    assert isinstance(document_id, UUID)
    return document_id
