"""Where failure notifications go: one Prefect notification block named ``numerai-notify``.

Automations send through it (their ``send-notification`` action needs a notification block, i.e.
one whose class has the ``notify`` capability). The Prefect server loads that block's class when
it sends, so every kind is one of Prefect's own blocks and the server needs none of this
project's code: Slack (SlackWebhook), a generic webhook posting JSON ``{subject, body}``
(CustomWebhookNotificationBlock), and e-mail through SMTP or any other Apprise URL.

Prefect ships no generic Apprise block: its Apprise-based SlackWebhook hands any URL that is not
a Slack webhook to Apprise as it is, so e-mail (``mailtos://...``) and other Apprise URLs are
saved in that block type (the UI shows it as "Slack Webhook"; the URL, a secret, decides).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlencode
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.types import SecretDict
from pydantic import SecretStr

NOTIFIER_BLOCK_NAME = "numerai-notify"
NotifierKind = Literal["slack", "email", "webhook", "apprise"]
NOTIFIER_KINDS: tuple[NotifierKind, ...] = ("slack", "email", "webhook", "apprise")
# How the SMTP connection is secured: Apprise's mailtos:// with its mode, or plain mailto://.
SMTP_MODES = {
    "STARTTLS": ("mailtos", "starttls"),
    "SSL": ("mailtos", "ssl"),
    "INSECURE": ("mailto", None),
}


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


def apprise_notifier(url: str) -> SlackWebhook:
    """Any Apprise URL (mailtos://, discord://, tgram://, ...) in Prefect's Apprise block.

    Refused here when Apprise cannot load it: the server would otherwise send nothing, quietly.
    """
    import apprise

    if not apprise.Apprise().add(url):
        scheme = url.partition("://")[0]
        raise ValueError(
            f"Apprise cannot load this {scheme}:// URL (see its log above); "
            "https://github.com/caronc/apprise/wiki lists the URL forms"
        )
    return SlackWebhook(url=SecretStr(url))


def smtp_url(
    email_to: list[str] | str,
    smtp_server: str,
    *,
    smtp_port: int | None = None,
    smtp_type: str = "STARTTLS",
    username: str | None = None,
    password: str | None = None,
    email_from: str | None = None,
) -> str:
    """The Apprise URL that sends e-mail through an SMTP server (it holds the password)."""
    recipients = [email_to] if isinstance(email_to, str) else list(email_to)
    try:
        scheme, mode = SMTP_MODES[smtp_type.upper()]
    except KeyError:
        raise ValueError(
            f"SMTP type {smtp_type!r}: choose one of {', '.join(SMTP_MODES)}"
        ) from None
    login = ""
    if username:
        login = quote(username, safe="")
        if password:
            login += ":" + quote(password, safe="")
        login += "@"
    host = smtp_server + (f":{smtp_port}" if smtp_port else "")
    query: dict[str, str] = {"to": ",".join(recipients), "smtp": smtp_server}
    sender = email_from or (username if username and "@" in username else None)
    query["from"] = sender or f"numerai-prefect@{smtp_server}"
    if mode:
        query["mode"] = mode
    return f"{scheme}://{login}{host}/?{urlencode(query)}"


def email_notifier(email_to: list[str] | str, smtp_server: str, **smtp: Any) -> SlackWebhook:
    """E-mail through an SMTP server, sent by Prefect's own Apprise block (password a secret)."""
    return apprise_notifier(smtp_url(email_to, smtp_server, **smtp))


def build_notifier(kind: NotifierKind, **settings: Any) -> NotificationBlock:
    """The notification block of the given kind, not yet saved."""
    if kind == "slack":
        return slack_notifier(**settings)
    if kind == "webhook":
        return webhook_notifier(**settings)
    if kind == "email":
        return email_notifier(**settings)
    if kind == "apprise":
        return apprise_notifier(**settings)
    raise ValueError(f"unknown notifier kind {kind!r}: choose one of {', '.join(NOTIFIER_KINDS)}")


def save_notifier(kind: NotifierKind, **settings: Any) -> UUID:
    """Save the chosen notifier as ``numerai-notify`` (overwriting) and return its document id."""
    block = build_notifier(kind, **settings)
    document_id = block.save(NOTIFIER_BLOCK_NAME, overwrite=True)
    assert isinstance(document_id, UUID)
    return document_id
