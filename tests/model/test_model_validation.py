"""Every bad submission is rejected with the right check name; a good one passes."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model import InvalidSubmission, ensure_valid, validate_submission

Mutation = Callable[[pd.DataFrame], pd.DataFrame]


def _set(row: int, column: str, value: Any) -> Mutation:
    def mutate(sub: pd.DataFrame) -> pd.DataFrame:
        sub = sub.copy()
        if column == "prediction":
            sub["prediction"] = sub["prediction"].astype(
                object if isinstance(value, str) else float
            )
        else:
            sub[column] = sub[column].astype(object)
        sub.loc[row, column] = value
        return sub

    return mutate


BAD: dict[str, tuple[Mutation, str]] = {
    "nan": (_set(3, "prediction", np.nan), "nan_predictions"),
    "inf": (_set(3, "prediction", np.inf), "infinite_predictions"),
    "neg_inf": (_set(3, "prediction", -np.inf), "infinite_predictions"),
    "below_zero": (_set(3, "prediction", -0.2), "out_of_range"),
    "above_one": (_set(3, "prediction", 1.5), "out_of_range"),
    "constant": (lambda s: s.assign(prediction=0.5), "constant"),
    "missing_ids": (lambda s: s.iloc[:-10], "missing_ids"),
    "duplicate_ids": (lambda s: pd.concat([s, s.iloc[:2]], ignore_index=True), "duplicate_ids"),
    "extra_ids": (
        lambda s: pd.concat(
            [s, pd.DataFrame({"id": ["nope"], "prediction": [0.5]})], ignore_index=True
        ),
        "extra_ids",
    ),
    "wrong_headers": (lambda s: s.rename(columns={"prediction": "pred"}), "headers"),
    "extra_column": (lambda s: s.assign(era="X"), "headers"),
    "id_as_index": (lambda s: s.set_index("id"), "headers"),
    "empty": (lambda s: s.iloc[:0], "empty"),
    "strings": (lambda s: s.assign(prediction=s["prediction"].astype(str)), "dtype"),
    "nan_id": (_set(4, "id", None), "nan_ids"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_submission_rejected(
    case: str, good_submission: pd.DataFrame, live_ids: pd.Index
) -> None:
    mutate, check = BAD[case]
    result = validate_submission(mutate(good_submission), live_ids)
    assert not result.ok
    assert check in result.failed_checks, result.summary()
    assert check in result.summary()
    with pytest.raises(InvalidSubmission, match=check):
        ensure_valid(mutate(good_submission), live_ids)


def test_good_submission_passes(good_submission: pd.DataFrame, live_ids: pd.Index) -> None:
    result = validate_submission(good_submission, live_ids)
    assert result.ok, result.summary()
    assert result.summary() == "ok"
    ensure_valid(good_submission, live_ids)


def test_probability_header_allowed_like_numerai_tools(
    good_submission: pd.DataFrame, live_ids: pd.Index
) -> None:
    sub = good_submission.rename(columns={"prediction": "probability"})
    assert validate_submission(sub, live_ids).ok


def test_bounds_are_inclusive(good_submission: pd.DataFrame, live_ids: pd.Index) -> None:
    sub = good_submission.copy()
    sub.loc[0, "prediction"] = 0.0
    sub.loc[1, "prediction"] = 1.0
    assert validate_submission(sub, live_ids).ok


def test_numerai_tools_runs_too(good_submission: pd.DataFrame, live_ids: pd.Index) -> None:
    result = validate_submission(good_submission.iloc[:-1], live_ids)
    assert "numerai_tools" in result.failed_checks
    assert "invalid_submission_ids" in result.summary()


def test_not_a_frame_does_not_raise(live_ids: pd.Index) -> None:
    result = validate_submission(np.zeros(3), live_ids)  # type: ignore[arg-type]
    assert result.failed_checks == ["headers"]


def test_summary_lists_every_failure(good_submission: pd.DataFrame, live_ids: pd.Index) -> None:
    sub = good_submission.copy()
    sub.loc[0:2, "prediction"] = np.nan
    sub.loc[3, "prediction"] = 7.0
    result = validate_submission(sub, live_ids)
    summary = result.summary()
    assert summary.startswith("failed: nan_predictions (3 rows), out_of_range (1 row")


def test_invalid_submission_pickles(good_submission: pd.DataFrame, live_ids: pd.Index) -> None:
    with pytest.raises(InvalidSubmission) as info:
        ensure_valid(good_submission.iloc[:0], live_ids)
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 (our own bytes)
    assert str(copy) == str(info.value)
    assert copy.result.failed_checks == ["empty"]
