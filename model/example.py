"""The example model: scikit-learn's counterpart of Numerai's LightGBM example."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from sklearn.ensemble import HistGradientBoostingRegressor

from model.data import feature_names, read_parquet_columns
from model.errors import LiveDataError
from model.predictor import make_predict_fn, save_predict_fn
from model.progress import Progress

# Numerai's example: 2,000 trees at 0.01, depth 5, 31 leaves, 10% of columns per tree.
# Fewer, larger steps keep training time modest with a similar total shrinkage.
MAX_DEPTH = 5
MAX_LEAF_NODES = 31
LEARNING_RATE = 0.05
MAX_FEATURES = 0.1
WATCH_SECONDS = 1.0  # how often training progress is read while the trees grow


@dataclass
class ExampleModel:
    """A trained example model: the estimator and the feature columns it uses."""

    estimator: HistGradientBoostingRegressor
    features: list[str]
    feature_set: str | None = None

    def predict(self, live_features: pd.DataFrame) -> pd.Series:
        """Predict on a live frame (any wider set of columns), ranked into [0, 1]."""
        missing = [f for f in self.features if f not in live_features.columns]
        if missing:
            raise LiveDataError(
                f"live features lack {len(missing)} column(s) the model needs: {missing[:5]}"
            )
        frame = make_predict_fn(self)(live_features)
        return frame["prediction"]


def select_eras(eras: pd.Series | pd.Index, every_nth_era: int) -> list[Any]:
    """Return every nth era (sorted), starting from the first."""
    if every_nth_era < 1:
        raise ValueError(f"every_nth_era must be >= 1, got {every_nth_era}")
    return sorted(pd.unique(pd.Series(eras).dropna()))[::every_nth_era]


def train_example_model(
    train: pd.DataFrame,
    features: list[str],
    *,
    target: str = "target",
    every_nth_era: int = 4,
    max_iter: int = 300,
    learning_rate: float = LEARNING_RATE,
    seed: int = 0,
    feature_set: str | None = None,
    progress: Progress | None = None,
) -> ExampleModel:
    """Train the example model on every nth era of `train` using only `features`.

    `progress`, if given, is called with (trees grown, max_iter) as training advances.
    """
    needed = ["era", target, *features]
    missing = [c for c in needed if c not in train.columns]
    if missing:
        raise ValueError(f"training data lacks {len(missing)} column(s): {missing[:5]}")
    rows = train[train["era"].isin(select_eras(train["era"], every_nth_era))]
    rows = rows[rows[target].notna()]
    if len(rows) == 0:
        raise ValueError(f"no training rows with a {target!r} value in the selected eras")
    estimator = HistGradientBoostingRegressor(
        max_depth=MAX_DEPTH,
        max_leaf_nodes=MAX_LEAF_NODES,
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_features=MAX_FEATURES,
        early_stopping=False,
        random_state=seed,
    )
    if progress is None:
        estimator.fit(rows[features], rows[target])
    else:
        _fit_watched(estimator, rows[features], rows[target], progress)
    return ExampleModel(estimator=estimator, features=list(features), feature_set=feature_set)


def _fit_watched(
    estimator: HistGradientBoostingRegressor,
    x: pd.DataFrame,
    y: pd.Series,
    progress: Progress,
    every: float = WATCH_SECONDS,
) -> None:
    """Fit, reporting the trees grown so far every `every` seconds and once at the end.

    scikit-learn offers no callback: a thread counts the estimator's list of grown trees while
    fit runs (the model is exactly a plain fit's). Without that list, only the end is reported.
    """
    total = estimator.max_iter
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            progress(min(len(getattr(estimator, "_predictors", ())), total), total)

    progress(0, total)
    watcher = threading.Thread(target=watch, name="training-progress", daemon=True)
    watcher.start()
    try:
        estimator.fit(x, y)
    finally:
        done.set()
        watcher.join()
    progress(estimator.n_iter_, total)


def train_from_files(
    train_path: str | Path,
    features_json_path: str | Path,
    feature_set: str,
    out_path: str | Path,
    **kw: Any,
) -> Path:
    """Train on train.parquet (needed columns only, int8) and write a cloudpickled predict fn."""
    features = feature_names(features_json_path, feature_set)
    target = kw.pop("target", "target")
    every_nth_era = kw.pop("every_nth_era", 4)
    # Read the era column first, then only the rows of the chosen eras: memory stays small.
    eras = pq.read_table(train_path, columns=["era"]).column("era").to_pandas()
    chosen = select_eras(eras, every_nth_era)
    train = read_parquet_columns(
        train_path, ["era", target, *features], filters=[("era", "in", chosen)]
    )
    model = train_example_model(
        train, features, target=target, every_nth_era=1, feature_set=feature_set, **kw
    )
    return save_predict_fn(make_predict_fn(model), out_path)
