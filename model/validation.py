"""Checks a submission must pass before upload; every failure is named and explained."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from model.errors import InvalidSubmission
from model.tournaments import CLASSIC, NUMERAI_ALLOWED_PRED_COLS, SIGNALS, Tournament

ID_COLUMN = "id"
PREDICTION_COLUMNS = tuple(NUMERAI_ALLOWED_PRED_COLS)  # "prediction", or "probability"


@dataclass(frozen=True)
class CheckFailure:
    """One failed check: its stable name and what was wrong."""

    check: str
    detail: str


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of validating a submission."""

    ok: bool
    failures: list[CheckFailure] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[str]:
        """Return the names of the failed checks, in order."""
        return [f.check for f in self.failures]

    def summary(self) -> str:
        """Return one line: "ok" or "failed: check (detail), ..."."""
        if self.ok:
            return "ok"
        return "failed: " + ", ".join(f"{f.check} ({f.detail})" for f in self.failures)


def _few(values: Sequence[object], limit: int = 3) -> str:
    """Show up to `limit` values."""
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (", ..." if len(values) > limit else "")


def _rows(n: int) -> str:
    """Say "1 row" or "n rows"."""
    return f"{n} row" if n == 1 else f"{n} rows"


def _check_ids(ids: pd.Series, live_ids: pd.Index) -> list[CheckFailure]:
    """Check ids: none missing, no duplicates, every live id present, nothing extra."""
    failures: list[CheckFailure] = []
    nan_ids = ids.isna()
    if nan_ids.any():
        failures.append(CheckFailure("nan_ids", _rows(int(nan_ids.sum()))))
    # Compare as strings, as numerai-tools does.
    sub = ids[~nan_ids].astype(str)
    dups = sub[sub.duplicated()].unique().tolist()
    if dups:
        failures.append(CheckFailure("duplicate_ids", f"{len(dups)} id(s) repeated: {_few(dups)}"))
    # Plain lists first: iterating Arrow-backed strings one by one is slow.
    live, sub_ids = pd.Index(live_ids).dropna().astype(str).tolist(), sub.tolist()
    sub_set = set(sub_ids)
    missing = [i for i in live if i not in sub_set]
    if missing:
        failures.append(
            CheckFailure("missing_ids", f"{len(missing)} of {len(live)} live ids: {_few(missing)}")
        )
    live_set = set(live)
    extra = sorted({i for i in sub_ids if i not in live_set})
    if extra:
        failures.append(CheckFailure("extra_ids", f"{len(extra)} not in live: {_few(extra)}"))
    return failures


def _check_values(preds: pd.Series) -> list[CheckFailure]:
    """Check numeric predictions: no NaN or inf, within [0, 1], not constant."""
    failures: list[CheckFailure] = []
    values = preds.to_numpy(dtype="float64", na_value=np.nan)
    nan = np.isnan(values)
    if nan.any():
        failures.append(CheckFailure("nan_predictions", _rows(int(nan.sum()))))
    inf = np.isinf(values)
    if inf.any():
        failures.append(CheckFailure("infinite_predictions", _rows(int(inf.sum()))))
    finite = values[np.isfinite(values)]
    outside = (finite < 0) | (finite > 1)
    if outside.any():
        failures.append(
            CheckFailure(
                "out_of_range",
                f"{_rows(int(outside.sum()))} outside [0, 1], "
                f"min {finite.min():.6g}, max {finite.max():.6g}",
            )
        )
    std = float(np.std(finite, ddof=1)) if len(finite) >= 2 else float("nan")
    if np.isnan(std) or np.isclose(std, 0.0):
        failures.append(CheckFailure("constant", f"standard deviation {std:.3g}"))
    return failures


def _check_numerai_tools(
    submission: pd.DataFrame, live_ids: pd.Index, ids_checked: bool
) -> list[CheckFailure]:
    """Run numerai-tools' own Classic validation; anything it rejects is rejected here.

    `ids_checked`: our id check passed (every live id exactly once, nothing else). numerai-tools'
    id check asks less (no NaN id, no duplicate among the live ids, as many as there are live
    ids), so it cannot fail then; it is skipped, being most of the validation's time (pandas
    turns each live id into an Arrow scalar, 0.04 s per model on 6,700 ids). Its header and value
    checks always run.
    """
    from numerai_tools.submissions import (  # loads scipy: when used
        validate_headers_numerai,
        validate_submission_numerai,
        validate_values,
    )

    try:
        if ids_checked:
            _, prediction_column = validate_headers_numerai(submission.copy())
            validate_values(submission, prediction_column)
        else:
            validate_submission_numerai(pd.Series(live_ids), submission.copy())
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        return [CheckFailure("numerai_tools", message)]
    return []


