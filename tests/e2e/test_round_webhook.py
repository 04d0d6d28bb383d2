"""Numerai's round webhook, end to end: sandbox → receiver → Prefect → worker → verified."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

from blocks import NumeraiAPI
from model.names import WEBHOOK_TAG

from .conftest import LiveRound, wait_for_final

pytestmark = pytest.mark.integration


def wait_for_submission(live_round: LiveRound, model: str, timeout: float = 120) -> Any:
    """The model's submission for the current round, once the sandbox holds it."""
    number = live_round.sandbox.current_round.number  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in live_round.submissions(model) if s.round_number == number]
        if found:
            return found
        time.sleep(0.5)
    raise TimeoutError(f"no submission for {model} in round {number} after {timeout} s")


def test_round_opening_fires_the_webhook_and_each_model_submits_with_its_trigger(
    worker: Any, receiver: tuple[str, str], live_round: LiveRound
) -> None:
    url, secret = receiver
    sandbox = live_round.sandbox
    client = NumeraiAPI(sandbox.public_id, sandbox.secret_key, api_url=sandbox.api_url)
    for name, block in live_round.models.items():
        assert client.set_submission_webhook(
            sandbox.models[name], f"{url}/webhook/{secret}/{block}"
        )

    number = random.randint(100_000, 999_999)
    downloads_before = len(sandbox.downloads)
    sandbox.open_round(number=number)
    deliveries = sandbox.wait_for_deliveries(2, timeout=30)
    assert all(d.ok for d in deliveries), deliveries
    trigger_of = {d.model_id: d.trigger_id for d in deliveries}

    for name in live_round.models:
        [submission] = wait_for_submission(live_round, name)
        assert submission.trigger_id == trigger_of[sandbox.models[name]]
    # The round's webhooks started one run of the round, which downloaded the live data once.
    with get_client(sync_client=True) as prefect:
        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[WEBHOOK_TAG]))
        )
    [run] = [r for r in runs if r.idempotency_key == f"numerai-round-{number}"]
    assert wait_for_final(run.id).state.is_completed()  # type: ignore[union-attr]
    assert run.name == f"round-{number}"
    downloads = sandbox.downloads[downloads_before:]
    assert len([path for _, path, _ in downloads if path.endswith("/live.parquet")]) == 1

    # Numerai (or a proxy) delivers the same webhook again, five times at once: one run, no upload.
    name, block = "alpha", live_round.models["alpha"]
    body = {"triggerId": trigger_of[sandbox.models[name]], "roundNumber": number}
    with ThreadPoolExecutor(5) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(f"{url}/webhook/{secret}/{block}", json=body, timeout=30),
                range(5),
            )
        )
    assert {a.status_code for a in answers} == {200}
    [run_id] = {a.json()["flow_run_id"] for a in answers}
    assert wait_for_final(run_id).state.is_completed()  # type: ignore[union-attr]
    assert len(live_round.submissions("alpha")) == 1
    assert len([u for u in sandbox.uploads if u[1].startswith("alpha")]) == 1
