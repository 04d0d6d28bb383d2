"""Models of a round work side by side, each in its own task run named round-N-model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from .conftest import Round


def meeting(directory: Path, expected: int) -> Any:
    """A predictor that waits until `expected` models are predicting at once (or 30 s pass)."""

    def predict(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
        import os
        import time as clock

        (directory / f"{os.getpid()}-{clock.perf_counter_ns()}").touch()
        deadline = clock.monotonic() + 30
        while len(list(directory.iterdir())) < expected and clock.monotonic() < deadline:
            clock.sleep(0.05)
        (directory.parent / f"met-{clock.perf_counter_ns()}").write_text(
            str(len(list(directory.iterdir())))
        )
        feature = next(c for c in live_features.columns if c.startswith("feature_"))
        return live_features[feature].rank(pct=True, method="first").to_frame("prediction")

    return predict


@pytest.mark.integration
def test_models_run_at_once_as_named_task_runs_of_the_round_run(
    open_round: Round, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMERAI_MODEL_CONCURRENCY", "3")
    arrivals = tmp_path / "meeting" / "arrivals"
    arrivals.mkdir(parents=True)
    names = ["con_a", "con_b", "con_c"]
    blocks = [open_round.save_model(n, meeting(arrivals, len(names))) for n in names]
    started = time.monotonic()
    state = open_round.run(blocks)
    assert state.is_completed(), state.message
    assert [r.model for r in state.result()] == names  # reports keep the configured order
    met = [int(p.read_text()) for p in (tmp_path / "meeting").glob("met-*")]
    assert sorted(met) == [3, 3, 3], "the three models did not predict at the same time"
    assert time.monotonic() - started < 60
    number = open_round.sandbox.current_round.number  # type: ignore[union-attr]
    root_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        [root] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[root_id]))
        )
        assert root.name == f"round-{number}"
        deadline = time.monotonic() + 30  # task runs reach the server as events, a moment later
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[root_id]))
            )
            models = {t.name: t for t in task_runs if t.name.startswith(f"round-{number}-")}
            done = [t for t in models.values() if t.state and t.state.is_completed()]
            if len(done) == len(names) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sorted(models) == [f"round-{number}-{n}" for n in names]
        assert len(done) == len(names)
        # No model run is a flow run of its own any more: the round run has no subflows.
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id={"any_": [root_id]})  # type: ignore[arg-type]
        )
        assert children == []
