"""Numerai's scores per round reach each model's history, and never fail a round.

The sandbox scores against a target of its own making: these tests check that the scores
Numerai reports are the ones the history shows, not how Numerai computes them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
from typing import Any

import pytest
from prefect.client.orchestration import get_client

from model.names import history_key
from sandbox import Fault
from tests.charts import inline_svgs, series_names

from .conftest import Round

pytestmark = pytest.mark.integration


def history(name: str) -> tuple[dict[int, dict[str, Any]], str]:
    """The latest version of a model's history artifact: rows by round, and its description."""
    with get_client(sync_client=True) as client:
        latest = {a.key: a for a in client.read_latest_artifacts()}
    artifact = latest[history_key(name)]
    rows = {int(r["round"]): r for r in json.loads(str(artifact.data))}
    return rows, artifact.description or ""


def sandbox_corr(r: Round, name: str, number: int) -> float:
    """The round's latest canon_corr the sandbox reports for the model."""
    scores = r.sandbox.model_scores(r.sandbox.models[name])
    return [s.value for s in scores if s.round_number == number and s.display_name == "canon_corr"][
        -1
    ]


def test_a_models_history_shows_its_scores_from_numerai_with_trend_and_chart(
    open_round: Round,
) -> None:
    name = f"scored_{open_round.credentials_block[-6:]}"
    model = open_round.save_model(name)
    first = open_round.sandbox.current_round.number  # type: ignore[union-attr]
    assert open_round.run([model]).is_completed()
    rows, description = history(name)
    assert rows[first]["numerai_corr"] is None  # not scored while the round is open
    assert "Numerai corr" not in description and inline_svgs(description) == []

    open_round.sandbox.close_round()
    open_round.sandbox.advance(dt.timedelta(days=40))
    second = open_round.sandbox.open_round().number
    assert open_round.run([model]).is_completed()

    rows, description = history(name)
    assert rows[first]["numerai_corr"] == pytest.approx(sandbox_corr(open_round, name, first))
    assert rows[first]["numerai_mmc"] is not None and rows[first]["scores_final"] is True
    assert rows[second]["numerai_corr"] is None
    assert "Numerai corr: mean" in description and "over the last 1 scored round" in description
    (chart,) = inline_svgs(description)
    assert series_names(chart) == ["corr", "mmc"]


def test_scores_that_cannot_be_read_leave_the_round_and_the_history_alone(
    open_round: Round, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"unscored_{open_round.credentials_block[-6:]}"
    model = open_round.save_model(name)
    first = open_round.sandbox.current_round.number  # type: ignore[union-attr]
    assert open_round.run([model]).is_completed()
    open_round.sandbox.close_round()
    open_round.sandbox.advance(dt.timedelta(days=40))
    open_round.sandbox.open_round()
    assert open_round.run([model]).is_completed()
    scored, _ = history(name)
    assert scored[first]["numerai_corr"] is not None

    open_round.sandbox.close_round()
    open_round.sandbox.advance(dt.timedelta(days=1))
    third = open_round.sandbox.open_round().number
    outage = Fault("http_status", operation="submissionScores", status=503, times=100)
    open_round.sandbox.inject(outage)
    state = open_round.run([model])
    assert state.is_completed(), state.message
    assert [r.status for r in state.result()] == ["verified"]
    rows, description = history(name)
    assert third in rows
    assert rows[first]["numerai_corr"] == scored[first]["numerai_corr"]  # kept from before
    assert inline_svgs(description), "the chart of the scores read before is kept"
    assert "scores could not be read" in caplog.text


def test_a_history_that_cannot_be_read_is_not_rewritten_and_the_round_stands(
    open_round: Round, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-in: the reads of the earlier histories (the flow's, then the task's) raise as a
    refused API call would; the server's own refusal is not produced here."""
    import flows.reporting

    round_flow = importlib.import_module("flows.submit_round")  # the module, not the flow

    name = f"kept_{open_round.credentials_block[-6:]}"
    model = open_round.save_model(name)
    first = open_round.sandbox.current_round.number  # type: ignore[union-attr]
    assert open_round.run([model]).is_completed()
    before, _ = history(name)

    def refused(models: list[str]) -> None:
        raise RuntimeError("artifacts unavailable")

    monkeypatch.setattr(flows.reporting, "latest_histories", refused)
    monkeypatch.setattr(round_flow, "latest_histories", refused)
    open_round.sandbox.close_round()
    open_round.sandbox.advance(dt.timedelta(days=1))
    open_round.sandbox.open_round()
    state = open_round.run([model])
    assert state.is_completed(), state.message
    assert [r.status for r in state.result()] == ["verified"]
    after, _ = history(name)
    assert after == before and first in after  # not rewritten from nothing
    assert f"History of {name} not updated in this run: artifacts unavailable" in caplog.text
