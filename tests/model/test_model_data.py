"""Reading and checking live data and feature sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model import (
    LiveDataError,
    check_live,
    check_live_file,
    data,
    feature_names,
    read_example_predictions,
    read_feature_sets,
    read_live,
)

FEATURES = [f"feature_{i:02d}" for i in range(20)]


def test_feature_sets(data_dir: Path) -> None:
    sets = read_feature_sets(data_dir / "features.json")
    assert set(sets) == {"small", "medium", "all"}
    assert feature_names(data_dir / "features.json", "small") == FEATURES[:5]


def test_unknown_feature_set_names_available(data_dir: Path) -> None:
    with pytest.raises(LiveDataError, match=r"'huge'.*all, medium, small"):
        feature_names(data_dir / "features.json", "huge")


def test_read_live_reads_only_asked_columns_as_int8(data_dir: Path) -> None:
    frame = read_live(data_dir / "live.parquet", FEATURES[:3])
    assert list(frame.columns) == ["era", "data_type", *FEATURES[:3]]
    assert frame.index.name == "id"
    assert len(frame) == 300
    assert all(frame[f].dtype == np.int8 for f in FEATURES[:3])


def test_read_live_defaults_to_the_whole_file_as_numerais_runner(data_dir: Path) -> None:
    frame = read_live(data_dir / "live.parquet")
    names = [c for c in pq.read_schema(data_dir / "live.parquet").names if c != "id"]
    assert list(frame.columns) == names  # era, data_type, features, targets, in file order
    assert {"era", "data_type", *FEATURES} <= set(frame.columns)
    assert all(frame[f].dtype == "int8" for f in FEATURES)
    check_live(frame, FEATURES)


def test_read_live_missing_feature(data_dir: Path) -> None:
    with pytest.raises(LiveDataError, match="feature_zz"):
        read_live(data_dir / "live.parquet", ["feature_zz"])


def test_read_live_id_stored_as_column(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    live_frame.reset_index().to_parquet(tmp_path / "live.parquet", index=False)
    frame = read_live(tmp_path / "live.parquet", FEATURES[:2])
    assert frame.index.name == "id"
    assert frame.index.equals(live_frame.index)


@pytest.mark.parametrize("chunk", [3, 128])  # several chunks of columns, and one
def test_read_live_matches_pandas_in_one_int8_block(
    data_dir: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK_COLUMNS", chunk)
    path = data_dir / "live.parquet"
    frame = read_live(path, FEATURES)
    expected = pd.read_parquet(path, columns=["era", "data_type", *FEATURES])
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    int8_blocks = [b for b in frame._mgr.blocks if b.dtype == np.int8]
    assert len(int8_blocks) == 1 and int8_blocks[0].shape[0] == len(FEATURES)


def test_read_live_narrows_wide_integers_and_keeps_missing_values(
    tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    wide = live_frame[["era", "data_type", *FEATURES[:3]]].astype({FEATURES[0]: "int64"})
    wide.to_parquet(tmp_path / "wide.parquet")
    frame = read_live(tmp_path / "wide.parquet", FEATURES[:3])
    assert all(frame[f].dtype == np.int8 for f in FEATURES[:3])
    assert frame[FEATURES[0]].tolist() == wide[FEATURES[0]].tolist()

    gaps = wide.astype({FEATURES[1]: "Int64"})  # integers with a missing value
    gaps.loc[gaps.index[0], FEATURES[1]] = pd.NA
    gaps.to_parquet(tmp_path / "gaps.parquet")
    frame = read_live(tmp_path / "gaps.parquet", FEATURES[:3])
    assert frame[FEATURES[1]].isna().sum() == 1  # float column: check_live names it


def test_read_live_refuses_integers_beyond_int8(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    wide = live_frame[["era", "data_type", FEATURES[0]]].astype({FEATURES[0]: "int64"})
    wide.iloc[0, 2] = 1000
    wide.to_parquet(tmp_path / "big.parquet")
    with pytest.raises(pa.ArrowInvalid):
        read_live(tmp_path / "big.parquet", FEATURES[:1])


def test_read_example_predictions(data_dir: Path, live_ids: pd.Index) -> None:
    example = read_example_predictions(data_dir / "live_example_preds.parquet")
    assert example.name == "prediction"
    assert example.index.equals(live_ids)


def _live(live_frame: pd.DataFrame) -> pd.DataFrame:
    return live_frame[["era", "data_type", *FEATURES]].copy()


def test_check_live_empty(live_frame: pd.DataFrame) -> None:
    with pytest.raises(LiveDataError, match="empty"):
        check_live(_live(live_frame).iloc[:0], FEATURES)


def test_check_live_index_name(live_frame: pd.DataFrame) -> None:
    with pytest.raises(LiveDataError, match="named 'id'"):
        check_live(_live(live_frame).reset_index(drop=True), FEATURES)


def test_check_live_missing_ids(live_frame: pd.DataFrame) -> None:
    frame = _live(live_frame)
    ids = frame.index.to_list()
    ids[5] = None
    frame.index = pd.Index(ids, name="id")
    with pytest.raises(LiveDataError, match="1 missing id"):
        check_live(frame, FEATURES)


def test_check_live_duplicate_ids(live_frame: pd.DataFrame) -> None:
    frame = _live(live_frame)
    ids = frame.index.to_list()
    ids[1] = ids[0]
    frame.index = pd.Index(ids, name="id")
    with pytest.raises(LiveDataError, match="duplicate id"):
        check_live(frame, FEATURES)


def test_check_live_missing_features(live_frame: pd.DataFrame) -> None:
    frame = _live(live_frame).drop(columns=FEATURES[:7])
    with pytest.raises(LiveDataError, match=r"lacks 7 feature.*feature_00.*\+2 more"):
        check_live(frame, FEATURES)


def test_check_live_values_out_of_range(live_frame: pd.DataFrame) -> None:
    frame = _live(live_frame)
    frame.loc[frame.index[0], "feature_03"] = 9
    with pytest.raises(LiveDataError, match=r"outside 0-4.*feature_03"):
        check_live(frame, FEATURES)


def test_check_live_float_features(live_frame: pd.DataFrame) -> None:
    frame = _live(live_frame)
    frame["feature_04"] = frame["feature_04"].astype(float)
    with pytest.raises(LiveDataError, match=r"not integer.*feature_04"):
        check_live(frame, FEATURES)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path)
    return path


def test_check_live_file_returns_the_ids_of_a_good_file(
    data_dir: Path, live_ids: pd.Index, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK_COLUMNS", 3)  # several chunks on 20 features
    ids = check_live_file(data_dir / "live.parquet", FEATURES)
    assert ids.name == "id"
    assert ids.equals(live_ids)


def test_check_live_file_empty(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    path = _write(_live(live_frame).iloc[:0], tmp_path / "live.parquet")
    with pytest.raises(LiveDataError, match="empty"):
        check_live_file(path, FEATURES)


def test_check_live_file_without_ids(tmp_path: Path, live_frame: pd.DataFrame) -> None:
    path = _write(_live(live_frame).reset_index(drop=True), tmp_path / "live.parquet")
    with pytest.raises(LiveDataError, match="no 'id'"):
        check_live_file(path, FEATURES)


def test_check_live_file_duplicate_and_missing_ids(
    tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    frame = _live(live_frame)
    ids = frame.index.to_list()
    ids[1] = ids[0]
    frame.index = pd.Index(ids, name="id")
    with pytest.raises(LiveDataError, match="duplicate id"):
        check_live_file(_write(frame, tmp_path / "dup.parquet"), FEATURES)
    ids[1], ids[5] = "n1", None
    frame.index = pd.Index(ids, name="id")
    with pytest.raises(LiveDataError, match="1 missing id"):
        check_live_file(_write(frame, tmp_path / "none.parquet"), FEATURES)


def test_check_live_file_missing_and_float_features(
    tmp_path: Path, live_frame: pd.DataFrame
) -> None:
    path = _write(_live(live_frame).drop(columns=FEATURES[:7]), tmp_path / "few.parquet")
    with pytest.raises(LiveDataError, match=r"lacks 7 feature.*feature_00.*\+2 more"):
        check_live_file(path, FEATURES)
    frame = _live(live_frame)
    frame["feature_04"] = frame["feature_04"].astype(float)
    with pytest.raises(LiveDataError, match=r"not integer.*feature_04"):
        check_live_file(_write(frame, tmp_path / "float.parquet"), FEATURES)


def test_check_live_file_out_of_range_and_null_values(
    tmp_path: Path, live_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "CHUNK_COLUMNS", 4)
    frame = _live(live_frame)
    frame.loc[frame.index[0], "feature_13"] = 9
    with pytest.raises(LiveDataError, match=r"outside 0-4 \(seen 0\.\.9\).*feature_13"):
        check_live_file(_write(frame, tmp_path / "range.parquet"), FEATURES)
    frame = _live(live_frame)
    frame["feature_17"] = frame["feature_17"].astype("Int8")
    frame.loc[frame.index[3], "feature_17"] = pd.NA
    with pytest.raises(LiveDataError, match=r"missing values.*feature_17"):
        check_live_file(_write(frame, tmp_path / "null.parquet"), FEATURES)


def test_check_live_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "live.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(LiveDataError, match="cannot read live data"):
        check_live_file(path, FEATURES)