def validate_submission(submission: pd.DataFrame, live_ids: pd.Index) -> ValidationResult:
    """Run every check on a submission against the live ids; never raises on bad data."""
    if not isinstance(submission, pd.DataFrame):
        failure = CheckFailure("headers", f"expected a DataFrame, got {type(submission).__name__}")
        return ValidationResult(ok=False, failures=[failure])
    if len(submission) == 0:
        return ValidationResult(ok=False, failures=[CheckFailure("empty", "no rows")])
    failures: list[CheckFailure] = []
    columns = list(submission.columns)
    if not (len(columns) == 2 and columns[0] == ID_COLUMN and columns[1] in PREDICTION_COLUMNS):
        failures.append(
            CheckFailure("headers", f"expected ['id', 'prediction'], got {columns[:6]}")
        )
    id_failures = (
        _check_ids(submission[ID_COLUMN], live_ids) if columns.count(ID_COLUMN) == 1 else None
    )
    failures.extend(id_failures or [])
    pred_cols = [c for c in columns if c in PREDICTION_COLUMNS]
    if len(pred_cols) == 1:
        preds = submission[pred_cols[0]]
        if pd.api.types.is_numeric_dtype(preds.dtype) and not pd.api.types.is_bool_dtype(
            preds.dtype
        ):
            failures.extend(_check_values(preds))
        else:
            failures.append(CheckFailure("dtype", f"prediction is {preds.dtype}, not numeric"))
    failures.extend(_check_numerai_tools(submission, live_ids, ids_checked=id_failures == []))
    return ValidationResult(ok=not failures, failures=failures)


def ensure_valid(submission: pd.DataFrame, live_ids: pd.Index) -> None:
    """Raise InvalidSubmission listing every failed check, or return if all pass."""
    result = validate_submission(submission, live_ids)
    if not result.ok:
        raise InvalidSubmission(result)


def _check_numerai_tools_tickers(
    submission: pd.DataFrame, universe: pd.DataFrame, tournament: Tournament
) -> list[CheckFailure]:
    """Run numerai-tools' own Signals or Crypto validation on a copy of the submission."""
    from numerai_tools.submissions import validate_submission_crypto, validate_submission_signals

    validate = (
        validate_submission_signals if tournament.number == SIGNALS else validate_submission_crypto
    )
    try:
        validate(universe.copy(), submission.copy())
    except Exception as exc:
        message = str(exc) or type(exc).__name__
        return [CheckFailure("numerai_tools", message)]
    return []


def validate_ticker_submission(
    submission: pd.DataFrame, universe: pd.DataFrame, tournament: Tournament
) -> ValidationResult:
    """Check a Signals or Crypto submission against the live universe; never raises on bad data.

    Checks, by name: headers, unknown_ticker_column (not a ticker column of the tournament, or
    one the live universe lacks), nan_ids, duplicate_ids, too_few_tickers (fewer known tickers
    than the tournament's minimum), dtype, nan_predictions, infinite_predictions, out_of_range,
    constant, and numerai_tools (numerai-tools' own verdict).
    """
    if not isinstance(submission, pd.DataFrame):
        failure = CheckFailure("headers", f"expected a DataFrame, got {type(submission).__name__}")
        return ValidationResult(ok=False, failures=[failure])
    if len(submission) == 0:
        return ValidationResult(ok=False, failures=[CheckFailure("empty", "no rows")])
    failures: list[CheckFailure] = []
    columns = [str(c) for c in submission.columns]
    expected = (
        f"one of {list(tournament.id_columns)} then one of {list(tournament.prediction_columns)}"
    )
    if len(columns) != 2 or columns[1] not in tournament.prediction_columns:
        failures.append(CheckFailure("headers", f"expected {expected}, got {columns[:6]}"))
    id_column = columns[0]
    if id_column not in tournament.id_columns:
        failures.append(
            CheckFailure(
                "unknown_ticker_column",
                f"{id_column!r} is not a {tournament.name} ticker column "
                f"({', '.join(tournament.id_columns)})",
            )
        )
    elif id_column not in universe.columns:
        offered = [c for c in tournament.id_columns if c in universe.columns]
        failures.append(
            CheckFailure(
                "unknown_ticker_column",
                f"the live universe has no {id_column!r} column; it offers {offered}",
            )
        )
    else:
        ids = submission[id_column]
        nan_ids = ids.isna()
        if nan_ids.any():
            failures.append(CheckFailure("nan_ids", _rows(int(nan_ids.sum()))))
        tickers = ids[~nan_ids].astype(str)
        dups = tickers[tickers.duplicated()].unique().tolist()
        if dups:
            failures.append(
                CheckFailure("duplicate_ids", f"{len(dups)} ticker(s) repeated: {_few(dups)}")
            )
        live = set(universe[id_column].dropna().astype(str))
        known = len(set(tickers) & live)
        minimum = tournament.min_ids or len(live)
        if known < minimum:
            failures.append(
                CheckFailure(
                    "too_few_tickers",
                    f"{known} tickers of the live universe, at least {minimum} needed",
                )
            )
    pred_cols = [c for c in columns[1:] if c in tournament.prediction_columns]
    if len(pred_cols) == 1:
        preds = submission[pred_cols[0]]
        if pd.api.types.is_numeric_dtype(preds.dtype) and not pd.api.types.is_bool_dtype(
            preds.dtype
        ):
            failures.extend(_check_values(preds))
        else:
            failures.append(CheckFailure("dtype", f"prediction is {preds.dtype}, not numeric"))
    failures.extend(_check_numerai_tools_tickers(submission, universe, tournament))
    return ValidationResult(ok=not failures, failures=failures)


def validate_for_tournament(
    submission: pd.DataFrame, live: pd.DataFrame, tournament: Tournament
) -> ValidationResult:
    """Validate a submission by its tournament's rules (Classic: against the live frame's ids)."""
    if tournament.number == CLASSIC:
        return validate_submission(submission, live.index)
    return validate_ticker_submission(submission, live, tournament)
