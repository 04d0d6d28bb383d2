"""What the sandbox refuses at create_submission, as Numerai does: the file's headers, ids, values.

Written apart from the flow's own checks (model/validation.py), from Numerai's published rules
(numerai-tools' submissions.py): the sandbox is the second line that shows that nothing invalid
reaches "Numerai", so it must not share the first line's code or its mistakes. Each refusal is a
message that starts with the kind of problem, the way Numerai's GraphQL errors name it.

Stricter than Numerai in one place, like the flow: a Classic file with ids that are not in the
round's live data is refused (numerai-tools only reports them).
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

CLASSIC_IDS = ("id",)
CLASSIC_PREDICTIONS = ("prediction", "probability")
TICKER_IDS = {
    11: ("ticker", "sedol", "bloomberg_ticker", "composite_figi", "numerai_ticker"),
    12: ("symbol",),
}
TICKER_PREDICTIONS = ("prediction", "signal")
SIGNALS_DATES = ("friday_date", "date")
MIN_TICKERS = 100
_SHOWN = 3


class SubmissionRefused(ValueError):
    """The uploaded file is not a valid submission; the message says why."""


def _few(values: Sequence[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:_SHOWN])
    return shown + (", ..." if len(values) > _SHOWN else "")


def read_csv(data: bytes) -> pd.DataFrame:
    """The uploaded file as text columns ("" where a cell is empty), or refused."""
    if not data.strip():
        raise SubmissionRefused("invalid_submission: the uploaded file is empty")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise SubmissionRefused(f"invalid_submission: not a CSV file ({exc})") from exc
    if frame.empty:
        raise SubmissionRefused("invalid_submission: the file has a header but no rows")
    return frame


def _headers(
    frame: pd.DataFrame, ids: Sequence[str], predictions: Sequence[str]
) -> tuple[str, str]:
    columns = [str(c) for c in frame.columns]
    if len(columns) != 2 or columns[0] not in ids or columns[1] not in predictions:
        raise SubmissionRefused(
            f"invalid_submission_headers: headers must be one of {list(ids)} and one of "
            f"{list(predictions)}, got {columns[:6]}"
        )
    return columns[0], columns[1]


def _values(text: pd.Series) -> None:
    """Numbers only, none missing or NaN, within [0, 1], not all the same."""
    numbers = pd.to_numeric(text.str.strip(), errors="coerce")
    not_numbers = text[numbers.isna() & ~text.str.strip().str.lower().isin(["", "nan"])]
    if len(not_numbers):
        raise SubmissionRefused(
            f"invalid_submission_values: {len(not_numbers)} prediction(s) are not numbers: "
            f"{_few(not_numbers.tolist())}"
        )
    values = numbers.to_numpy(dtype="float64")
    if np.isnan(values).any():
        raise SubmissionRefused(
            f"invalid_submission_values: submission must not contain NaNs "
            f"({int(np.isnan(values).sum())} found)"
        )
    outside = (values < 0) | (values > 1)  # inf included
    if outside.any():
        raise SubmissionRefused(
            f"invalid_submission_values: values must be between 0 and 1 "
            f"({int(outside.sum())} outside, min {values.min():g}, max {values.max():g})"
        )
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    if math.isclose(std, 0.0, abs_tol=1e-8):
        raise SubmissionRefused(
            "invalid_submission_values: submission must have non-zero standard deviation"
        )


def _ids(text: pd.Series, column: str) -> list[str]:
    blank = text.str.strip() == ""
    if blank.any():
        raise SubmissionRefused(
            f"invalid_submission_ids: submission must not contain empty values in the {column} "
            f"column ({int(blank.sum())} found)"
        )
    repeated = text[text.duplicated()].unique().tolist()
    if repeated:
        raise SubmissionRefused(
            f"invalid_submission_ids: duplicates in {column}: {len(repeated)} repeated, "
            f"{_few(repeated)}"
        )
    return text.tolist()  # one conversion, not one Arrow scalar per id


def check_classic(data: bytes, live_ids: Collection[str]) -> None:
    """Refuse a Classic file unless it has id,prediction, exactly the live ids, valid values."""
    frame = read_csv(data)
    id_column, prediction_column = _headers(frame, CLASSIC_IDS, CLASSIC_PREDICTIONS)
    ids = _ids(frame[id_column], id_column)
    live = set(live_ids)
    given = set(ids)
    missing = sorted(live - given)
    if missing:
        raise SubmissionRefused(
            f"invalid_submission_ids: {len(missing)} of {len(live)} live ids are missing: "
            f"{_few(missing)}. Are you using the latest live ids?"
        )
    unknown = sorted(given - live)
    if unknown:
        raise SubmissionRefused(
            f"invalid_submission_ids: {len(unknown)} ids are not in this round's live data: "
            f"{_few(unknown)}"
        )
    _values(frame[prediction_column])


def check_tickers(data: bytes, tournament: int, universe: pd.DataFrame) -> None:
    """Refuse a Signals/Crypto file without a known ticker column, enough live tickers, values."""
    frame = read_csv(data)
    if tournament == 11:  # Signals allows a date column beside the two
        frame = frame.drop(columns=[c for c in frame.columns if c in SIGNALS_DATES][:1])
    id_column, prediction_column = _headers(frame, TICKER_IDS[tournament], TICKER_PREDICTIONS)
    if id_column not in universe.columns:
        raise SubmissionRefused(
            f"invalid_submission_headers: the live universe has no {id_column!r} column"
        )
    tickers = _ids(frame[id_column], id_column)
    live = set(universe[id_column].dropna().astype(str))
    known = len(set(tickers) & live)
    if known < MIN_TICKERS:
        raise SubmissionRefused(
            f"invalid_submission_ids: Not enough stocks submitted ({known} of the live "
            f"universe, at least {MIN_TICKERS}). Are you using the latest live universe?"
        )
    _values(frame[prediction_column])
