"""Two runs of one round at once (the webhook's and a retry's): one upload per model."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running

from flows.tasks import earlier_runs

from .conftest import Round, rank_first_feature


def slow_rank(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """Takes long enough that a second run arrives while the first is predicting."""
    import time

    time.sleep(3)
    return rank_first_feature(live_features, live_benchmark_models)


def test_overlapping_runs_upload_once_and_the_later_one_skips(open_round: Round) -> None:
    block = open_round.save_model("overlap", slow_rank)
    with ThreadPoolExecutor(2) as pool:
        states = list(pool.map(lambda _: open_round.run([block]), range(2)))
    assert all(state.is_completed() for state in states), [s.message for s in states]
    model_id = open_round.sandbox.models["overlap"]
    assert len(open_round.sandbox.submissions(model_id)) == 1
    statuses = sorted(report.status for state in states for report in state.result())
    assert statuses == ["already submitted", "verified"]


@flow(name="submit-round")
def _round_run() -> None: ...


@task
def _model_task() -> None: ...


@flow(name="submit-model")
def _model_run() -> None: ...


def _earlier_run(name: str, round_crashed: bool) -> uuid.UUID:
    """A model's run left Running, as a round run's subflow that is at work or crashed."""
    with get_client(sync_client=True) as client:
        parent = client.create_flow_run(_round_run, state=Running())
        if round_crashed:
            client.set_flow_run_state(parent.id, Crashed(message="process killed"), force=True)
        link = client.create_task_run(_model_task, parent.id, dynamic_key=uuid.uuid4().hex)
        child = client.create_flow_run(
            _model_run, name=name, parent_task_run_id=link.id, state=Running()
        )
        return child.id


@pytest.fixture
def closing_round(open_round: Round) -> Round:
    """The open round replaced by one that closes in 40 s (15 s of it the upload margin)."""
    sandbox = open_round.sandbox
    sandbox.close_round()
    sandbox.open_round(closes=sandbox.now() + dt.timedelta(seconds=40))
    return open_round


def test_a_run_still_at_work_holds_the_model_until_the_close(closing_round: Round) -> None:
    block = closing_round.save_model("held")
    number = closing_round.sandbox.current_round.number  # type: ignore[union-attr]
    holder = _earlier_run(f"round-{number}-held", round_crashed=False)
    state = closing_round.run([block])
    assert state.is_failed()
    assert closing_round.sandbox.submissions(closing_round.sandbox.models["held"]) == []
    assert str(holder) in (state.message or ""), state.message
    assert "RoundClosed" in (state.message or ""), state.message


def test_a_run_whose_round_run_crashed_does_not_hold_the_model(closing_round: Round) -> None:
    block = closing_round.save_model("orphan")
    number = closing_round.sandbox.current_round.number  # type: ignore[union-attr]
    _earlier_run(f"round-{number}-orphan", round_crashed=True)
    state = closing_round.run([block])
    assert state.is_completed(), state.message
    assert len(closing_round.sandbox.submissions(closing_round.sandbox.models["orphan"])) == 1


def test_earlier_runs_are_ordered_by_the_servers_creation_time_then_id() -> None:
    from prefect.client.schemas.objects import FlowRun

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ids = sorted(uuid.uuid4() for _ in range(3))

    def run(i: int, created: dt.datetime) -> FlowRun:
        return FlowRun.model_validate({"id": ids[i], "flow_id": uuid.uuid4(), "created": created})

    me = run(1, t)
    others = [run(0, t), run(1, t), run(2, t), run(2, t - dt.timedelta(seconds=1))]
    assert [r.id for r in earlier_runs(me, others)] == [ids[0], ids[2]]
