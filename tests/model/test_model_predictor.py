"""Loading example-model and Model Uploads pickles, and what happens when they misbehave."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd
import pytest

from model import PredictorError, load_predictor, save_predict_fn, train_from_files


def _dump(obj: Any, path: Path) -> Path:
    path.write_bytes(cloudpickle.dumps(obj))
    return path


def test_example_pickle_predicts_in_a_fresh_process(data_dir: Path, tmp_path: Path) -> None:
    pkl = train_from_files(
        data_dir / "train.parquet",
        data_dir / "features.json",
        "small",
        tmp_path / "ex.pkl",
        max_iter=30,
    )
    out = tmp_path / "preds.parquet"
    # Block this package in the child: the pickle must stand alone, like a Model Upload.
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["model"] = None
        import cloudpickle, pandas as pd
        with open({str(pkl)!r}, "rb") as fh:
            predict = cloudpickle.load(fh)
        live = pd.read_parquet({str(data_dir / "live.parquet")!r})
        bench = pd.read_parquet({str(data_dir / "live_benchmark_models.parquet")!r})
        predict(live, bench).to_parquet({str(out)!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=60)
    preds = pd.read_parquet(out)
    assert list(preds.columns) == ["prediction"]
    assert len(preds) == 300
    assert preds["prediction"].between(0, 1).all()


def test_two_argument_model_upload(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    def predict(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> pd.DataFrame:
        score = live_benchmark_models["v52_lgbm_ender20"].rank(pct=True)
        return score.to_frame("prediction")

    bench = pd.DataFrame({"v52_lgbm_ender20": range(len(live_frame))}, index=live_frame.index)
    predictor = load_predictor(_dump(predict, tmp_path / "two.pkl"))
    assert predictor.n_args == 2
    sub = predictor(live_frame, bench)
    assert list(sub.columns) == ["id", "prediction"]
    assert sub["prediction"].is_monotonic_increasing


def test_one_argument_model_upload_returning_series(
    tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    def predict(live_features: pd.DataFrame) -> pd.Series:
        return live_features["feature_00"].rank(pct=True)

    predictor = load_predictor(_dump(predict, tmp_path / "one.pkl"))
    assert predictor.n_args == 1
    sub = predictor(live_frame)
    assert list(sub.columns) == ["id", "prediction"]
    assert sub["id"].tolist() == live_frame.index.tolist()


def test_output_with_id_column_and_other_name(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    def predict(live_features: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"id": live_features.index, "score": 0.5})

    sub = load_predictor(_dump(predict, tmp_path / "id.pkl"))(live_frame)
    assert list(sub.columns) == ["id", "prediction"]
    assert sub["id"].tolist() == live_frame.index.tolist()


def test_predictor_cannot_change_callers_frames(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    def predict(live_features: pd.DataFrame, benchmarks: pd.DataFrame) -> pd.Series:
        live_features["feature_00"] = 99
        live_features.iloc[0, list(live_features.columns).index("feature_01")] = 99
        live_features.loc[:, "feature_02"] += 10
        live_features.pop("era")
        benchmarks.iloc[:, 0] = -1.0
        return live_features["feature_01"].rank(pct=True)

    frame = live_frame.copy()
    benchmarks = pd.DataFrame({"v5_lgbm": 0.5}, index=frame.index)
    before, benchmarks_before = frame.copy(), benchmarks.copy()
    load_predictor(_dump(predict, tmp_path / "mut.pkl"))(frame, benchmarks)
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_frame_equal(benchmarks, benchmarks_before)


def test_raising_predictor_wraps_the_cause(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    def predict(live_features: pd.DataFrame) -> pd.DataFrame:
        raise KeyError("feature_missing")

    path = _dump(predict, tmp_path / "boom.pkl")
    with pytest.raises(PredictorError, match=r"boom\.pkl raised: KeyError") as info:
        load_predictor(path)(live_frame)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize(
    ("garbage", "named"),
    [
        ([0.5, 0.5], "list"),
        (None, "NoneType"),
        (pd.DataFrame({"a": [0.1], "b": [0.2]}), r"columns \['a', 'b'\]"),
    ],
)
def test_garbage_output_is_named(
    tmp_path: Path, live_frame: pd.DataFrame, garbage: object, named: str
) -> None:
    def predict(live_features: pd.DataFrame) -> object:
        return garbage

    with pytest.raises(PredictorError, match=named):
        load_predictor(_dump(predict, tmp_path / "junk.pkl"))(live_frame)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match="does not exist"):
        load_predictor(tmp_path / "absent.pkl")


def test_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "text.pkl"
    path.write_text("def predict(x): return x\n")
    with pytest.raises(PredictorError, match="not a pickle"):
        load_predictor(path)


def test_not_callable(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match="not a callable"):
        load_predictor(_dump({"weights": [1, 2]}, tmp_path / "dict.pkl"))


def test_save_predict_fn_replaces_atomically(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    target = tmp_path / "p.pkl"
    target.write_bytes(b"old")

    def predict(live_features: pd.DataFrame) -> pd.Series:
        return live_features["feature_02"].rank(pct=True)

    assert save_predict_fn(predict, target) == target
    assert load_predictor(target)(live_frame)["prediction"].between(0, 1).all()


def test_example_model_predicts_in_row_batches_with_the_same_result(
    train_frame: pd.DataFrame, live_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model import predictor
    from model.example import train_example_model

    features = [c for c in live_frame.columns if c.startswith("feature_")]
    model = train_example_model(train_frame, features, max_iter=20)
    whole = predictor.make_predict_fn(model)(live_frame)
    monkeypatch.setattr(predictor, "PREDICT_BATCH_ROWS", 7)  # 300 rows: 43 batches
    batched = predictor.make_predict_fn(model)(live_frame)
    pd.testing.assert_frame_equal(batched, whole)
    assert batched.index.name == "id" and list(batched.columns) == ["prediction"]
    assert predictor.make_predict_fn(model)(live_frame.iloc[:0]).empty


def test_a_model_upload_is_called_once_per_era_as_numerais_runner_does(
    tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    frame = live_frame.copy()
    half = len(frame) // 2
    frame["era"] = ["0001"] * half + ["0002"] * (len(frame) - half)
    benchmarks = pd.DataFrame({"v5_lgbm": range(len(frame))}, index=frame.index, dtype=float)
    log = tmp_path / "calls.txt"

    def per_era(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
        assert live_benchmark_models.index.equals(live_features.index)
        with log.open("a") as calls:  # the pickle holds a copy of the test's objects, not them
            calls.write(
                f"{','.join(sorted(set(live_features['era'])))} {len(live_benchmark_models)}\n"
            )
        ranked = live_features.iloc[:, -1].rank(pct=True, method="first")
        return ranked.to_frame("prediction")

    path = tmp_path / "per_era.pkl"
    path.write_bytes(cloudpickle.dumps(per_era))
    out = load_predictor(path)(frame, benchmarks)
    assert log.read_text().splitlines() == [f"0001 {half}", f"0002 {len(frame) - half}"]
    assert list(out["id"]) == list(frame.index)  # every live id once, in the live order
