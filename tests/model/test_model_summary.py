"""The prediction summary is plain JSON and compares against the example predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from model import prediction_summary


def test_summary_without_example(good_submission: pd.DataFrame) -> None:
    summary = prediction_summary(good_submission, None)
    assert summary["rows"] == 300
    assert summary["corr_with_example"] is None
    assert abs(summary["mean"] - 0.5) < 1e-9
    json.dumps(summary)


def test_summary_aligns_ids_with_example(good_submission: pd.DataFrame) -> None:
    example = pd.Series(
        good_submission["prediction"].to_numpy() ** 2,
        index=pd.Index(good_submission["id"], name="id"),
        name="prediction",
    ).iloc[::-1]  # a different order must not matter
    summary = prediction_summary(good_submission, example)
    assert summary["example_overlap"] == 300
    assert summary["corr_with_example"] == 1.0
    scalars = {k: v for k, v in summary.items() if not k.endswith("histogram")}
    assert all(isinstance(v, int | float) for v in scalars.values())
    assert sum(summary["histogram"]) == 300 and len(summary["example_histogram"]) == 10
    json.dumps(summary)


def test_summary_nan_is_none(good_submission: pd.DataFrame) -> None:
    sub = good_submission.iloc[:1].assign(prediction=np.nan)
    summary = prediction_summary(sub, None)
    assert summary["mean"] is None
    json.dumps(summary)
