"""One run at a time works on a model: Prefect's global concurrency limits, with leases.

These run on the session's real `prefect server start` (see tests/conftest.py), whose lease
reclaimer frees a killed run's slot; the ephemeral test harness does not run it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound

from blocks import RoundInfo
from flows.leases import Lease, LeaseLost, ModelLeases, confirm_lease, ensure_model_limits
from model.names import model_limit_name
from tests.support import ROOT

from .conftest import Round, rank_first_feature

pytestmark = pytest.mark.integration


def slow_rank(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """Takes long enough that a second run arrives while the first is predicting."""
    import time

    time.sleep(3)
    return rank_first_feature(live_features, live_benchmark_models)


def test_overlapping_runs_upload_once_and_the_later_one_skips(open_round: Round) -> None:
    block = open_round.save_model("overlap", slow_rank)
    with ThreadPoolExecutor(2) as pool:
        # Each thread in a copy of this context: Prefect's settings (the server's URL) live there.
        runs = [pool.submit(contextvars.copy_context().run, open_round.run, [block]) for _ in "ab"]
        states = [run.result() for run in runs]
    assert all(state.is_completed() for state in states), [s.message for s in states]
    model_id = open_round.sandbox.models["overlap"]
    assert len(open_round.sandbox.submissions(model_id)) == 1
    statuses = sorted(report.status for state in states for report in state.result())
    assert statuses == ["already submitted", "verified"]


def test_two_blocks_of_one_model_take_turns_and_upload_once(open_round: Round) -> None:
    first = open_round.save_model("twin", slow_rank)
    second = open_round.save_model("twin", slow_rank)
    state = open_round.run([first, second])
    assert state.is_completed(), state.message
    assert sorted(r.status for r in state.result()) == ["already submitted", "verified"]
    assert len(open_round.sandbox.submissions(open_round.sandbox.models["twin"])) == 1


@pytest.fixture
def closing_round(open_round: Round) -> Round:
    """The open round replaced by one that closes in 40 s (15 s of it the upload margin)."""
    sandbox = open_round.sandbox
    sandbox.close_round()
    sandbox.open_round(closes=sandbox.now() + dt.timedelta(seconds=40))
    return open_round


def test_a_held_model_waits_until_the_upload_deadline_then_sends_nothing(
    closing_round: Round,
) -> None:
    block = closing_round.save_model("held")
    ensure_model_limits(["held"])
    with concurrency(model_limit_name("held"), occupy=1, lease_duration=60, strict=True):
        state = closing_round.run([block])
    assert state.is_failed()
    assert closing_round.sandbox.submissions(closing_round.sandbox.models["held"]) == []
    assert "RoundClosed" in (state.message or ""), state.message
    assert "another run held held" in (state.message or ""), state.message


def test_a_model_held_to_the_deadline_after_its_upload_is_reported_submitted(
    closing_round: Round,
) -> None:
    """The holder uploaded and still holds the model (models leased together are freed with
    the last of them): the waiting run reads the submission instead of failing the model."""
    block = closing_round.save_model("holder")
    assert closing_round.run([block]).is_completed()  # the holder's upload
    with concurrency(model_limit_name("holder"), occupy=1, lease_duration=60, strict=True):
        state = closing_round.run([block])
    assert state.is_completed(), state.message
    assert [r.status for r in state.result()] == ["already submitted"]
    assert len(closing_round.sandbox.submissions(closing_round.sandbox.models["holder"])) == 1


def test_the_limit_is_made_for_a_new_model_with_one_slot(open_round: Round) -> None:
    block = open_round.save_model("newcomer")
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_global_concurrency_limit_by_name(model_limit_name("newcomer"))
    assert open_round.run([block]).is_completed()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(model_limit_name("newcomer"))
    assert limit.limit == 1
    assert limit.active_slots == 0  # released when the model's work ended


def test_an_upload_confirms_the_lease_and_refuses_once_it_has_expired(
    prefect_server: str,
) -> None:
    ensure_model_limits(["lapsing"])
    name = model_limit_name("lapsing")
    with get_client(sync_client=True) as client:
        asked_at = time.monotonic()
        taken = client.increment_concurrency_slots_with_lease([name], 1, "concurrency", 60)
        lease_id = UUID(taken.json()["lease_id"])
        # Asked for 20 s ago or more: not fresh, so renewed before the upload.
        older = Lease(lease_id, asked_at - 20, 60)
        confirm_lease(older, "lapsing")  # held: the upload may go
        # Released as the server does an expired lease: gone, and the slot free for others.
        client.release_concurrency_slots_with_lease(lease_id)
    with pytest.raises(LeaseLost, match="lapsing's lease expired before its upload"):
        confirm_lease(older, "lapsing")
    # A lease asked for moments ago has two thirds of its duration left: no call is made.
    confirm_lease(Lease(lease_id, time.monotonic(), 60), "lapsing")


def _active_slots(*models: str) -> list[int]:
    with get_client(sync_client=True) as client:
        return [
            client.read_global_concurrency_limit_by_name(model_limit_name(m)).active_slots
            for m in models
        ]


def _round_open_for(minutes: float) -> RoundInfo:
    now = dt.datetime.now(dt.UTC)
    return RoundInfo(number=1, open_time=now, close_time=now + dt.timedelta(minutes=minutes))


def test_free_models_are_leased_together_and_freed_with_the_last_of_them(
    prefect_server: str,
) -> None:
    ensure_model_limits(["pair_a", "pair_b"])
    with get_client(sync_client=True) as client:
        leases = ModelLeases(client, _round_open_for(10))
        taken = leases.take_free(["pair_a", "pair_b"])
        assert taken["pair_a"].id == taken["pair_b"].id  # one call for both
        assert _active_slots("pair_a", "pair_b") == [1, 1]
        leases.release("pair_a")  # its task ended: the lease still holds pair_b's task
        assert _active_slots("pair_a", "pair_b") == [1, 1]
        leases.release("pair_b")
        assert _active_slots("pair_a", "pair_b") == [0, 0]


def test_a_model_held_elsewhere_leaves_the_others_leased_one_by_one(
    prefect_server: str,
) -> None:
    ensure_model_limits(["lone_a", "lone_b", "lone_c"])
    with (
        concurrency(model_limit_name("lone_b"), occupy=1, lease_duration=60, strict=True),
        get_client(sync_client=True) as client,
    ):
        leases = ModelLeases(client, _round_open_for(10))
        asked = time.monotonic()
        taken = leases.take_free(["lone_a", "lone_b", "lone_c"])
        assert sorted(taken) == ["lone_a", "lone_c"]
        assert taken["lone_a"].id != taken["lone_c"].id
        assert leases.retry_at > asked  # lone_b is asked for again later
        leases.release_all()
    assert _active_slots("lone_a", "lone_b", "lone_c") == [0, 0, 0]


KILLED_RUN = """
import sys
from flows import submit_round
submit_round(models=[sys.argv[1]], credentials_block=sys.argv[2], data_dir=sys.argv[3])
"""


def stuck(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """Says it started predicting, then never ends (until its process is killed)."""
    import os
    import pathlib
    import time

    pathlib.Path(os.environ["NUMERAI_TEST_MARKER"]).touch()
    time.sleep(3600)


def test_a_killed_run_frees_its_model_when_its_lease_expires(
    open_round: Round, prefect_server: str, tmp_path: Path
) -> None:
    block = open_round.save_model("killed", stuck)
    marker = tmp_path / "predicting"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "NUMERAI_TEST_MARKER": str(marker),
        "NUMERAI_MODEL_LEASE_SECONDS": "60",  # the shortest lease Prefect's server grants
    }
    args = [KILLED_RUN, block, open_round.credentials_block, str(tmp_path / "data")]
    process = subprocess.Popen(
        [sys.executable, "-c", *args], cwd=ROOT, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert process.poll() is None, "the run ended before its model started predicting"
            assert time.monotonic() < deadline, "the model never started predicting"
            time.sleep(0.2)
        with get_client(sync_client=True) as client:
            held = client.read_global_concurrency_limit_by_name(model_limit_name("killed"))
        assert held.active_slots == 1
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # no cleanup, no release: as an OOM kill
        process.wait()
    # The model's predictor is fixed meanwhile; the next run waits for the lease to expire.
    open_round.save_model("killed", rank_first_feature, block_name=block)
    started = time.monotonic()
    state = open_round.run([block])
    assert state.is_completed(), state.message
    assert len(open_round.sandbox.submissions(open_round.sandbox.models["killed"])) == 1
    assert time.monotonic() - started > 20, "the killed run's lease did not hold the model"
