"""Deployed retries on a real worker: never twice, never late, and they fix a failed round."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any, cast

import cloudpickle
import pytest
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from sandbox import Fault

from .conftest import LiveRound, wait_for_final

pytestmark = pytest.mark.integration


def retry(**parameters: Any) -> Any:
    """Start the round-retry deployment as its schedule would, and wait for the end."""
    run = cast(
        FlowRun, run_deployment("submit-round/round-retry", parameters=parameters, timeout=0)
    )
    return wait_for_final(run.id)


def test_a_retry_after_success_uploads_nothing(worker: Any, live_round: LiveRound) -> None:
    first = retry()
    assert first.state.is_completed(), first.state.message
    assert len(live_round.sandbox.uploads) == 2
    second = retry()
    assert second.state.is_completed(), second.state.message
    assert len(live_round.sandbox.uploads) == 2
    assert all(len(live_round.submissions(m)) == 1 for m in ("alpha", "beta"))


def test_a_retry_after_a_failed_run_lands_the_submission(
    worker: Any, live_round: LiveRound
) -> None:
    # Numerai keeps refusing alpha's uploads for a while: the first run ends Failed.
    live_round.sandbox.inject(Fault("graphql_error", operation="create_submission", times=3))
    first = retry(models=["alpha"])
    assert first.state.is_failed()
    assert "alpha" in (first.state.message or "")
    assert live_round.submissions("alpha") == []
    second = retry(models=["alpha"])
    assert second.state.is_completed(), second.state.message
    assert len(live_round.submissions("alpha")) == 1


def test_a_run_after_the_close_uploads_nothing(worker: Any, live_round: LiveRound) -> None:
    live_round.sandbox.close_round()
    run = retry()
    assert run.state.is_completed()
    assert "No round is open" in (run.state.message or "")
    assert live_round.sandbox.uploads == []


def _pid_then_sleep(pid_file: str) -> Any:
    """A predictor that records its process id and then takes far too long."""

    def predict(live_features: Any, live_benchmark_models: Any) -> Any:
        import os
        import time

        with open(pid_file, "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(120)
        raise RuntimeError("should have been killed")

    return predict


def test_a_killed_run_ends_crashed_and_the_next_retry_submits(
    worker: Any, live_round: LiveRound, tmp_path: Path
) -> None:
    from blocks import NumeraiModel

    pid_file = tmp_path / "flow.pid"
    slow = tmp_path / "slow.pkl"
    slow.write_bytes(cloudpickle.dumps(_pid_then_sleep(str(pid_file))))
    fast = cast(NumeraiModel, NumeraiModel.load("alpha"))
    NumeraiModel(model_name="alpha", predictor_path=str(slow), feature_set="small").save(
        "alpha", overwrite=True
    )
    run = cast(
        FlowRun,
        run_deployment("submit-round/round-retry", parameters={"models": ["alpha"]}, timeout=0),
    )
    deadline = time.monotonic() + 120
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the flow never reached the predictor"
        time.sleep(0.2)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    crashed = wait_for_final(run.id)
    assert crashed.state is not None and crashed.state.is_crashed(), crashed.state
    assert live_round.submissions("alpha") == []

    fast.save("alpha", overwrite=True)
    second = retry(models=["alpha"])
    assert second.state.is_completed(), second.state.message
    assert len(live_round.submissions("alpha")) == 1
