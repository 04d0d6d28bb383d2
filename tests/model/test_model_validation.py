"""Every bad submission is rejected with the right check name; a good one passes."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# -- properties -----------------------------------------------------------------------------

PROPERTY = settings(deadline=None, database=None, max_examples=40)
LIVE = pd.Index([f"n{i:015x}" for i in range(40)], name="id")


def _frame(ids: list[str], values: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "prediction": np.asarray(values, dtype="float64")})


def _spread(n: int) -> st.SearchStrategy[list[float]]:
    """n values within [0, 1] that are not all (nearly) the same."""
    values = st.lists(st.floats(0, 1), min_size=n, max_size=n)
    return values.filter(lambda v: float(np.std(v, ddof=1)) > 1e-6)


@PROPERTY
@given(values=_spread(len(LIVE)), order=st.permutations(range(len(LIVE))))
def test_every_live_id_once_with_values_in_range_passes_in_any_order(
    values: list[float], order: list[int]
) -> None:
    frame = _frame(list(LIVE), values).iloc[order].reset_index(drop=True)
    result = validate_submission(frame, LIVE)
    assert result.ok, result.summary()


@PROPERTY
@given(
    values=_spread(len(LIVE)),
    rows=st.sets(st.integers(0, len(LIVE) - 1), min_size=1, max_size=5),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 7.0, -1e-3, 1 + 1e-3]),
)
def test_any_bad_value_anywhere_is_refused_by_name(
    values: list[float], rows: set[int], bad: float
) -> None:
    for row in rows:
        values[row] = bad
    result = validate_submission(_frame(list(LIVE), values), LIVE)
    expected = (
        "nan_predictions"
        if np.isnan(bad)
        else "infinite_predictions"
        if np.isinf(bad)
        else "out_of_range"
    )
    assert expected in result.failed_checks, result.summary()


@PROPERTY
@given(
    values=_spread(len(LIVE)),
    dropped=st.sets(st.integers(0, len(LIVE) - 1), min_size=1, max_size=len(LIVE) - 2),
    extra=st.lists(st.from_regex(r"\An[0-9a-f]{15}x\Z", fullmatch=True), max_size=3, unique=True),
    repeated=st.sets(st.integers(0, len(LIVE) - 1), max_size=3),
)
def test_missing_unknown_or_repeated_ids_are_refused_by_name(
    values: list[float], dropped: set[int], extra: list[str], repeated: set[int]
) -> None:
    keep = [i for i in range(len(LIVE)) if i not in dropped]
    ids = [LIVE[i] for i in keep] + extra + [LIVE[i] for i in repeated if i in keep]
    preds = [values[i] for i in keep] + [0.5] * len(extra)
    preds += [values[i] for i in repeated if i in keep]
    result = validate_submission(_frame(ids, preds), LIVE)
    assert "missing_ids" in result.failed_checks
    assert ("extra_ids" in result.failed_checks) == bool(extra)
    assert ("duplicate_ids" in result.failed_checks) == any(i in keep for i in repeated)


@PROPERTY
@given(
    values=_spread(len(LIVE)),
    dropped=st.sets(st.integers(0, len(LIVE) - 1), max_size=3),
    extra=st.lists(st.from_regex(r"\An[0-9a-f]{15}x\Z", fullmatch=True), max_size=2, unique=True),
    repeated=st.sets(st.integers(0, len(LIVE) - 1), max_size=2),
    order=st.permutations(range(len(LIVE))),
    bad_value=st.sampled_from([None, np.nan, 1.5, -0.1]),
)
def test_whatever_numerai_tools_refuses_is_refused(
    values: list[float],
    dropped: set[int],
    extra: list[str],
    repeated: set[int],
    order: list[int],
    bad_value: float | None,
) -> None:
    """Our id check stands in for numerai-tools' when it passes: never more lenient."""
    from numerai_tools.submissions import validate_submission_numerai

    if bad_value is not None:
        values[0] = bad_value
    keep = [i for i in order if i not in dropped]
    ids = [LIVE[i] for i in keep] + extra + [LIVE[i] for i in repeated]
    preds = [values[i] for i in keep] + [0.5] * len(extra) + [values[i] for i in repeated]
    frame = _frame(ids, preds)
    try:
        validate_submission_numerai(pd.Series(LIVE), frame.copy())
    except Exception as refused:
        result = validate_submission(frame, LIVE)
        assert not result.ok, f"numerai-tools refused ({refused}), we did not"
