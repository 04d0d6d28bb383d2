"""Classic, Signals and Crypto models in one round run against the sandbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import cloudpickle
import pandas as pd
import pytest

from blocks import NumeraiModel
from model.ticker_example import make_momentum_predict_fn
from model.tournaments import CRYPTO, SIGNALS

from .conftest import Round, reports_of


def _save(open_round: Round, name: str, tournament: int, predict: Callable[..., Any]) -> str:
    """Register a model of a tournament in the sandbox and save its block."""
    open_round.sandbox.add_model(name, tournament=tournament)
    path = open_round.tmp / f"{name}.pkl"
    path.write_bytes(cloudpickle.dumps(predict))
    block = f"{name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    NumeraiModel(model_name=name, predictor_path=str(path), tournament=tournament).save(block)
    return block


def _open_all(open_round: Round) -> None:
    open_round.sandbox.open_round(tournament=SIGNALS)
    open_round.sandbox.open_round(tournament=CRYPTO, number=400)


def test_one_round_run_verifies_a_classic_a_signals_and_a_crypto_model(
    open_round: Round,
) -> None:
    _open_all(open_round)
    blocks = [
        open_round.save_model("classic_one"),
        _save(open_round, "signals_one", SIGNALS, make_momentum_predict_fn("numerai_ticker", 10)),
        _save(open_round, "crypto_one", CRYPTO, make_momentum_predict_fn("symbol", 5)),
    ]
    state = open_round.run(blocks, trigger_id="trigger-mixed")
    assert state.is_completed(), state.message
    reports = {r.model: r for r in state.result()}
    assert {r.tournament for r in reports.values()} == {"classic", "signals", "crypto"}
    assert all(r.verified and r.status == "verified" for r in reports.values())
    sandbox = open_round.sandbox
    by_model = {s.model_id: s for s in sandbox.submissions()}
    for name, tournament, number in (
        ("classic_one", 8, sandbox.current_round.number if sandbox.current_round else 0),
        ("signals_one", SIGNALS, 1000),
        ("crypto_one", CRYPTO, 400),
    ):
        sub = by_model[sandbox.models[name]]
        assert (sub.tournament, sub.round_number, sub.trigger_id) == (
            tournament,
            number,
            "trigger-mixed",
        )
        assert reports[name].submission_id == sub.id
    header = by_model[sandbox.models["signals_one"]].data.decode().splitlines()[0]
    assert header == "numerai_ticker,signal"
    # Signals went by its own upload route, as numerapi's SignalsAPI sends it.
    operations = {op for op, _ in sandbox.requests}
    assert {"submissionUploadSignalsAuth", "createSignalsSubmission"} <= operations


def test_a_tournament_without_an_open_round_is_skipped_and_said(open_round: Round) -> None:
    blocks = [
        open_round.save_model("classic_two"),
        _save(open_round, "signals_two", SIGNALS, make_momentum_predict_fn("numerai_ticker", 10)),
    ]
    state = open_round.run(blocks)
    assert state.is_completed(), state.message
    assert "no signals round is open" in (state.message or "")
    assert [r.model for r in state.result()] == ["classic_two"]


def _too_few(universe: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Only ten tickers."""
    head = universe.iloc[:10]
    return pd.DataFrame(
        {head.columns[0]: head.iloc[:, 0], "signal": 0.1 + 0.05 * pd.RangeIndex(10)}
    )


def _unknown_column(universe: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Tickers under a column Numerai does not know."""
    n = len(universe)
    return pd.DataFrame(
        {"ticker_symbol": universe.iloc[:, 0], "signal": (pd.RangeIndex(n) + 0.5) / n}
    )


def _duplicates(universe: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Every ticker twice."""
    ids = pd.concat([universe.iloc[:, 0]] * 2, ignore_index=True)
    return pd.DataFrame({universe.columns[0]: ids, "signal": (ids.index + 0.5) / len(ids)})


def _nan(universe: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """A missing prediction."""
    n = len(universe)
    values = (pd.Series(range(n)) + 0.5) / n
    values.iloc[3] = float("nan")
    return pd.DataFrame({universe.columns[0]: universe.iloc[:, 0].to_numpy(), "signal": values})


def _out_of_range(universe: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Raw scores, not in [0, 1]."""
    n = len(universe)
    return pd.DataFrame(
        {universe.columns[0]: universe.iloc[:, 0], "signal": pd.RangeIndex(n) * 2.0}
    )


@pytest.mark.parametrize("tournament", [SIGNALS, CRYPTO], ids=["signals", "crypto"])
@pytest.mark.parametrize(
    ("predict", "check"),
    [
        (_too_few, "too_few_tickers"),
        (_unknown_column, "unknown_ticker_column"),
        (_duplicates, "duplicate_ids"),
        (_nan, "nan_predictions"),
        (_out_of_range, "out_of_range"),
    ],
    ids=["too-few", "unknown-column", "duplicates", "nan", "out-of-range"],
)
def test_bad_ticker_submissions_are_rejected_before_upload_naming_the_check(
    open_round: Round, tournament: int, predict: Callable[..., Any], check: str
) -> None:
    _open_all(open_round)
    block = _save(open_round, f"bad_{check}", tournament, predict)
    state = open_round.run([block])
    assert state.is_failed()
    (report,) = reports_of(state)
    assert report.status == "invalid"
    assert check in report.validation and check in (state.message or "")
    assert open_round.sandbox.uploads == []
