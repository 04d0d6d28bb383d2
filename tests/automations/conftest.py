"""A Prefect server with every service on (triggers, actions, late runs) and an HTTP sink.

The session's test harness server runs in ephemeral mode, which skips the late-runs service, and
the automations applied here (cancel stuck runs!) must not touch other tests' runs: so these tests
get a server of their own, started the way `prefect server start` runs in production.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support import background, free_port, wait_healthy


@pytest.fixture(scope="package")
def automation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on loopback with all services and fast proactive evaluation.

    Package-scoped: Prefect's settings point at it only while this package's tests run, so the
    tests after them (in any order) talk to their own server again.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-automations")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY": "PT1S",
        "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "true",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_AFTER_SECONDS": "1",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    log = home / "server.log"
    api = f"http://127.0.0.1:{port}/api"
    args = ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(args, env, log, cwd=home) as server:
        wait_healthy(f"{api}/health", server, log, timeout=90)
        with temporary_settings({PREFECT_API_URL: api}):
            # Prefect keeps one events worker per process, on the server it first sent to:
            # start a new one here, and again after, for the tests that follow.
            _drain_events()
            yield api
            _drain_events()


def _drain_events() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()


@dataclass
class Received:
    """One request the sink received."""

    path: str
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Sink:
    """A loopback HTTP endpoint standing in for Slack and webhook receivers."""

    url: str
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 30) -> Received:
        """The first request matching ``predicate``, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for item in self.received:
                    if predicate(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching notification in {timeout} s; got {self.received!r}"
                    )
                self.changed.wait(left)

    def matching(self, text: str) -> list[Received]:
        """Every request whose body contains ``text``."""
        with self.changed:
            return [item for item in self.received if text in item.body]

    def messages(self, text: str) -> set[str]:
        """The distinct messages whose body contains ``text``.

        Prefect's action service delivers at least once: when a step after the notification (its
        own "action executed" event) errors on a loaded server, the action is run again and the
        same message arrives twice. Tests that mean "one message per failure" count distinct ones.
        """
        return {item.body for item in self.matching(text)}


@pytest.fixture(scope="session")
def sink() -> Iterator[Sink]:
    """A threaded HTTP server on 127.0.0.1 recording every POST."""
    store = Sink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            with store.changed:
                store.received.append(Received(self.path, dict(self.headers), body))
                store.changed.notify_all()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield store
    server.shutdown()
    server.server_close()
