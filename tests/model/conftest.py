"""Tiny synthetic Numerai-shaped data: 300 live rows, 20 features, 20 eras x 50 train rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

N_FEATURES = 20
N_LIVE = 300
N_ERAS = 20
ROWS_PER_ERA = 50
FEATURES = [f"feature_{i:02d}" for i in range(N_FEATURES)]
TARGETS = ["target", "target_alpha_20"]


def _features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Random int8 features in 0-4."""
    values = rng.integers(0, 5, size=(n, N_FEATURES), dtype=np.int8)
    return pd.DataFrame(values, columns=FEATURES)


def signal(frame: pd.DataFrame) -> pd.Series:
    """The true signal hidden in the synthetic targets."""
    return frame["feature_00"].astype(float) - frame["feature_01"].astype(float)


def _make_train(rng: np.random.Generator) -> pd.DataFrame:
    """Training rows whose target follows the signal plus noise, binned to 0..1."""
    n = N_ERAS * ROWS_PER_ERA
    frame = _features(rng, n)
    raw = signal(frame) + rng.normal(0, 0.5, n)
    target = pd.qcut(raw, 5, labels=False).astype(float) / 4
    frame.insert(0, "era", np.repeat([f"{e:04d}" for e in range(1, N_ERAS + 1)], ROWS_PER_ERA))
    frame.insert(1, "data_type", "train")
    frame["target"] = target
    frame["target_alpha_20"] = target[::-1].to_numpy()
    frame.index = pd.Index([f"t{i:06d}" for i in range(n)], name="id")
    return frame


def _make_live(rng: np.random.Generator) -> pd.DataFrame:
    """Live rows: era X, data_type live, int8 features, NaN targets."""
    frame = _features(rng, N_LIVE)
    frame.insert(0, "era", "X")
    frame.insert(1, "data_type", "live")
    for t in TARGETS:
        frame[t] = np.nan
    frame.index = pd.Index([f"n{i:015x}" for i in range(N_LIVE)], name="id")
    return frame


@pytest.fixture(scope="session")
def features() -> list[str]:
    """All synthetic feature names."""
    return list(FEATURES)


@pytest.fixture(scope="session")
def train_frame() -> pd.DataFrame:
    """A synthetic training frame."""
    return _make_train(np.random.default_rng(1))


@pytest.fixture(scope="session")
def live_frame() -> pd.DataFrame:
    """A synthetic live frame."""
    return _make_live(np.random.default_rng(2))


@pytest.fixture(scope="session")
def live_ids(live_frame: pd.DataFrame) -> pd.Index:
    """The live ids."""
    return live_frame.index


@pytest.fixture
def good_submission(live_frame: pd.DataFrame) -> pd.DataFrame:
    """A valid submission: every live id once, distinct predictions in [0, 1]."""
    preds = np.linspace(0.01, 0.99, len(live_frame))
    return pd.DataFrame({"id": live_frame.index.to_numpy(), "prediction": preds})


@pytest.fixture(scope="session")
def data_dir(
    tmp_path_factory: pytest.TempPathFactory, train_frame: pd.DataFrame, live_frame: pd.DataFrame
) -> Path:
    """A directory laid out like a Numerai dataset version."""
    root = tmp_path_factory.mktemp("v5.2")
    doc = {
        "feature_sets": {"small": FEATURES[:5], "medium": FEATURES[:12], "all": FEATURES},
        "targets": TARGETS,
    }
    (root / "features.json").write_text(json.dumps(doc))
    train_frame.to_parquet(root / "train.parquet")
    live_frame.to_parquet(root / "live.parquet")
    rng = np.random.default_rng(3)
    example = pd.DataFrame({"prediction": rng.uniform(size=N_LIVE)}, index=live_frame.index)
    example.to_parquet(root / "live_example_preds.parquet")
    bench = pd.DataFrame(
        {
            "v52_lgbm_ender20": rng.uniform(size=N_LIVE),
            "v5_lgbm_cyrusd20": rng.uniform(size=N_LIVE),
        },
        index=live_frame.index,
    )
    bench.to_parquet(root / "live_benchmark_models.parquet")
    return root
