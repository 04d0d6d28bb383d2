"""The sandbox POSTs round triggers to registered webhooks, like Numerai."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numerapi
import pytest

from sandbox import Sandbox


class Sink:
    """A tiny loopback HTTP server that records POSTed JSON bodies and answers `statuses`."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.statuses = list(statuses or [])
        self.delay = delay
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                sink.bodies.append((self.path, json.loads(self.rfile.read(length))))
                time.sleep(sink.delay)
                status = sink.statuses.pop(0) if sink.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A sink answering 200."""
    s = Sink()
    yield s
    s.close()


def test_open_round_posts_one_trigger_per_model(sandbox: Sandbox, sink: Sink) -> None:
    alpha, beta = sandbox.models["alpha"], sandbox.models["beta"]
    sandbox.set_webhook(alpha, f"{sink.url}/hook/alpha")
    sandbox.set_webhook(beta, f"{sink.url}/hook/beta")
    rnd = sandbox.open_round()
    deliveries = sandbox.wait_for_deliveries(2, timeout=10)
    assert {d.model_id for d in deliveries} == {alpha, beta}
    assert all(d.ok and d.attempts == 1 and not d.is_test for d in deliveries)
    assert len({d.trigger_id for d in deliveries}) == 2
    received = dict(sink.bodies)
    for d in deliveries:
        name = "alpha" if d.model_id == alpha else "beta"
        assert received[f"/hook/{name}"] == {
            "triggerId": d.trigger_id,
            "roundNumber": rnd.number,
            "dataVersion": "v5.3",
            "isTest": False,
        }
        assert (d.model_id, d.trigger_id) in sandbox.triggers


def test_open_round_does_not_wait_for_the_receiver(sandbox: Sandbox, tmp_path: Path) -> None:
    slow = Sink(delay=1.5)
    try:
        sandbox.set_webhook(sandbox.models["alpha"], slow.url)
        started = time.monotonic()
        sandbox.open_round()
        assert time.monotonic() - started < 0.5
        assert sandbox.wait_for_deliveries(1, timeout=10)[0].ok
    finally:
        slow.close()


def test_retries_non_2xx_then_records_the_outcome(sandbox: Sandbox) -> None:
    flaky = Sink(statuses=[503, 500])
    try:
        sandbox.set_webhook(sandbox.models["alpha"], flaky.url)
        sandbox.open_round()
        (delivery,) = sandbox.wait_for_deliveries(1, timeout=10)
        assert (delivery.status, delivery.attempts, delivery.ok) == (200, 3, True)
        assert len({body["triggerId"] for _, body in flaky.bodies}) == 1  # same trigger retried
    finally:
        flaky.close()


def test_unreachable_webhook_records_the_error(sandbox: Sandbox) -> None:
    dead = Sink()
    dead.close()  # nothing listens on this port any more
    sandbox.webhook_timeout = 1.0
    sandbox.set_webhook(sandbox.models["alpha"], dead.url)
    sandbox.open_round()
    (delivery,) = sandbox.wait_for_deliveries(1, timeout=10)
    assert delivery.status is None and delivery.attempts == 3 and not delivery.ok
    assert delivery.error and "Connect" in delivery.error


def test_trigger_model_webhook_posts_a_test_trigger(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, sink: Sink
) -> None:
    model_id = sandbox.models["beta"]
    assert numerai.set_submission_webhook(model_id, sink.url) is True
    mutation = "mutation($m: String!) { triggerModelWebhook(modelId: $m) }"
    data = numerai.raw_query(mutation, {"m": model_id}, authorization=True)["data"]
    trigger_id = data["triggerModelWebhook"]
    (delivery,) = sandbox.wait_for_deliveries(1, timeout=10)
    assert (delivery.trigger_id, delivery.is_test, delivery.ok) == (trigger_id, True, True)
    assert sink.bodies == [
        ("/", {"triggerId": trigger_id, "roundNumber": 1000, "dataVersion": "v5.3", "isTest": True})
    ]


def test_no_webhook_no_delivery(sandbox: Sandbox) -> None:
    sandbox.open_round()
    assert sandbox.trigger_webhook(sandbox.models["alpha"])
    with pytest.raises(TimeoutError):
        sandbox.wait_for_deliveries(1, timeout=0.3)
