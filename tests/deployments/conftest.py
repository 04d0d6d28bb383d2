"""Fixtures for the receiver: a deployment of submit-round and the receiver under uvicorn."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest

from deployments.receiver import ReceiverSettings, create_app
from tests.support import serve_in_thread, unpooled_deployment

DEPLOYMENT = "submit-round/receiver-test"


@pytest.fixture(autouse=True)
def outside_round_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver's clock outside every round window, whatever time the tests run at: a
    webhook without a round number starts a run of its own (a test sets a window to see more)."""
    from deployments import receiver

    monkeypatch.setattr(receiver, "window_at", lambda _: None)


@pytest.fixture(scope="module")
def deployment_id(prefect_server: str) -> Iterator[UUID]:
    """A deployment of the real submit-round flow without a work pool: its runs stay Scheduled."""
    with unpooled_deployment(DEPLOYMENT.split("/")[1]) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def webhook_secret() -> str:
    """A fresh secret of the recommended shape."""
    return secrets.token_urlsafe(32)


@contextlib.contextmanager
def serve(settings: ReceiverSettings) -> Iterator[str]:
    """Run the receiver under uvicorn (access log on, to prove it is redacted); yield its URL."""
    with serve_in_thread(create_app(settings), log_config=None, access_log=True) as url:
        yield url


@pytest.fixture(scope="module")
def settings(prefect_server: str, deployment_id: UUID, webhook_secret: str) -> ReceiverSettings:
    """Receiver settings pointing at the test server and the test deployment."""
    return ReceiverSettings(
        secret=webhook_secret, prefect_api_url=prefect_server, deployment=DEPLOYMENT, max_bytes=4096
    )


@pytest.fixture(scope="module")
def receiver(settings: ReceiverSettings) -> Iterator[str]:
    """The receiver's base URL, served for the whole module."""
    with serve(settings) as url:
        yield url


@pytest.fixture
def serve_with() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """Serve a receiver with some settings changed: `with serve_with(settings, x=...) as url`."""

    def _serve(base: ReceiverSettings, **changes: Any) -> contextlib.AbstractContextManager[str]:
        from dataclasses import replace

        return serve(replace(base, **changes))

    return _serve
