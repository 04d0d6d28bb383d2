"""Scores of the sandbox's submissions per round, as Numerai reports them some days after a close.

A stand-in, plausible rather than faithful: the round's hidden target is the signal its live data
was generated from plus noise, `canon_corr` is the correlation of the ranked predictions with it,
and `canon_mmc` that of the part of the predictions the example predictions do not explain
(Numerai's meta model is not simulated). Scores appear once a day from the round's score time,
the same value every day (Numerai's drift through the days is not simulated); Classic only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

# As the sandbox's rounds announce them (scoreTime and resolveTime of sandbox.schema.round_dict).
SCORE_DELAY = timedelta(days=3)
RESOLVE_DELAY = timedelta(days=31)
SCORING_DAYS = 20
# Numerai's Classic display names: the canonical scores, and the v2 names clients also read.
METRICS = ("canon_corr", "canon_mmc", "v2_corr20", "mmc")


@dataclass(frozen=True)
class RoundScore:
    """One metric of one round on one scoring day."""

    round_number: int
    display_name: str
    value: float
    day: int
    date: datetime
    resolved: bool


def scoring_days(closes: datetime, now: datetime) -> int:
    """How many daily scores a round closed at `closes` has at `now` (0 before its score time)."""
    if now < closes + SCORE_DELAY:
        return 0
    return min(SCORING_DAYS, (now - closes - SCORE_DELAY) // timedelta(days=1) + 1)


def _ranked(values: pd.Series) -> np.ndarray:
    ranks = values.rank(pct=True).to_numpy()
    return ranks - ranks.mean()


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def score_submission(csv: bytes, target: pd.Series, example: pd.Series) -> dict[str, float]:
    """The metrics of one submission (CSV of id, prediction) against the round's hidden target."""
    frame = pd.read_csv(io.BytesIO(csv))
    column = "prediction" if "prediction" in frame.columns else frame.columns[-1]
    predictions = frame.set_index("id")[column].astype(float).reindex(target.index)
    keep = predictions.notna().to_numpy()
    y = target.to_numpy()[keep]
    mine = _ranked(predictions[keep])
    theirs = _ranked(example[keep])
    # The part of the predictions the example predictions do not explain (least squares).
    residual = mine - theirs * (mine @ theirs) / max(float(theirs @ theirs), 1e-12)
    corr = _corr(mine, y)
    mmc = _corr(residual, y) * float(residual.std() / max(mine.std(), 1e-12))
    return {"canon_corr": corr, "canon_mmc": mmc, "v2_corr20": corr, "mmc": mmc}


def daily_scores(
    round_number: int, closes: datetime, now: datetime, metrics: dict[str, float]
) -> list[RoundScore]:
    """The daily scores a round has at `now`, oldest day first."""
    days = scoring_days(closes, now)
    resolved = now >= closes + RESOLVE_DELAY
    return [
        RoundScore(
            round_number,
            name,
            round(value, 6),
            day,
            closes + SCORE_DELAY + timedelta(days=day - 1),
            resolved,
        )
        for day in range(1, days + 1)
        for name, value in metrics.items()
    ]
