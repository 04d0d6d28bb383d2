"""The receiver's own limits: body deadline, clients that leave, requests in flight, lifespan.

Enforced by the ASGI app, so these hold under any server; uvicorn here only carries the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client

from deployments.receiver import ReceiverApp, ReceiverSettings, create_app
from model.names import trigger_variable_name
from model.triggers import WebhookTrigger
from tests.support import LogRecords, runs_of, serve_in_thread


@contextlib.contextmanager
def receiver_records() -> Iterator[list[logging.LogRecord]]:
    """Every record of the receiver's and uvicorn's loggers while the block runs."""
    handler = LogRecords()
    names = ("deployments.receiver", "uvicorn.error", "uvicorn")
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for log, _ in saved:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        for log, level in saved:
            log.removeHandler(handler)
            log.setLevel(level)


@contextlib.contextmanager
def served(settings: ReceiverSettings) -> Iterator[tuple[ReceiverApp, str]]:
    """The app and its URL under uvicorn (uvicorn's access log off, as `main` runs it)."""
    app = create_app(settings)
    with serve_in_thread(app, log_config=None, access_log=False) as url:
        yield app, url


def _open(url: str, secret: str, declared: int, sent: bytes) -> socket.socket:
    """A connection that declares a body of `declared` bytes and sends only `sent`."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(
        f"POST /webhook/{secret}/alpha HTTP/1.1\r\nHost: receiver\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode()
        + sent
    )
    return conn


def _wait_for(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


def test_a_body_that_never_finishes_is_408_after_the_deadline(
    settings: ReceiverSettings,
) -> None:
    with served(replace(settings, body_timeout=0.5)) as (_, url):
        conn = _open(url, settings.secret, 100, b'{"triggerId": ')
        with conn:
            answer = b""
            while chunk := conn.recv(4096):  # the receiver answers, then closes
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert b"body: not received within 0.5 s" in body


def test_clients_that_leave_cost_one_short_line_each_and_no_traceback(
    settings: ReceiverSettings, capfd: pytest.CaptureFixture[str]
) -> None:
    stalled = 50
    with served(settings) as (app, url), receiver_records() as records:
        conns = [_open(url, settings.secret, 200, b'{"trigger') for _ in range(stalled)]
        _wait_for(lambda: app.in_flight == stalled, f"{stalled} requests in flight")
        for conn in conns:
            conn.close()
        _wait_for(lambda: app.in_flight == 0, "every request ended")
        _wait_for(lambda: len(records) >= stalled, "one line per request")
    assert [r for r in records if r.exc_info or r.levelno >= logging.ERROR] == []
    lines = [r.getMessage() for r in records]
    assert len(lines) == stalled
    assert all("client left before its body was complete" in line for line in lines)
    assert all("\n" not in line and len(line) < 200 for line in lines)
    _, err = capfd.readouterr()
    assert "Traceback" not in err


def test_requests_over_the_in_flight_limit_are_503_at_once(settings: ReceiverSettings) -> None:
    with served(replace(settings, max_in_flight=2, body_timeout=30)) as (app, url):
        held = [_open(url, settings.secret, 100, b"{") for _ in range(2)]
        _wait_for(lambda: app.in_flight == 2, "two requests in flight")
        busy = httpx.post(f"{url}/webhook/{settings.secret}/alpha", json={"triggerId": "t"})
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "1"
        assert "too many requests at once" in busy.json()["detail"]
        for conn in held:
            conn.close()
        _wait_for(lambda: app.in_flight == 0, "the held requests ended")
        trigger = f"test-{uuid.uuid4()}"
        after = httpx.post(f"{url}/webhook/{settings.secret}/alpha", json={"triggerId": trigger})
        assert after.status_code == 200, after.text


def test_websocket_is_closed_and_lifespan_closes_the_prefect_client(
    settings: ReceiverSettings,
) -> None:
    app = create_app(settings)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def scenario() -> None:
        async def nothing() -> Any:
            return {"type": "websocket.connect"}

        await app({"type": "websocket", "path": "/x"}, nothing, send)
        session = app.receiver.session()
        await session.start()
        messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive() -> Any:
            return next(messages)

        await app({"type": "lifespan"}, receive, send)
        assert not session.started

    asyncio.run(scenario())
    assert [m["type"] for m in sent] == [
        "websocket.close",
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


def test_a_burst_of_twenty_is_answered_and_creates_each_run_once(
    receiver: str, webhook_secret: str, deployment_id: UUID
) -> None:
    """A round opening: twenty models' webhooks at once, each its own trigger (then again):
    one run of the round, every trigger kept. Then twenty triggers at once on the all-models
    route: a run each, created once.

    On the session's server: SQLite unless NUMERAI_TEST_DATABASE_URL names a PostgreSQL server.
    """
    number = random.randint(100_000, 999_999)
    triggers = {f"burst-{uuid.uuid4().hex[:12]}": f"burst-{uuid.uuid4()}" for _ in range(20)}

    def deliver(model_and_trigger: tuple[str | None, str]) -> httpx.Response:
        model, trigger = model_and_trigger
        route = f"{receiver}/webhook/{webhook_secret}" + (f"/{model}" if model else "")
        with httpx.Client(timeout=30) as client:  # a connection of its own
            return client.post(route, json={"triggerId": trigger, "roundNumber": number})

    with ThreadPoolExecutor(len(triggers)) as pool:
        first = list(pool.map(deliver, triggers.items()))
        again = list(pool.map(deliver, triggers.items()))
    assert [r.status_code for r in first + again] == [200] * 40
    assert [r.json()["duplicate"] for r in again] == [True] * 20
    [run_id] = {r.json()["flow_run_id"] for r in first + again}
    [run] = [r for r in runs_of(deployment_id) if r.idempotency_key == f"numerai-round-{number}"]
    assert str(run.id) == run_id
    with get_client(sync_client=True) as client:
        for model, trigger in triggers.items():
            kept = client.read_variable_by_name(trigger_variable_name(model))
            assert kept is not None and WebhookTrigger.from_value(kept.value) is not None
            assert WebhookTrigger.from_value(kept.value).trigger_id == trigger  # type: ignore[union-attr]

    everyone: list[tuple[str | None, str]] = [(None, f"all-{uuid.uuid4()}") for _ in range(20)]
    with ThreadPoolExecutor(len(everyone)) as pool:
        first = list(pool.map(deliver, everyone))
        again = list(pool.map(deliver, everyone))
    assert [r.status_code for r in first + again] == [200] * 40
    assert [r.json()["duplicate"] for r in again] == [True] * 20
    for (_, trigger), answer, repeated in zip(everyone, first, again, strict=True):
        (run,) = runs_of(deployment_id, trigger)
        assert str(run.id) == answer.json()["flow_run_id"] == repeated.json()["flow_run_id"]
