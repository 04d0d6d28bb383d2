"""What a round run shows while it works: a progress artifact, concise logs, readable times."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterType,
)

import flows.progress
from flows.progress import ROUND_PROGRESS_KEY
from tests.support import LogRecords

from .conftest import Round

pytestmark = pytest.mark.integration


def broken(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
    raise RuntimeError("model exploded")


@pytest.fixture
def task_logs() -> Iterator[list[logging.LogRecord]]:
    """What the task runs log, as their console and API handlers get it."""
    handler = LogRecords()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def progress_updates(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    """Every update of the progress artifact (passed on to Prefect)."""
    updates: list[tuple[float, str]] = []
    update = flows.progress.update_progress_artifact

    def record(artifact_id: Any, progress: float, description: str | None = None) -> Any:
        updates.append((progress, description or ""))
        return update(artifact_id, progress, description)

    monkeypatch.setattr(flows.progress, "update_progress_artifact", record)
    return updates


def test_the_progress_artifact_advances_as_models_finish(
    open_round: Round, progress_updates: list[tuple[float, str]]
) -> None:
    alpha = open_round.save_model("alpha")
    beta = open_round.save_model("beta", broken)
    state = open_round.run([alpha, beta])
    assert state.is_failed()
    shares = [share for share, _ in progress_updates]
    assert shares == sorted(shares) and shares[-1] == 100.0
    assert progress_updates[-1][1] == "2 of 2 models done (1 failed)"
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                type=ArtifactFilterType(any_=["progress"]),
            )
        )
    assert artifact.key == ROUND_PROGRESS_KEY
    assert artifact.data == 100.0
    assert artifact.description == "2 of 2 models done (1 failed)"


def test_each_model_says_what_finished_and_the_bare_engine_lines_are_gone(
    open_round: Round, task_logs: list[logging.LogRecord]
) -> None:
    alpha = open_round.save_model("alpha")
    beta = open_round.save_model("beta", broken)
    state = open_round.run([alpha, beta])
    assert state.is_failed()
    assert open_round.sandbox.current_round
    number = open_round.sandbox.current_round.number
    lines = [r.getMessage() for r in task_logs]
    assert "Finished in state Completed()" not in lines
    [submission] = open_round.sandbox.submissions(open_round.sandbox.models["alpha"])
    assert any(
        re.fullmatch(rf"round-{number}-alpha: verified submission {submission.id} in [\d.]+ s", m)
        for m in lines
    ), lines
    assert any(
        m.startswith(f"round-{number}-beta: failed after ") and "model exploded" in m for m in lines
    ), lines
    # A task that failed still says so, as the engine reports it.
    assert any(m.startswith("Finished in state Failed(") for m in lines)
    task_logs.clear()
    assert open_round.run([alpha]).is_completed()
    skipped = f"round-{number}-alpha: already submitted (submission {submission.id}), checked in "
    assert any(r.getMessage().startswith(skipped) for r in task_logs), task_logs


def test_downloads_say_how_much_and_how_long_and_times_read_plainly(
    open_round: Round, task_logs: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    alpha = open_round.save_model("alpha")
    with caplog.at_level(logging.INFO, logger="prefect.flow_runs"):
        state = open_round.run([alpha])
    assert state.is_completed(), state.message
    assert open_round.sandbox.current_round
    assert state.message.startswith(f"Round {open_round.sandbox.current_round.number}: 1 model ")
    downloaded = [r.getMessage() for r in task_logs if "live data for round" in r.getMessage()]
    assert len(downloaded) == 1
    assert re.search(r": 4 files, [\d.]+ (B|kB|MB) in [\d.]+ s$", downloaded[0]), downloaded
    [opened] = [r.getMessage() for r in caplog.records if "is open until" in r.getMessage()]
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(classic\)$", opened), opened


def test_a_failures_next_retry_reads_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.reporting

    sent: list[dict[str, Any]] = []
    retry = dt.datetime(2026, 9, 1, 12, 25, 0, 123456, tzinfo=dt.UTC)
    monkeypatch.setattr(flows.reporting, "next_retry_after", lambda now: retry)
    monkeypatch.setattr(flows.reporting, "emit_event", lambda **event: sent.append(event))
    flows.reporting.emit_submission_event("failed", "alpha", 1000, error="boom")
    assert sent[0]["payload"]["next_retry"] == "2026-09-01 12:25 UTC"


@pytest.mark.parametrize(("every", "expected"), [(3600.0, [100.0]), (0.0, [25.0, 75.0, 100.0])])
def test_progress_is_written_at_most_every_interval_and_always_at_the_end(
    monkeypatch: pytest.MonkeyPatch, every: float, expected: list[float]
) -> None:
    """Stand-in: the artifact calls are recorded, not sent (the test above sends them)."""
    updates: list[float] = []
    monkeypatch.setattr(flows.progress, "create_progress_artifact", lambda **_: "artifact-id")
    monkeypatch.setattr(
        flows.progress, "update_progress_artifact", lambda _id, share, _text: updates.append(share)
    )
    progress = flows.progress.RoundProgress(4, every=every)
    progress.finished()
    progress.finished(2, ok=False)
    progress.finished()
    assert updates == expected
    assert progress.description == "4 of 4 models done (2 failed)"
