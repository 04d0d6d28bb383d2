"""The automations on a real Prefect server: each notifies the sink (and cancels) as promised."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.client.schemas.objects import StateType
from prefect.events import emit_event
from prefect.states import Pending, Scheduled
from pydantic import SecretStr

from blocks import NumeraiCredentials
from deployments.automations import RenderOptions, apply_automations, render, write_rendered
from deployments.notifications import save_notifier

from .conftest import Sink

pytestmark = pytest.mark.integration

SECRET_KEY = "NUMERAI-SECRET-" + uuid.uuid4().hex
WEBHOOK_TOKEN = "hook-token-" + uuid.uuid4().hex
WEBHOOK_PATH = "/hooks/" + uuid.uuid4().hex
# Tiny thresholds: stuck after 10 s (Prefect's minimum for proactive triggers), and one-hour
# windows warn 10 s after the round opened.
TEST_OPTIONS = RenderOptions(
    stuck_after=dt.timedelta(seconds=10),
    close_margin=dt.timedelta(minutes=59, seconds=50),
    heartbeat=dt.timedelta(seconds=5),
)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass
class Applied:
    """The applied automations, and the slow proactive cases already under way."""

    block_id: uuid.UUID
    api_url: str
    pending_run: tuple[str, uuid.UUID]
    late_run: tuple[str, uuid.UUID]
    missed_model: str
    verified_model: str


@pytest.fixture(scope="module")
def applied(automation_server: str, sink: Sink) -> Iterator[Applied]:
    """A webhook notifier pointing at the sink, every automation applied with tiny thresholds.

    The proactive cases (stuck runs, a round about to be missed) start here, so their ten-second
    waits run alongside the other tests.
    """
    block_id = save_notifier("webhook", url=sink.url + WEBHOOK_PATH, token=WEBHOOK_TOKEN)
    apply_automations(block_id, options=TEST_OPTIONS)
    time.sleep(1)  # the triggers service picks automation changes up asynchronously
    pending_name, late_name = _unique("stuck-pending"), _unique("stuck-late")
    pending_id = _create_run(pending_name, Pending())
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    late_id = _create_run(late_name, Scheduled(scheduled_time=past))
    missed, verified = _unique("missed"), _unique("verified")
    for model in (missed, verified):
        _model_event("numerai.round.opened", model, 1002)
    time.sleep(1)
    _model_event("numerai.submission.verified", verified, 1002, submission_id="s-1")
    yield Applied(
        block_id,
        automation_server,
        (pending_name, pending_id),
        (late_name, late_id),
        missed,
        verified,
    )


def test_apply_twice_creates_no_duplicates(applied: Applied) -> None:
    again = apply_automations(applied.block_id, options=TEST_OPTIONS)
    assert {status for _, status in again} == {"unchanged"}
    with get_client(sync_client=True) as client:
        names = [a.name for a in client.read_automations() if a.name.startswith("numerai-")]
    assert sorted(names) == sorted(a.name for a in render(applied.block_id, TEST_OPTIONS))


def test_rendered_files_work_with_the_prefect_cli(applied: Applied, tmp_path: Path) -> None:
    paths = write_rendered(applied.block_id, tmp_path, TEST_OPTIONS)
    verified = next(p for p in paths if p.stem == "numerai-submission-verified")
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "automation", "create", "--from-file", str(verified)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PREFECT_API_URL": applied.api_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # apply_automations folds the CLI's copy back into one automation per name.
    statuses = dict(apply_automations(applied.block_id, options=TEST_OPTIONS))
    assert statuses["numerai-submission-verified"] == "updated"
    with get_client(sync_client=True) as client:
        assert len(client.read_automations_by_name("numerai-submission-verified")) == 1


def test_failing_model_run_notifies_with_round_model_message_and_link(
    applied: Applied, sink: Sink
) -> None:
    run_name = _unique("round-1000")

    @flow(name="submit-round", flow_run_name=run_name)
    def failing_model(credentials: NumeraiCredentials) -> None:
        raise ValueError("predictions not uploaded: failed: constant predictions")

    credentials = NumeraiCredentials(public_id="PUBLIC", secret_key=SecretStr(SECRET_KEY))
    started = time.monotonic()
    state = failing_model(credentials, return_state=True)
    assert state.is_failed()
    note = sink.wait_for(lambda r: run_name in r.body and "Failed" in r.body, timeout=20)
    assert time.monotonic() - started < 20
    body = note.json()["body"]
    assert "constant predictions" in body
    assert f"/runs/flow-run/{state.state_details.flow_run_id}" in body
    assert note.json()["subject"].startswith("Numerai: submit-round run round-1000")


def test_killed_run_notifies_crashed(applied: Applied, sink: Sink, tmp_path: Path) -> None:
    run_name = _unique("round-1000")
    script = tmp_path / "slow_round.py"
    script.write_text(
        "import sys, time\n"
        "from prefect import flow\n"
        f"@flow(name='submit-round', flow_run_name={run_name!r})\n"
        "def slow_round() -> None:\n"
        "    print('started', flush=True)\n"
        "    time.sleep(120)\n"
        "slow_round()\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PREFECT_API_URL": applied.api_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "started" in line:
                break
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    note = sink.wait_for(lambda r: run_name in r.body, timeout=20)
    assert "Crashed" in note.json()["body"]


def test_a_killed_run_whose_heartbeat_stops_is_marked_crashed(
    applied: Applied, sink: Sink, tmp_path: Path
) -> None:
    """SIGKILL leaves no time to report a crash: only the missing heartbeats tell."""
    run_name = _unique("round-1001")
    script = tmp_path / "killed_round.py"
    script.write_text(
        "import time\n"
        "from prefect import flow\n"
        f"@flow(name='submit-round', flow_run_name={run_name!r})\n"
        "def killed_round() -> None:\n"
        "    print('started', flush=True)\n"
        "    time.sleep(300)\n"
        "killed_round()\n"
    )
    env = {
        "PREFECT_API_URL": applied.api_url,
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "started" in line:
                break
        time.sleep(2)  # the first heartbeat goes out as the run starts
    finally:
        process.kill()
        process.wait()
    note = sink.wait_for(lambda r: run_name in r.body and "Crashed" in r.body, timeout=90)
    assert "Crashed" in note.json()["body"]
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))
        )
    assert run.state is not None and run.state.type == StateType.CRASHED
    assert "No heartbeat" in (run.state.message or "")


def _create_run(name: str, state: object) -> uuid.UUID:
    @flow(name="submit-round")
    def never_runs() -> None:
        """Stands for a deployment run that no infrastructure ever starts."""

    with get_client(sync_client=True) as client:
        run = client.create_flow_run(never_runs, name=name, state=state)  # type: ignore[arg-type]
    return run.id


def _wait_for_state(run_id: uuid.UUID, types: set[StateType], timeout: float = 20) -> StateType:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(run_id).state
            if state is not None and state.type in types:
                return state.type
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} still {state!r}")
            time.sleep(0.5)


def test_run_stuck_pending_notifies_and_is_cancelled(applied: Applied, sink: Sink) -> None:
    run_name, run_id = applied.pending_run
    note = sink.wait_for(lambda r: run_name in r.body, timeout=40)
    assert "Pending for over 10 s" in note.json()["body"]
    _wait_for_state(run_id, {StateType.CANCELLING, StateType.CANCELLED})
    time.sleep(2)
    assert len(sink.messages(run_name)) == 1


def test_run_stuck_late_notifies_and_is_cancelled(applied: Applied, sink: Sink) -> None:
    run_name, run_id = applied.late_run
    note = sink.wait_for(lambda r: run_name in r.body, timeout=40)
    assert "Late for over" in note.json()["body"]
    assert _wait_for_state(run_id, {StateType.CANCELLED}) == StateType.CANCELLED
    assert len(sink.messages(run_name)) == 1


def _model_event(kind: str, model: str, round_number: int, **payload: object) -> None:
    emit_event(
        event=kind,
        resource={
            "prefect.resource.id": f"numerai.model.{model}",
            "prefect.resource.name": model,
            "numerai.round": str(round_number),
            "numerai.window": "tuesday",
        },
        related=[
            {
                "prefect.resource.id": f"numerai.round.{round_number}",
                "prefect.resource.role": "round",
            }
        ],
        payload={"model": model, "round": round_number, **payload},
    )


def test_submission_failed_names_model_round_error_and_next_retry(
    applied: Applied, sink: Sink
) -> None:
    model = _unique("alpha")
    _model_event(
        "numerai.submission.failed",
        model,
        1001,
        error="NotVerified: submission not listed",
        next_retry="2026-09-01 12:25 UTC",  # as the flow sends it
    )
    note = sink.wait_for(lambda r: model in r.body, timeout=20).json()
    assert note["subject"] == f"Numerai: {model} round 1001 failed"
    assert "NotVerified: submission not listed" in note["body"]
    assert "Next retry: 2026-09-01 12:25 UTC" in note["body"]


def test_round_about_to_be_missed_only_without_verified(applied: Applied, sink: Sink) -> None:
    missed, verified = applied.missed_model, applied.verified_model
    note = sink.wait_for(lambda r: missed in r.body, timeout=40).json()
    assert note["subject"] == "Numerai: round 1002 about to be missed"
    assert f"Round 1002 is about to be missed for model {missed}" in note["body"]
    time.sleep(3)  # the verified model's deadline has passed too: it must stay quiet
    assert not sink.matching(verified)


def test_no_secret_in_any_notification(applied: Applied, sink: Sink) -> None:
    assert sink.received, "the tests above sent notifications"
    for item in sink.received:
        for secret in (SECRET_KEY, WEBHOOK_TOKEN, WEBHOOK_PATH):
            assert secret not in item.body
    assert all(item.path == WEBHOOK_PATH for item in sink.received)
