"""A model folder as a user brings one: a LightGBM predict function pickled the way Numerai's
example scripts pickle theirs, and the requirements.txt that names lightgbm.

The function selects its columns with ``live_features.reindex(columns=feature_order)`` and
ranks per era when an era column is present: handed a column slice without some of its
features it would predict on NaN without a word, so tests compare its submission with its
predictions on the whole live frame.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd

REQUIREMENTS = "# What model.pkl needs to load and predict.\nlightgbm>=4.5\n"


def train_lightgbm_predict(train_parquet: Path) -> Any:
    """Fit a small LightGBM regressor on every feature column; return its predict function."""
    import lightgbm

    train = pd.read_parquet(train_parquet)
    feature_order = [c for c in train.columns if c.startswith("feature_")]
    model = lightgbm.LGBMRegressor(
        n_estimators=40,
        learning_rate=0.05,
        max_depth=5,
        num_leaves=15,
        colsample_bytree=0.5,
        deterministic=True,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(train[feature_order], train["target"])

    # As in Numerai's example scripts: a closure over the model, pickled by value.
    def predict(
        live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        features = live_features.reindex(columns=feature_order)
        raw = pd.Series(model.predict(features), index=live_features.index)
        if "era" in live_features.columns:
            ranked = raw.groupby(live_features["era"]).rank(pct=True)
        else:
            ranked = raw.rank(pct=True)
        return ranked.to_frame("prediction")

    return predict


def write_lightgbm_model(folder: Path, train_parquet: Path) -> Path:
    """Write FOLDER/model.pkl and FOLDER/requirements.txt; return the pickle's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    pickle = folder / "model.pkl"
    pickle.write_bytes(cloudpickle.dumps(train_lightgbm_predict(train_parquet)))
    return pickle


def uploaded_predictions(data: bytes) -> pd.Series:
    """The prediction column of an uploaded CSV, by id."""
    frame = pd.read_csv(io.BytesIO(data)).set_index("id")
    return frame["prediction"].sort_index()


def whole_frame_predictions(pickle: Path, live_parquet: Path) -> pd.Series:
    """What the pickle predicts on every column of live.parquet, as Numerai's runner calls it."""
    predict = pd.read_pickle(pickle)  # noqa: S301 - our own test pickle
    live = pd.read_parquet(live_parquet)
    return predict(live, None)["prediction"].sort_index()
