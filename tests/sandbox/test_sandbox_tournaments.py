"""Signals and Crypto through unmodified numerapi SignalsAPI/CryptoAPI pointed at the sandbox."""

from __future__ import annotations

from pathlib import Path

import numerapi
import pandas as pd
import pytest

from sandbox import Sandbox


def test_signals_universe_upload_route_rounds_and_submissions(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    model_id = sandbox.add_model("sig", tournament=11)
    sandbox.open_round(tournament=11)
    with sandbox.use_as_numerai():
        api = numerapi.SignalsAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
        assert "signals/v2.0/live.parquet" in api.list_datasets()
        assert api.get_current_round() == 1000
        assert api.get_models() == {"sig": model_id}
        universe = pd.read_parquet(
            api.download_dataset("signals/v2.0/live.parquet", str(tmp_path / "live.parquet"))
        )
        assert {"numerai_ticker", "bloomberg_ticker", "composite_figi"} <= set(universe.columns)
        n = len(universe)
        frame = pd.DataFrame(
            {"numerai_ticker": universe["numerai_ticker"], "signal": (pd.RangeIndex(n) + 0.5) / n}
        )
        submission_id = api.upload_predictions(df=frame, model_id=model_id)
        assert [s["id"] for s in api.submission_ids(model_id)] == [submission_id]
    (record,) = sandbox.submissions(model_id)
    assert (record.tournament, record.round_number) == (11, 1000)
    assert ("createSignalsSubmission", "ok") in sandbox.requests


def test_crypto_universe_and_generic_upload_with_tournament_12(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    model_id = sandbox.add_model("cry", tournament=12)
    sandbox.open_round(tournament=12, number=300)
    with sandbox.use_as_numerai():
        api = numerapi.CryptoAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
        assert api.get_current_round() == 300
        path = api.download_dataset(
            "crypto/v1.0/live_universe.parquet", str(tmp_path / "u.parquet")
        )
        symbols = pd.read_parquet(path)["symbol"]
        frame = pd.DataFrame({"symbol": symbols, "signal": (symbols.index + 1) / len(symbols)})
        api.upload_predictions(df=frame, model_id=model_id)
        # A Classic round is open too, but a Crypto model's submission is in Crypto's round.
        assert numerapi.NumerAPI().get_current_round() == 1000
    (record,) = sandbox.submissions(model_id)
    assert (record.tournament, record.round_number) == (12, 300)


def test_a_model_cannot_submit_to_another_tournament(sandbox: Sandbox) -> None:
    model_id = sandbox.add_model("sig2", tournament=11)
    sandbox.open_round(tournament=11)
    with sandbox.use_as_numerai():
        api = numerapi.NumerAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
        frame = pd.DataFrame({"id": ["a"], "prediction": [0.5]})
        with pytest.raises(ValueError, match="tournament 11, not 8"):
            api.upload_predictions(df=frame, model_id=model_id)


def test_close_round_closes_every_tournament(sandbox: Sandbox) -> None:
    sandbox.open_round(tournament=11)
    sandbox.close_round()
    assert sandbox.open_round_at() is None
