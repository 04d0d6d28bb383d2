"""Tournaments as data, ticker validation by name, and the Signals/Crypto example models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model.predictor import load_predictor
from model.ticker_example import train_ticker_example, train_ticker_example_from_file
from model.tournaments import CLASSIC, CRYPTO, SIGNALS, TOURNAMENTS, tournament
from model.validation import validate_for_tournament, validate_ticker_submission


def test_tournaments_by_number_and_name() -> None:
    assert [t.number for t in TOURNAMENTS.values()] == [CLASSIC, SIGNALS, CRYPTO]
    assert tournament("signals") is tournament(11) is tournament("11")
    assert tournament(CRYPTO).dataset("v1.0", "live_universe.parquet") == (
        "crypto/v1.0/live_universe.parquet"
    )
    assert tournament(SIGNALS).upload_auth_query == "submissionUploadSignalsAuth"
    assert "composite_figi" in tournament(SIGNALS).id_columns
    with pytest.raises(ValueError, match="unknown tournament"):
        tournament("forex")


def test_versions_are_read_per_tournament_from_mixed_listings() -> None:
    names = ["v5.2/live.parquet", "v5.3/live.parquet", "signals/v2.0/live.parquet"]
    names += ["signals/v1.0/live.parquet", "crypto/v1.0/live_universe.parquet"]
    assert tournament(CLASSIC).newest_version(names) == "v5.3"
    assert tournament(SIGNALS).newest_version(names) == "v2.0"
    assert tournament(CRYPTO).newest_version(names) == "v1.0"


def _universe(n: int = 150) -> pd.DataFrame:
    tickers = [f"T{i:03d} US" for i in range(n)]
    return pd.DataFrame({"numerai_ticker": tickers, "composite_figi": [f"F{i}" for i in range(n)]})


def _good(universe: pd.DataFrame) -> pd.DataFrame:
    n = len(universe)
    return pd.DataFrame(
        {"numerai_ticker": universe["numerai_ticker"], "signal": (np.arange(n) + 0.5) / n}
    )


def test_a_good_signals_submission_passes_and_figi_works_too() -> None:
    universe = _universe()
    assert validate_for_tournament(_good(universe), universe, tournament(SIGNALS)).ok
    by_figi = _good(universe).rename(columns={"numerai_ticker": "composite_figi"})
    by_figi["composite_figi"] = universe["composite_figi"]
    assert validate_ticker_submission(by_figi, universe, tournament(SIGNALS)).ok


@pytest.mark.parametrize(
    ("spoil", "check"),
    [
        (lambda f: f.iloc[:50], "too_few_tickers"),
        (lambda f: f.rename(columns={"numerai_ticker": "isin"}), "unknown_ticker_column"),
        (
            lambda f: f.rename(columns={"numerai_ticker": "bloomberg_ticker"}),
            "unknown_ticker_column",
        ),
        (lambda f: pd.concat([f, f.iloc[:3]], ignore_index=True), "duplicate_ids"),
        (lambda f: f.assign(signal=f["signal"].where(f.index != 5)), "nan_predictions"),
        (lambda f: f.assign(signal=f["signal"] * 3), "out_of_range"),
        (lambda f: f.assign(signal=0.5), "constant"),
    ],
)
def test_bad_signals_submissions_name_the_failed_check(spoil: Any, check: str) -> None:
    universe = _universe()
    result = validate_ticker_submission(spoil(_good(universe)), universe, tournament(SIGNALS))
    assert not result.ok
    assert check in result.failed_checks


def test_crypto_needs_the_symbol_column() -> None:
    universe = pd.DataFrame({"symbol": [f"C{i}" for i in range(120)]})
    good = pd.DataFrame({"symbol": universe["symbol"], "prediction": np.linspace(0.01, 0.99, 120)})
    assert validate_ticker_submission(good, universe, tournament(CRYPTO)).ok
    wrong = good.rename(columns={"symbol": "numerai_ticker"})
    result = validate_ticker_submission(wrong, universe, tournament(CRYPTO))
    assert "unknown_ticker_column" in result.failed_checks


def _prices(id_column: str, tickers: list[str], days: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (days, len(tickers))), axis=0))
    dates = pd.date_range("2026-01-01", periods=days).strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "date": np.repeat(dates, len(tickers)),
            id_column: np.tile(tickers, days),
            "close": closes.reshape(-1),
        }
    )


@pytest.mark.parametrize(("number", "id_column"), [(SIGNALS, "numerai_ticker"), (CRYPTO, "symbol")])
def test_ticker_examples_save_a_predict_function_that_passes_validation(
    tmp_path: Path, number: int, id_column: str
) -> None:
    universe = pd.DataFrame({id_column: [f"X{i}" for i in range(130)]})
    prices = _prices(id_column, list(universe[id_column]))
    prices.to_parquet(tmp_path / "prices.parquet")
    path = train_ticker_example_from_file(tmp_path / "prices.parquet", number, tmp_path / "m.pkl")
    rules = tournament(number)
    frame = load_predictor(path)(universe, prices, tournament=rules)
    assert list(frame.columns) == [id_column, "signal"]
    result = validate_for_tournament(frame, universe, rules)
    assert result.ok, result.summary()


def test_ticker_example_says_when_no_prices_are_given() -> None:
    predict = train_ticker_example(_prices("symbol", [f"X{i}" for i in range(20)]), "crypto")
    with pytest.raises(ValueError, match="no daily prices"):
        predict(pd.DataFrame({"symbol": ["X1"]}), pd.DataFrame())


def test_column_names_and_minimums_match_the_installed_numerai_tools() -> None:
    import numerai_tools.submissions as upstream

    from model import tournaments

    for name in (
        "NUMERAI_ALLOWED_ID_COLS",
        "NUMERAI_ALLOWED_PRED_COLS",
        "SIGNALS_ALLOWED_ID_COLS",
        "SIGNALS_ALLOWED_PRED_COLS",
        "SIGNALS_MIN_TICKERS",
        "CRYPTO_ALLOWED_ID_COLS",
        "CRYPTO_ALLOWED_PRED_COLS",
        "CRYPTO_MIN_TICKERS",
    ):
        assert getattr(tournaments, name) == getattr(upstream, name), name


def test_importing_the_flow_loads_neither_scipy_nor_scikit_learn() -> None:
    import subprocess
    import sys

    code = "import sys, flows.submit_round; print(sorted({'scipy', 'sklearn'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
