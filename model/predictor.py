"""Loading and running predictors: the example model or a Numerai Model Uploads pickle."""

from __future__ import annotations

import inspect
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pandas as pd

from model.errors import PredictorError
from model.tournaments import CLASSIC, Tournament

if TYPE_CHECKING:
    from model.example import ExampleModel

PredictFn = Callable[..., Any]


ERA_COLUMN = "era"
PREDICT_BATCH_ROWS = 1024  # live rows the example model predicts at once


def make_predict_fn(model: ExampleModel) -> Callable[..., pd.DataFrame]:
    """Return a Model-Uploads-style predict function for a trained example model."""
    estimator = model.estimator
    features = list(model.features)

    # Only sklearn, pandas and builtins are referenced, so the pickled function loads
    # without this package installed (e.g. as a Numerai Model Upload).
    def predict(
        live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        missing = [f for f in features if f not in live_features.columns]
        if missing:
            raise ValueError(
                f"live features lack {len(missing)} column(s) the model needs: {missing[:5]}"
            )
        # In row batches: scikit-learn converts its input to float64 (8x the int8 columns);
        # a batch at a time keeps that copy small whatever the number of live rows.
        batches = [
            pd.Series(estimator.predict(rows.loc[:, features]), index=rows.index)
            for rows in (
                live_features.iloc[start : start + PREDICT_BATCH_ROWS]
                for start in range(0, len(live_features), PREDICT_BATCH_ROWS)
            )
        ]
        raw = pd.concat(batches) if batches else pd.Series(dtype="float64")
        ranked = raw.rename("prediction").rank(pct=True)
        ranked.index.name = "id"
        return ranked.to_frame("prediction")

    return predict


def save_predict_fn(fn: PredictFn, path: str | Path) -> Path:
    """Cloudpickle a predict function to `path` atomically (temp file, then rename)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            cloudpickle.dump(fn, fh)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _arity(fn: PredictFn) -> int:
    """Return 2 if `fn` takes the benchmark models frame too, else 1."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 2  # uninspectable callables get Numerai's two-argument call
    positional = [
        p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values()) or len(positional) >= 2:
        return 2
    if len(positional) == 1:
        return 1
    raise PredictorError(f"predict function takes no positional argument: {sig}")


def _describe(value: object) -> str:
    """Describe a returned value briefly for an error message."""
    if isinstance(value, pd.DataFrame):
        return f"DataFrame with columns {list(value.columns)[:6]}"
    return type(value).__name__


def _normalize(output: object, source: str) -> pd.DataFrame:
    """Turn a predictor's output into a frame with exactly the columns id and prediction."""
    if isinstance(output, pd.Series):
        ids, values = output.index, output.to_numpy()
    elif isinstance(output, pd.DataFrame):
        frame = output
        if "id" in frame.columns:
            frame = frame.set_index("id")
        if "prediction" in frame.columns:
            column = frame["prediction"]
        elif frame.shape[1] == 1:
            column = frame.iloc[:, 0]
        else:
            raise PredictorError(
                f"predictor {source} returned {_describe(output)}; "
                "expected a 'prediction' column or a single column"
            )
        if isinstance(column, pd.DataFrame):
            raise PredictorError(f"predictor {source} returned duplicate prediction columns")
        ids, values = frame.index, column.to_numpy()
    else:
        raise PredictorError(
            f"predictor {source} returned {_describe(output)}; "
            "expected a DataFrame or Series of predictions indexed by id"
        )
    return pd.DataFrame({"id": ids.to_numpy(), "prediction": values})


def _normalize_tickers(output: object, source: str, tournament: Tournament) -> pd.DataFrame:
    """Turn a Signals/Crypto predictor's output into [ticker column, prediction column].

    The ticker column is the one the output names (as a column or its index name), else the
    tournament's default. A frame whose columns cannot be told apart is passed on unchanged so
    that validation names what is wrong with it.
    """
    if isinstance(output, pd.Series):
        name = output.index.name if output.index.name in tournament.id_columns else None
        id_column = name or tournament.default_id_column
        pred = str(output.name) if output.name in tournament.prediction_columns else "prediction"
        return pd.DataFrame({id_column: output.index.to_numpy(), pred: output.to_numpy()})
    if not isinstance(output, pd.DataFrame):
        raise PredictorError(
            f"predictor {source} returned {_describe(output)}; "
            "expected a DataFrame or Series of predictions indexed by ticker"
        )
    frame = output
    if frame.index.name is not None:
        frame = frame.reset_index()
    ids = [c for c in frame.columns if c in tournament.id_columns]
    preds = [c for c in frame.columns if c in tournament.prediction_columns]
    if len(ids) == 1 and len(preds) == 1:
        return frame[[ids[0], preds[0]]].reset_index(drop=True)
    if not ids and not preds and frame.shape[1] == 1:
        values = frame.iloc[:, 0]
        return pd.DataFrame(
            {tournament.default_id_column: frame.index.to_numpy(), "prediction": values}
        )
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class Predictor:
    """A loaded predict function, called like a Numerai Model Upload."""

    path: Path
    fn: PredictFn
    n_args: int

    def __call__(
        self,
        live_features: pd.DataFrame,
        live_benchmark_models: pd.DataFrame | None = None,
        *,
        tournament: Tournament | None = None,
    ) -> pd.DataFrame:
        """Predict on the live frame; return the submission frame (Classic: id, prediction).

        Signals and Crypto predictors get the live universe and the second frame (daily prices
        or the model's own data) and return tickers with their predictions.
        """
        if live_benchmark_models is None:
            live_benchmark_models = pd.DataFrame(index=live_features.index)
        if tournament is not None and tournament.number != CLASSIC:
            return _normalize_tickers(
                self._call(live_features, live_benchmark_models), str(self.path), tournament
            )
        # As Numerai's runner: once per era, each call given that era's rows.
        eras = live_features["era"] if ERA_COLUMN in live_features.columns else None
        if eras is None or eras.nunique(dropna=False) <= 1:
            return _normalize(self._call(live_features, live_benchmark_models), str(self.path))
        parts = [
            _normalize(self._call(rows, live_benchmark_models.loc[rows.index]), str(self.path))
            for _, rows in live_features.groupby(eras, sort=False, dropna=False)
        ]
        return pd.concat(parts, ignore_index=True)

    def _call(self, live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> object:
        # The user's function gets its own frames: with pandas' copy-on-write, whatever it
        # changes is copied first, so the live data other models share stays as read.
        args: tuple[pd.DataFrame, ...] = (live_features.copy(deep=False),)
        if self.n_args == 2:
            args = (*args, live_benchmark_models.copy(deep=False))
        try:
            return self.fn(*args)
        except Exception as exc:
            raise PredictorError(
                f"predictor {self.path} raised: {type(exc).__name__}: {exc}"
            ) from exc


def load_predictor(path: str | Path) -> Predictor:
    """Load a cloudpickled predict function (1 or 2 arguments) from `path`."""
    source = Path(path)
    if not source.is_file():
        raise PredictorError(f"predictor file {source} does not exist")
    try:
        with source.open("rb") as fh:
            fn = cloudpickle.load(fh)
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise PredictorError(f"{source} is not a pickle: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        # e.g. ModuleNotFoundError for a package the pickle needs but this image lacks.
        raise PredictorError(
            f"cannot load predictor {source}: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(fn):
        raise PredictorError(f"{source} holds a {type(fn).__name__}, not a callable")
    return Predictor(path=source, fn=fn, n_args=_arity(fn))
