"""Numerai's scores per round, read by numerapi's own methods from the sandbox.

The sandbox scores against a target of its own making (see sandbox/scores.py): these tests show
that scores appear when Numerai's would, follow the predictions and refuse an unknown model;
they do not check Numerai's scoring formulas.
"""

from __future__ import annotations

from datetime import timedelta

import numerapi
import pandas as pd
import pytest

from sandbox import Sandbox

from .conftest import valid_predictions


def example_predictions(sandbox: Sandbox) -> pd.DataFrame:
    """The round's example predictions as a submission."""
    number = sandbox.current_round.number  # type: ignore[union-attr]
    path = sandbox.store.path("v5.3", "live_example_preds.parquet", number)
    return pd.read_parquet(path).rename_axis("id").reset_index()


def target_predictions(sandbox: Sandbox) -> pd.DataFrame:
    """Predictions that know the round's hidden target (ranked, ties broken by id)."""
    target = sandbox.store.live_target("v5.3", sandbox.current_round.number)  # type: ignore[union-attr]
    ranks = target.rank(pct=True, method="first")
    return ranks.rename("prediction").rename_axis("id").reset_index()


def latest(scores: list[dict], name: str) -> dict:
    """The latest day's score of one metric."""
    return max((s for s in scores if s["displayName"] == name), key=lambda s: s["day"])


def test_scores_appear_days_after_the_close_and_follow_the_predictions(
    sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    alpha, beta = sandbox.models["alpha"], sandbox.models["beta"]
    gamma = sandbox.add_model("gamma")
    numerai.upload_predictions(df=target_predictions(sandbox), model_id=alpha)
    numerai.upload_predictions(df=valid_predictions(sandbox), model_id=beta)
    numerai.upload_predictions(df=example_predictions(sandbox), model_id=gamma)
    assert numerai.submission_scores(alpha) == []

    sandbox.close_round()
    sandbox.advance(timedelta(days=2))
    assert numerai.submission_scores(alpha) == [], "scored before the score time"
    sandbox.advance(timedelta(days=3))
    scores = numerai.submission_scores(alpha)
    corr = latest(scores, "canon_corr")
    assert corr["roundNumber"] == 1000 and corr["day"] == 3 and corr["resolved"] is False
    # Knowing the target scores high, row order scores near nothing, and the example predictions
    # add nothing to themselves (the stand-in's meta model).
    assert corr["value"] > 0.5
    assert abs(latest(numerai.submission_scores(beta), "canon_corr")["value"]) < 0.2
    assert abs(latest(numerai.submission_scores(gamma), "canon_mmc")["value"]) < 0.01
    assert {s["displayName"] for s in scores} >= {"canon_corr", "canon_mmc", "v2_corr20", "mmc"}


def test_a_round_resolves_after_twenty_scoring_days(
    sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    alpha = sandbox.models["alpha"]
    numerai.upload_predictions(df=example_predictions(sandbox), model_id=alpha)
    sandbox.close_round()
    sandbox.advance(timedelta(days=40))
    sandbox.open_round()
    numerai.upload_predictions(df=valid_predictions(sandbox), model_id=alpha)

    final = numerai.submission_scores(alpha, distinct_on_round=True, display_name="canon_corr")
    assert [(s["roundNumber"], s["day"], s["resolved"]) for s in final] == [(1000, 20, True)]
    with pytest.warns(DeprecationWarning):
        performances = numerai.round_model_performances_v2(alpha)
    assert [p["roundNumber"] for p in performances] == [1000]
    assert performances[0]["roundResolved"] is True
    values = {s["displayName"]: s["value"] for s in performances[0]["submissionScores"]}
    assert values["canon_corr"] == final[0]["value"]


def test_the_latest_submission_of_a_round_is_scored(
    sandbox: Sandbox, numerai: numerapi.NumerAPI
) -> None:
    alpha = sandbox.models["alpha"]
    numerai.upload_predictions(df=valid_predictions(sandbox), model_id=alpha)
    numerai.upload_predictions(df=target_predictions(sandbox), model_id=alpha)
    sandbox.close_round()
    sandbox.advance(timedelta(days=4))
    assert latest(numerai.submission_scores(alpha), "canon_corr")["value"] > 0.5


def test_scores_of_an_unknown_model_are_refused(numerai: numerapi.NumerAPI) -> None:
    with pytest.raises(ValueError, match="Model not found"):
        numerai.submission_scores("00000000-0000-0000-0000-000000000000")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="Model not found"):
        numerai.round_model_performances_v2("00000000-0000-0000-0000-000000000000")
