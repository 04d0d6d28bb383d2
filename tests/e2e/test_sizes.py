"""A model with its own size runs in a run of its size group, on a real worker and pool.

The stand-in: a process pool, where a size has no CPU or memory to set; it still gets a process
of its own, which is what keeps a model killed for memory from taking the others with it. The
job variables a size sets on ECS and Docker pools are checked in tests/flows/test_sizes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import cloudpickle
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentTaskRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)

from blocks import NumeraiModel

from .conftest import LiveRound, wait_for_final
from .test_round_retries import retry

pytestmark = pytest.mark.integration


def killed_for_memory(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """Dies as the kernel's out-of-memory killer would end it: SIGKILL, no cleanup."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


def _size_runs(parent_id: Any) -> list[Any]:
    """The round run's size runs (its subflows in the UI), each once final."""
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(
            task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[parent_id]))
        )
        started = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_task_run_id=FlowRunFilterParentTaskRunId(any_=[t.id for t in tasks])
            )
        )
    return [wait_for_final(run.id) for run in started]


def _resize(
    live_round: LiveRound, name: str, size: str, tmp_path: Path, predictor: Any = None
) -> None:
    block = cast(NumeraiModel, NumeraiModel.load(live_round.models[name]))
    block.size = size
    if predictor is not None:
        path = tmp_path / f"{name}-sized.pkl"
        path.write_bytes(cloudpickle.dumps(predictor))
        block.predictor_path = str(path)
    block.save(live_round.models[name], overwrite=True)


def test_a_sized_model_runs_in_its_own_size_run(
    worker: Any, live_round: LiveRound, tmp_path: Path
) -> None:
    _resize(live_round, "beta", "mem-lg", tmp_path)
    run = retry()
    assert run.state.is_completed(), run.state.message
    number = live_round.sandbox.current_round.number  # type: ignore[union-attr]
    assert run.name == f"round-{number}"
    [sized] = _size_runs(run.id)
    assert sized.state.is_completed(), sized.state.message
    assert sized.name == f"round-{number}-mem-lg"
    assert sized.parameters["models"] == [live_round.models["beta"]]
    assert sized.parameters["size"] == "mem-lg"
    assert "size mem-lg" in (run.state.message or "")
    assert all(len(live_round.submissions(m)) == 1 for m in ("alpha", "beta"))


def test_a_sized_model_killed_for_memory_leaves_the_others_alone(
    worker: Any, live_round: LiveRound, tmp_path: Path
) -> None:
    _resize(live_round, "beta", "mem-xl", tmp_path, killed_for_memory)
    run = retry()
    assert run.state.is_completed(), run.state.message  # its own model, alpha, is verified
    assert "size mem-xl" in (run.state.message or "")
    [sized] = _size_runs(run.id)
    assert sized.state is not None and sized.state.is_crashed(), sized.state
    assert len(live_round.submissions("alpha")) == 1
    assert live_round.submissions("beta") == []
