"""The sandbox refuses what Numerai refuses, through real numerapi: a GraphQL error naming it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numerapi
import numpy as np
import pandas as pd
import pytest

from sandbox import Sandbox

from .conftest import valid_predictions

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _at(row: int, value: float | str) -> Mutation:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["prediction"] = frame["prediction"].astype(object)
        frame.loc[row, "prediction"] = value
        return frame

    return mutate


REFUSED: dict[str, tuple[Mutation, str]] = {
    "missing ids": (lambda f: f.iloc[:-5], "invalid_submission_ids: 5 of 300 live ids are missing"),
    "unknown ids": (
        lambda f: f.assign(id=[f"nfff{i:012x}" for i in range(len(f))]),
        "live ids are missing",
    ),
    "an extra unknown id": (
        lambda f: pd.concat([f, pd.DataFrame({"id": ["nope"], "prediction": [0.5]})]),
        "invalid_submission_ids: 1 ids are not in this round's live data: 'nope'",
    ),
    "duplicate id": (
        lambda f: pd.concat([f, f.iloc[:1]]),
        "invalid_submission_ids: duplicates in id",
    ),
    "NaN": (_at(3, np.nan), "invalid_submission_values: submission must not contain NaNs"),
    "7.0": (_at(3, 7.0), "invalid_submission_values: values must be between 0 and 1"),
    "negative": (_at(3, -0.1), "values must be between 0 and 1"),
    "infinite": (_at(3, np.inf), "values must be between 0 and 1"),
    "text": (_at(3, "high"), "invalid_submission_values: 1 prediction(s) are not numbers"),
    "constant": (lambda f: f.assign(prediction=0.5), "non-zero standard deviation"),
    "wrong header": (lambda f: f.rename(columns={"prediction": "pred"}), "headers must be"),
    "extra column": (lambda f: f.assign(era="X"), "invalid_submission_headers"),
    "columns swapped": (lambda f: f[["prediction", "id"]], "invalid_submission_headers"),
    "no rows": (lambda f: f.iloc[:0], "invalid_submission: the file has a header but no rows"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_invalid_upload_is_refused_naming_the_problem(
    case: str, sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    mutate, message = REFUSED[case]
    frame = mutate(valid_predictions(sandbox))
    with pytest.raises(ValueError, match="invalid_submission") as info:
        numerai.upload_predictions(df=frame, model_id=sandbox.models["alpha"])
    assert message in str(info.value)
    assert sandbox.submissions() == []
    assert ("create_submission", "err") in sandbox.requests


def test_valid_uploads_are_accepted(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    frame = valid_predictions(sandbox)
    bounds = frame.assign(prediction=np.linspace(0.0, 1.0, len(frame)))  # 0 and 1 included
    for accepted in (frame, frame.sample(frac=1, random_state=1), bounds):
        assert numerai.upload_predictions(df=accepted, model_id=sandbox.models["alpha"])
    probability = frame.rename(columns={"prediction": "probability"})
    assert numerai.upload_predictions(df=probability, model_id=sandbox.models["beta"])
    assert len(sandbox.submissions()) == 4


def test_the_upload_is_checked_against_its_own_round(
    sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    previous = valid_predictions(sandbox)
    sandbox.open_round()  # 1001: other live ids
    with pytest.raises(ValueError, match="300 of 300 live ids are missing"):
        numerai.upload_predictions(df=previous, model_id=sandbox.models["alpha"])
    assert numerai.upload_predictions(
        df=valid_predictions(sandbox, 1001), model_id=sandbox.models["alpha"]
    )


def test_signals_refusals(sandbox: Sandbox, tmp_path: Path) -> None:
    model_id = sandbox.add_model("sig", tournament=11)
    sandbox.open_round(tournament=11)
    with sandbox.use_as_numerai():
        api = numerapi.SignalsAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
        path = api.download_dataset("signals/v2.0/live.parquet", str(tmp_path / "live.parquet"))
        tickers = pd.read_parquet(path)["numerai_ticker"]
        ranks = (tickers.index + 1) / len(tickers)
        frame = pd.DataFrame({"numerai_ticker": tickers, "signal": ranks})
        refused = {
            "Not enough stocks submitted (50 of the live universe": frame.iloc[:50],
            "headers must be one of": frame.rename(columns={"numerai_ticker": "name"}),
            "submission must not contain NaNs": frame.assign(signal=np.nan),
            "values must be between 0 and 1": frame.assign(signal=ranks * 2),
        }
        for message, bad in refused.items():
            with pytest.raises(ValueError, match="invalid_submission") as info:
                api.upload_predictions(df=bad, model_id=model_id)
            assert message in str(info.value)
        dated = frame.assign(date="2026-01-01")[["numerai_ticker", "date", "signal"]]
        assert api.upload_predictions(df=dated, model_id=model_id)
    assert len(sandbox.submissions(model_id)) == 1


def test_no_data_for_rounds_that_never_existed(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path
) -> None:
    for number in (999, 1001, 5):
        with pytest.raises(ValueError, match=f"Round {number} of tournament 8 does not exist"):
            numerai.download_dataset("v5.3/live.parquet", str(tmp_path / "l.pq"), number)
        with pytest.raises(ValueError, match=f"Round {number} of tournament 8 does not exist"):
            numerai.list_datasets(number)
    assert numerai.download_dataset("v5.3/live.parquet", str(tmp_path / "ok.pq"), 1000)
    with pytest.raises(ValueError, match="Round 1000 of tournament 11 does not exist"):
        numerai.raw_query(
            '{ dataset(filename: "signals/v2.0/live.parquet", round: 1000, tournament: 11) }'
        )


def test_no_live_data_before_the_first_round(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "data") as sb, sb.use_as_numerai():
        napi = numerapi.NumerAPI(sb.public_id, sb.secret_key, show_progress_bars=False)
        with pytest.raises(ValueError, match="No round of tournament 8 has opened yet"):
            napi.download_dataset("v5.3/live.parquet", str(tmp_path / "live.parquet"))
        # Files that are the same for every round are served before the first round.
        assert napi.download_dataset("v5.3/features.json", str(tmp_path / "features.json"))
