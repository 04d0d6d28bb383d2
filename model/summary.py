"""A JSON-ready summary of a submission, for reports and artifacts."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _plain(value: float) -> float | None:
    """Return a plain float, or None for NaN/inf (not valid JSON)."""
    value = float(value)
    return value if math.isfinite(value) else None


BINS = 10


def histogram(values: pd.Series, bins: int = BINS) -> list[int]:
    """Counts of values in equal bins over [0, 1]; values outside are left out."""
    finite = pd.to_numeric(values, errors="coerce").dropna()
    inside = finite[(finite >= 0) & (finite <= 1)]
    index = (inside * bins).astype(int).clip(upper=bins - 1)
    return [int(n) for n in index.value_counts().reindex(range(bins), fill_value=0)]


def prediction_summary(
    submission: pd.DataFrame, example: pd.Series | None = None
) -> dict[str, Any]:
    """Summarize predictions: rows, mean, std, min, max and rank correlation with the example."""
    column = "prediction" if "prediction" in submission.columns else submission.columns[-1]
    preds = pd.to_numeric(submission[column], errors="coerce")
    preds.index = pd.Index(submission["id"]) if "id" in submission.columns else submission.index
    summary: dict[str, Any] = {
        "rows": len(preds),
        "mean": _plain(preds.mean()),
        "std": _plain(preds.std()),
        "min": _plain(preds.min()),
        "max": _plain(preds.max()),
        "corr_with_example": None,
        "example_overlap": 0,
        "histogram": histogram(preds),
        "example_histogram": None,
    }
    if example is None:
        return summary
    ours = preds[~preds.index.duplicated()].dropna()
    theirs = pd.to_numeric(example, errors="coerce")
    theirs = theirs[~theirs.index.duplicated()].dropna()
    common = ours.index.intersection(theirs.index)
    summary["example_overlap"] = len(common)
    summary["example_histogram"] = histogram(theirs)
    if len(common) >= 2:
        # Spearman as Pearson of ranks (pandas' spearman would need scipy).
        corr = ours[common].rank().corr(theirs[common].rank())
        summary["corr_with_example"] = _plain(corr)
    return summary
