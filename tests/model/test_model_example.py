"""The example model trains on a real signal and ranks live predictions into [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model import ExampleModel, LiveDataError, load_predictor, train_example_model, train_from_files
from model.example import select_eras


def _signal(frame: pd.DataFrame) -> pd.Series:
    return frame["feature_00"].astype(float) - frame["feature_01"].astype(float)


@pytest.fixture(scope="module")
def trained(train_frame: pd.DataFrame, features: list[str]) -> ExampleModel:
    return train_example_model(train_frame, features[:8], max_iter=60, every_nth_era=2)


def test_every_nth_era() -> None:
    eras = pd.Series(["0003", "0001", "0002", "0004", "0005", "0001"])
    assert select_eras(eras, 4) == ["0001", "0005"]
    assert select_eras(eras, 1) == ["0001", "0002", "0003", "0004", "0005"]
    with pytest.raises(ValueError, match="every_nth_era"):
        select_eras(eras, 0)


def test_estimator_matches_numerai_example_shape(trained: ExampleModel) -> None:
    params = trained.estimator.get_params()
    assert params["max_depth"] == 5
    assert params["max_leaf_nodes"] == 31
    assert 0.01 <= params["learning_rate"] <= 0.05
    assert params["max_features"] == 0.1


def test_predictions_ranked_one_per_live_id_and_follow_signal(
    trained: ExampleModel, live_frame: pd.DataFrame
) -> None:
    preds = trained.predict(live_frame)  # the wider frame: era, data_type, targets, all features
    assert preds.name == "prediction"
    assert preds.index.equals(live_frame.index)
    assert preds.between(0, 1).all()
    assert preds.notna().all()
    corr = preds.corr(_signal(live_frame), method="pearson")
    assert corr > 0.5


def test_predict_names_missing_features(trained: ExampleModel, live_frame: pd.DataFrame) -> None:
    with pytest.raises(LiveDataError, match="feature_00"):
        trained.predict(live_frame.drop(columns=["feature_00"]))


def test_training_needs_target(train_frame: pd.DataFrame, features: list[str]) -> None:
    with pytest.raises(ValueError, match="target_nope"):
        train_example_model(train_frame, features, target="target_nope")


def test_train_from_files_writes_a_loadable_predictor(
    data_dir: Path, tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    out = train_from_files(
        data_dir / "train.parquet",
        data_dir / "features.json",
        "medium",
        tmp_path / "models" / "example.pkl",
        max_iter=40,
    )
    assert out == tmp_path / "models" / "example.pkl"
    assert [p.name for p in out.parent.iterdir()] == ["example.pkl"]  # no temp file left
    predictor = load_predictor(out)
    assert predictor.n_args == 2
    sub = predictor(live_frame)
    assert list(sub.columns) == ["id", "prediction"]
    assert sub["id"].tolist() == live_frame.index.tolist()
    assert sub["prediction"].between(0, 1).all()
    assert np.corrcoef(sub["prediction"], _signal(live_frame))[0, 1] > 0.3
