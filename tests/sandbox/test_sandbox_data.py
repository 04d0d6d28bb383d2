"""Generated data: shapes, types, determinism; and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sandbox import SIZES, DataSize, Sandbox
from sandbox.data import DataStore


def test_shapes_and_types(tmp_path: Path) -> None:
    size = SIZES["tiny"]
    store = DataStore(tmp_path, 0, size)
    started = time.monotonic()
    features = json.loads(store.path("v5.3", "features.json", 1000).read_text())
    live = pd.read_parquet(store.path("v5.3", "live.parquet", 1000))
    train = pd.read_parquet(store.path("v5.3", "train.parquet", 1000))
    preds = pd.read_parquet(store.path("v5.3", "live_example_preds.parquet", 1000))
    bench = pd.read_parquet(store.path("v5.3", "live_benchmark_models.parquet", 1000))
    assert time.monotonic() - started < 1.0

    sets = features["feature_sets"]
    assert len(sets["small"]) == size.small and len(sets["medium"]) == size.medium
    assert len(sets["all"]) == size.n_features and len(sets["quantum"]) == size.quantum
    assert all(f.startswith("feature_") and f.count("_") == 3 for f in sets["all"])
    assert live.index.name == "id" and live.index.is_unique
    assert live.index.str.fullmatch(r"n[0-9a-f]{15}").all()
    assert list(live.columns[:2]) == ["era", "data_type"]
    assert (live["era"] == "X").all() and (live["data_type"] == "live").all()
    assert len(live) == size.live_rows
    feats = live[sets["all"] + sets["quantum"]]
    assert (feats.dtypes == np.int8).all() and feats.min().min() == 0 and feats.max().max() == 4
    assert live[features["targets"]].isna().all().all()
    assert preds.index.equals(live.index) and preds["prediction"].between(0, 1).all()
    assert bench.index.equals(live.index) and bench.to_numpy().max() <= 1
    assert train["era"].nunique() == size.train_eras and train["era"].iloc[0] == "0001"
    assert set(train["target"].unique()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    signal = train[sets["small"]].corrwith(train["target"]).abs().max()
    assert signal > 0.1  # learnable from the small set

    v52 = json.loads(store.path("v5.2", "features.json", 1000).read_text())
    assert "quantum" not in v52["feature_sets"]


def test_deterministic_by_seed_and_round(tmp_path: Path) -> None:
    a = DataStore(tmp_path / "a", 7, SIZES["tiny"])
    b = DataStore(tmp_path / "b", 7, SIZES["tiny"])
    c = DataStore(tmp_path / "c", 8, SIZES["tiny"])
    live_a = pd.read_parquet(a.path("v5.3", "live.parquet", 1000))
    pd.testing.assert_frame_equal(live_a, pd.read_parquet(b.path("v5.3", "live.parquet", 1000)))
    other_round = pd.read_parquet(a.path("v5.3", "live.parquet", 1001))
    assert not live_a.index.equals(other_round.index)
    assert (
        a.path("v5.3", "features.json", 0).read_text()
        != c.path("v5.3", "features.json", 0).read_text()
    )


def test_custom_size(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path, size=DataSize(20, 8, 2, 4, 3, 5))
    live = pd.read_parquet(sb.store.path("v5.3", "live.parquet", 1000))
    assert live.shape == (20, 2 + 8 + 4)


def test_cli_banner_and_credentials(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "sandbox", "--port", "0", "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*cmd, "--models", "m1,m2"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(7)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    banner = "".join(lines)
    creds = json.loads((tmp_path / "credentials.json").read_text())
    assert os.stat(tmp_path / "credentials.json").st_mode & 0o777 == 0o600
    assert creds["public_id"] in banner and creds["secret_key"] not in banner
    assert "model m1:" in banner and "model m2:" in banner and "http://127.0.0.1:" in banner
    assert proc.returncode == 0
