"""The submit-round flow on a real Prefect server against the sandbox."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client

from sandbox import Fault

from .conftest import Round, reports_of

pytestmark = pytest.mark.integration


def constant(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"prediction": 0.5}, index=live_features.index)


def broken(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
    raise RuntimeError("model exploded")


def one_arg(live_features: pd.DataFrame) -> pd.Series:
    return live_features.iloc[:, -1].rank(pct=True, method="first")


def round_submissions(r: Round, name: str) -> list:
    model_id = r.sandbox.models[name]
    return [s for s in r.sandbox.submissions(model_id)]


def test_happy_round_for_two_models_is_verified_with_the_trigger_id(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    beta = open_round.save_model("beta", one_arg)
    state = open_round.run([alpha, beta], trigger_id="trigger-123")
    assert state.is_completed(), state.message
    reports = state.result()
    assert [r.status for r in reports] == ["verified", "verified"]
    assert open_round.sandbox.current_round
    number = open_round.sandbox.current_round.number
    for name in ("alpha", "beta"):
        [submission] = round_submissions(open_round, name)
        assert submission.round_number == number
        assert submission.trigger_id == "trigger-123"
        uploaded = pd.read_csv(io.BytesIO(submission.data))
        assert list(uploaded.columns) == ["id", "prediction"]
    assert all(r.rows and r.corr_with_example is not None for r in reports)


def test_each_model_carries_the_trigger_its_webhook_stored_for_this_round(
    open_round: Round,
) -> None:
    """The receiver keeps each model's trigger (one run for the round's webhooks): a model's
    task reads its own, for this round only."""
    import datetime as dt

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import VariableCreate

    from model.names import trigger_variable_name
    from model.triggers import WebhookTrigger

    blocks = {name: open_round.save_model(name) for name in ("alpha", "beta", "gamma")}
    current = open_round.sandbox.current_round
    assert current is not None
    now = dt.datetime.now(dt.UTC)
    stored = {
        "alpha": WebhookTrigger("t-alpha", now, current.number),
        "beta": WebhookTrigger("t-beta-last-round", now, current.number - 1),
    }  # gamma: no webhook
    with get_client(sync_client=True) as client:
        for name, trigger in stored.items():
            client.create_variable(
                VariableCreate(name=trigger_variable_name(blocks[name]), value=trigger.to_value())
            )
    state = open_round.run(list(blocks.values()))
    assert state.is_completed(), state.message
    carried = {name: round_submissions(open_round, name)[0].trigger_id for name in blocks}
    assert carried == {"alpha": "t-alpha", "beta": None, "gamma": None}


def test_round_report_artifact_has_a_row_per_model(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    state = open_round.run([alpha])
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        artifact = client.read_latest_artifacts()
        table = [a for a in artifact if a.key == "numerai-round-report"]
    assert table and "alpha" in str(table[0].data)


def test_closed_round_finishes_cleanly_and_submits_nothing(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    open_round.sandbox.close_round()
    state = open_round.run([alpha])
    assert state.is_completed()
    assert "No round is open" in (state.message or "")
    assert open_round.sandbox.uploads == []


def test_a_model_without_a_block_is_named_and_nothing_is_submitted(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    state = open_round.run([alpha, "numerai-model-nobody"])
    assert state.is_failed()
    assert state.message.startswith("No Numerai Model block named 'numerai-model-nobody'")
    assert alpha in state.message  # the saved ones are listed
    assert open_round.sandbox.submissions(open_round.sandbox.models["alpha"]) == []


def test_a_forced_run_submits_again_and_an_unforced_one_skips(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    model_id = open_round.sandbox.models["alpha"]
    assert open_round.run([alpha]).is_completed()
    skipped = open_round.run([alpha])
    assert [r.status for r in skipped.result()] == ["already submitted"]
    assert len(open_round.sandbox.submissions(model_id)) == 1
    forced = open_round.run([alpha], force=True)
    assert [r.status for r in forced.result()] == ["verified"]
    assert len(open_round.sandbox.submissions(model_id)) == 2


def test_one_model_raising_does_not_stop_the_other(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    beta = open_round.save_model("beta", broken)
    gamma = open_round.save_model("gamma")
    state = open_round.run([alpha, beta, gamma])
    assert state.is_failed()
    assert "1 of 3 models failed" in state.message
    assert "beta" in state.message and "model exploded" in state.message
    assert len(round_submissions(open_round, "alpha")) == 1
    assert len(round_submissions(open_round, "gamma")) == 1
    assert round_submissions(open_round, "beta") == []


def test_invalid_predictions_are_never_uploaded(
    open_round: Round, caplog: pytest.LogCaptureFixture
) -> None:
    flat = open_round.save_model("flat", constant)
    state = open_round.run([flat])
    assert state.is_failed()
    assert "constant" in state.message
    assert open_round.sandbox.uploads == []
    [report] = reports_of(state)
    assert report.status == "invalid"
    # The round ends Failed with its message, not with the engine's error about its result.
    assert "cannot be resolved into an exception" not in caplog.text
    assert "Unexpected result for failed state" not in caplog.text


def test_a_model_already_submitted_this_round_is_skipped(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    assert open_round.run([alpha]).is_completed()
    second = open_round.run([alpha])
    assert second.is_completed()
    [report] = second.result()
    assert report.status == "already submitted"
    assert len(open_round.sandbox.uploads) == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault("graphql_error", operation="rounds", times=2),
        Fault("graphql_error", operation="create_submission", times=1),
        Fault("http_status", status=500, times=3),
        Fault("http_status", operation="submissions", status=503, times=2),
        Fault("hang", operation="submissions", seconds=30, times=1),
        Fault("slow", operation="rounds", seconds=1, times=3),
        Fault("truncate_download", operation="download", times=1),
        Fault("corrupt_download", operation="download", times=1),
        Fault("drop_upload", operation="upload", times=1),
    ],
    ids=lambda f: f"{f.kind}-{f.operation}",
)
def test_transient_api_failures_are_retried_to_a_verified_submission(
    open_round: Round, fault: Fault
) -> None:
    alpha = open_round.save_model("alpha")
    open_round.sandbox.inject(fault)
    state = open_round.run([alpha])
    assert state.is_completed(), state.message
    assert len(round_submissions(open_round, "alpha")) == 1


def test_invalid_keys_fail_clearly_without_hammering_the_api(open_round: Round) -> None:
    from pydantic import SecretStr

    from blocks import NumeraiCredentials

    alpha = open_round.save_model("alpha")
    NumeraiCredentials(
        public_id=open_round.sandbox.public_id,
        secret_key=SecretStr("wrong"),
        api_url=open_round.sandbox.api_url,
    ).save(open_round.credentials_block, overwrite=True)
    state = open_round.run([alpha])
    assert state.is_failed()
    assert "Invalid credentials" in state.message
    calls = [op for op, _ in open_round.sandbox.requests if op in ("account", "submissions")]
    assert len(calls) == 1


def test_nothing_is_uploaded_when_the_round_is_about_to_close(open_round: Round) -> None:
    alpha = open_round.save_model("alpha")
    current = open_round.sandbox.current_round
    assert current
    open_round.sandbox.open_round(
        current.number,
        opens=current.opens,
        closes=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5),
    )
    state = open_round.run([alpha])
    assert state.is_failed()
    assert "too late to upload" in state.message
    assert open_round.sandbox.uploads == []


def test_unknown_model_name_fails_that_model_only(open_round: Round) -> None:
    from blocks import NumeraiModel

    alpha = open_round.save_model("alpha")
    NumeraiModel(model_name="ghost", predictor_path="x.pkl").save("ghost-model", overwrite=True)
    state = open_round.run([alpha, "ghost-model"])
    assert state.is_failed()
    assert "ghost" in state.message and "not in this account" in state.message
    assert len(round_submissions(open_round, "alpha")) == 1


def test_no_credential_in_parameters_task_runs_logs_artifacts_or_events(
    open_round: Round, prefect_server: str
) -> None:
    """Neither the public id nor the secret key reaches anything the server stores."""
    import httpx
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    alpha = open_round.save_model("alpha")
    beta = open_round.save_model("beta", broken)  # a failure's messages too
    state = open_round.run([alpha, beta], trigger_id="t-secret-check")
    assert state.is_failed(), state.message
    run_id = state.state_details.flow_run_id
    credentials = (open_round.sandbox.public_id, open_round.sandbox.secret_key)
    # Logs reach the server in batches from a background worker: every one sent before reading.
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        this_run = FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        stored = [
            client.read_flow_runs(flow_run_filter=this_run),
            client.read_task_runs(flow_run_filter=this_run),
            client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))),
            client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))),
        ]  # fmt: skip
    page = httpx.post(
        f"{prefect_server}/events/filter",
        json={"filter": {"any_resource": {"id": [f"prefect.flow-run.{run_id}"]}}, "limit": 50},
    )
    events = []
    while True:
        page.raise_for_status()
        events += page.json()["events"]
        if not page.json().get("next_page"):
            break
        page = httpx.get(page.json()["next_page"])
    assert events, "the run's events"
    assert stored[1] and stored[2] and stored[3], "the run's task runs, logs and artifacts"
    for what, found in zip(("flow runs", "task runs", "logs", "artifacts"), stored, strict=True):
        text = " ".join(item.model_dump_json() for item in found)  # type: ignore[attr-defined]
        for value in credentials:
            assert value not in text, f"a credential in the run's {what}"
    for value in credentials:
        assert value not in json.dumps(events), "a credential in the run's events"


def _events(api_url: str, prefix: str, names: set[str], expected: int) -> list[dict]:
    """The stored events about the named resources, polled until `expected` of them arrive
    (the server writes events asynchronously)."""
    import time

    import httpx

    deadline = time.monotonic() + 20
    while True:
        response = httpx.post(
            f"{api_url}/events/filter",
            json={"filter": {"event": {"prefix": [prefix]}}, "limit": 50},
        )
        response.raise_for_status()
        events = [
            e for e in response.json()["events"] if e["resource"]["prefect.resource.name"] in names
        ]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def test_each_outcome_is_an_event_about_the_model_and_round(
    open_round: Round, prefect_server: str
) -> None:
    suffix = open_round.credentials_block[-6:]
    a_name, b_name = f"ev_a_{suffix}", f"ev_b_{suffix}"
    alpha = open_round.save_model(a_name)
    beta = open_round.save_model(b_name, broken)
    assert open_round.run([alpha, beta], trigger_id="t-1").is_failed()
    assert open_round.run([alpha]).is_completed()
    assert open_round.sandbox.current_round
    number = open_round.sandbox.current_round.number
    events = _events(prefect_server, "numerai.submission.", {a_name, b_name}, 4)
    seen = {(e["event"], e["resource"]["prefect.resource.name"]) for e in events}
    assert {
        ("numerai.submission.uploaded", a_name),
        ("numerai.submission.verified", a_name),
        ("numerai.submission.failed", b_name),
        ("numerai.submission.skipped", a_name),
    } <= seen
    failed = next(e for e in events if e["event"] == "numerai.submission.failed")
    assert "model exploded" in failed["payload"]["error"]
    assert failed["resource"]["numerai.round"] == str(number)
    assert failed["related"][0]["prefect.resource.id"] == f"numerai.round.{number}"


def test_markdown_report_and_model_history_artifacts(open_round: Round) -> None:
    from flows.reporting import ROUND_MARKDOWN_KEY
    from model.names import history_key

    name = f"hist_{open_round.credentials_block[-6:]}"
    model = open_round.save_model(name)
    assert open_round.run([model]).is_completed()
    with get_client(sync_client=True) as client:
        latest = {a.key: a for a in client.read_latest_artifacts()}
    markdown = str(latest[ROUND_MARKDOWN_KEY].data)
    assert "# Numerai round" in markdown and "Prediction distribution" in markdown
    history = latest[history_key(name)]
    assert "1 round, 1 verified" in (history.description or "")
    assert name in markdown


def test_each_models_history_grows_by_one_row_a_round(open_round: Round) -> None:
    from model.names import history_key

    names = [f"grow_{i}_{open_round.credentials_block[-6:]}" for i in range(3)]
    models = [open_round.save_model(n) for n in names]
    rounds = []
    for _ in range(2):
        rounds.append(open_round.sandbox.open_round().number)
        assert open_round.run(models).is_completed()
    with get_client(sync_client=True) as client:
        latest = {a.key: a for a in client.read_latest_artifacts()}
    for name in names:
        history = latest[history_key(name)]
        assert "2 rounds, 2 verified" in (history.description or ""), history.description
        assert sorted(row["round"] for row in json.loads(str(history.data))) == rounds


def test_credentials_fall_back_to_the_environment_without_a_block(
    open_round: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha = open_round.save_model("alpha")
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", open_round.sandbox.public_id)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", open_round.sandbox.secret_key)
    monkeypatch.setenv("NUMERAI_API_URL", open_round.sandbox.api_url)
    state = open_round.run([alpha], credentials_block="no-such-block")
    assert state.is_completed(), state.message


def test_missing_credentials_name_the_block_and_the_variables(
    open_round: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    state = open_round.run(["alpha"], credentials_block="no-such-block")
    assert state.is_failed()
    assert "no-such-block" in state.message and "NUMERAI_PUBLIC_ID" in state.message


def test_a_model_upload_with_no_feature_set_gets_the_whole_live_frame(
    open_round: Round, tmp_path: Path
) -> None:
    """As Numerai's runner: every column of live.parquet, era and data_type included."""
    seen = tmp_path / "columns.json"

    def whole_frame(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
        seen.write_text(json.dumps(list(live_features.columns)))
        feature_order = [c for c in live_features.columns if c.startswith("feature_")]
        # As Numerai's example pickles select their columns: a missing one would be all NaN.
        chosen = live_features.reindex(columns=feature_order)
        assert not chosen.isna().any().any()
        return chosen.iloc[:, 0].rank(pct=True, method="first").to_frame("prediction")

    block = open_round.save_model("whole", whole_frame, feature_set=None)
    state = open_round.run([block])
    assert state.is_completed(), state.message
    [live_file] = (tmp_path / "data").rglob("live.parquet")
    expected = [c for c in pq.read_schema(live_file).names if c != "id"]
    assert json.loads(seen.read_text()) == expected
    assert "era" in expected and sum(c.startswith("feature_") for c in expected) > 42
