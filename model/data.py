"""Reading and checking Numerai live data and feature sets, keeping features as int8."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from model.errors import LiveDataError

FEATURE_PREFIX = "feature_"
ID_COLUMN = "id"
META_COLUMNS = ("era", "data_type")
FEATURE_MIN = 0
FEATURE_MAX = 4


def _few(names: list[str], limit: int = 5) -> str:
    """Name up to `limit` items and say how many more there are."""
    shown = ", ".join(str(n) for n in names[:limit])
    more = len(names) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


def read_feature_sets(path: str | Path) -> dict[str, list[str]]:
    """Read the feature sets (name -> feature columns) from a features.json file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LiveDataError(f"cannot read feature sets from {path}: {exc}") from exc
    sets = doc.get("feature_sets") if isinstance(doc, dict) else None
    if not isinstance(sets, dict) or not sets:
        raise LiveDataError(f"{path} has no 'feature_sets' mapping")
    return {str(name): [str(f) for f in cols] for name, cols in sets.items()}


def feature_names(path: str | Path, feature_set: str) -> list[str]:
    """Return the feature columns of one named feature set in features.json."""
    sets = read_feature_sets(path)
    if feature_set not in sets:
        raise LiveDataError(
            f"unknown feature set {feature_set!r} in {path}; available: {', '.join(sorted(sets))}"
        )
    return sets[feature_set]


def _pandas_index_columns(schema: pa.Schema) -> list[str]:
    """Return the index columns recorded in a parquet file's pandas metadata."""
    meta = schema.pandas_metadata or {}
    return [c for c in meta.get("index_columns", []) if isinstance(c, str)]


CHUNK_COLUMNS = 128  # feature columns decoded at once when live data is read or checked


def _int_features(schema: pa.Schema, columns: list[str]) -> list[str]:
    return [
        c
        for c in columns
        if c.startswith(FEATURE_PREFIX) and pa.types.is_integer(schema.field(c).type)
    ]


def _columns(parquet: pq.ParquetFile, names: list[str]) -> Iterator[tuple[str, pa.ChunkedArray]]:
    """Each named column of the file, decoded CHUNK_COLUMNS columns at a time, so that the
    columns are never all decoded at once."""
    for start in range(0, len(names), CHUNK_COLUMNS):
        chunk = names[start : start + CHUNK_COLUMNS]
        yield from zip(chunk, parquet.read(columns=chunk).columns, strict=True)


def _feature_block(parquet: pq.ParquetFile, features: list[str]) -> np.ndarray | None:
    """The integer feature columns as one int8 array (columns x rows), filled a few columns at a
    time beside it. None when a column has missing values (pandas then holds it as float)."""
    block = np.empty((len(features), parquet.metadata.num_rows), dtype=np.int8)
    for row, (_, column) in enumerate(_columns(parquet, features)):
        if column.null_count:
            return None
        if column.type != pa.int8():
            column = pc.cast(column, pa.int8())  # safe: a value outside int8 raises
        block[row] = column.to_numpy()
    return block


def read_parquet_columns(
    path: str | Path, columns: list[str], *, filters: list[tuple[str, str, object]] | None = None
) -> pd.DataFrame:
    """Read only `columns` of a parquet file (plus its id index when stored), features as int8."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise LiveDataError(f"cannot read parquet file {path}: {exc}") from exc
    names = set(schema.names)
    missing = [c for c in columns if c not in names]
    if missing:
        raise LiveDataError(f"{path} lacks {len(missing)} column(s): {_few(missing)}")
    index_cols = _pandas_index_columns(schema)
    id_as_column = ID_COLUMN in names and ID_COLUMN not in index_cols
    # Without a row filter, integer features go straight into one int8 block, a chunk of
    # columns at a time.
    features = _int_features(schema, columns) if filters is None else []
    block = _feature_block(parquet, features) if features else None
    if block is None:
        features = []
    in_block = set(features)
    want = [c for c in columns if c not in in_block]
    if id_as_column:
        want.append(ID_COLUMN)
    table = pq.read_table(path, columns=want, filters=filters, use_pandas_metadata=True)
    # Integer features stored wider than int8 are narrowed here, before pandas sees them.
    for i, field in enumerate(table.schema):
        if (
            field.name.startswith(FEATURE_PREFIX)
            and pa.types.is_integer(field.type)
            and field.type != pa.int8()
        ):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int8()))
    frame = table.to_pandas()
    if id_as_column:
        frame = frame.set_index(ID_COLUMN)
    if block is not None:
        # block.T is a view the frame takes as its int8 block, without a copy.
        wide = pd.DataFrame(block.T, index=frame.index, columns=features, copy=False)
        for position, name in enumerate(frame.columns):
            wide.insert(position, name, frame[name])
        frame = wide if list(wide.columns) == columns else wide[columns]
    return frame


def read_live(path: str | Path, features: list[str] | None = None) -> pd.DataFrame:
    """Read era, data_type and the given feature columns of live.parquet.

    With no feature list, every column, in the file's order (targets too), as Numerai's runner
    hands a Model Upload the whole file; features are int8 either way.
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise LiveDataError(f"cannot read live data {path}: {exc}") from exc
    if features is None:
        index_cols = set(_pandas_index_columns(schema)) | {ID_COLUMN}
        columns = [n for n in schema.names if n not in index_cols]
    else:
        columns = [*(c for c in META_COLUMNS if c in schema.names), *features]
    frame = read_parquet_columns(path, columns)
    if frame.index.name is None and len(frame.index.names) == 1:
        frame.index.name = ID_COLUMN
    return frame


def check_live(frame: pd.DataFrame, features: list[str]) -> None:
    """Raise LiveDataError naming the first problem that makes live data unusable."""
    if len(frame) == 0:
        raise LiveDataError("live data is empty")
    if frame.index.name != ID_COLUMN:
        raise LiveDataError(f"live data index must be named 'id', got {frame.index.name!r}")
    _check_ids(frame.index.to_series())
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise LiveDataError(f"live data lacks {len(missing)} feature column(s): {_few(missing)}")
    block = frame[features]
    non_int = [c for c in features if not pd.api.types.is_integer_dtype(block[c].dtype)]
    if non_int:
        kinds = sorted({str(block[c].dtype) for c in non_int})
        raise LiveDataError(
            f"{len(non_int)} feature column(s) are not integer ({', '.join(kinds)}): "
            f"{_few(non_int)}"
        )
    nulls = block.isna().any()
    if nulls.any():
        cols = nulls[nulls].index.tolist()
        raise LiveDataError(f"{len(cols)} feature column(s) have missing values: {_few(cols)}")
    lo, hi = block.min(), block.max()
    bad = lo[(lo < FEATURE_MIN) | (hi > FEATURE_MAX)].index.tolist()
    if bad:
        raise LiveDataError(
            f"{len(bad)} feature column(s) have values outside {FEATURE_MIN}-{FEATURE_MAX} "
            f"(seen {int(lo.min())}..{int(hi.max())}): {_few(bad)}"
        )


def _check_ids(ids: pd.Series) -> None:
    """Raise LiveDataError on missing, blank or duplicate ids."""
    blank = ids.isna() | (ids.astype(str).str.strip() == "")
    if blank.any():
        raise LiveDataError(f"live data has {int(blank.sum())} missing id(s)")
    dup = ids[ids.duplicated().to_numpy()].unique().tolist()
    if dup:
        raise LiveDataError(f"live data has {len(dup)} duplicate id(s): {_few(dup)}")


def check_live_file(path: str | Path, features: list[str]) -> pd.Index:
    """Check live.parquet as check_live does, without holding its features in memory; its ids.

    Every feature column is decoded (a corrupt page fails here, not in a model), but only
    CHUNK_COLUMNS columns at a time and never as a pandas frame, so the check's peak
    memory does not grow with the number of features.
    """
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowException) as exc:
        raise LiveDataError(f"cannot read live data {path}: {exc}") from exc
    if parquet.metadata.num_rows == 0:
        raise LiveDataError("live data is empty")
    names = set(schema.names)  # a new list on every access: look up in one set
    if ID_COLUMN not in names:
        raise LiveDataError(f"live data has no {ID_COLUMN!r} index or column")
    missing = [f for f in features if f not in names]
    if missing:
        raise LiveDataError(f"live data lacks {len(missing)} feature column(s): {_few(missing)}")
    non_int = [f for f in features if not pa.types.is_integer(schema.field(f).type)]
    if non_int:
        kinds = sorted({str(schema.field(f).type) for f in non_int})
        raise LiveDataError(
            f"{len(non_int)} feature column(s) are not integer ({', '.join(kinds)}): "
            f"{_few(non_int)}"
        )
    try:
        ids = parquet.read(columns=[ID_COLUMN]).column(ID_COLUMN).to_pandas()
        _check_ids(ids)
        nulls: list[str] = []
        bad: list[str] = []
        lo, hi = FEATURE_MIN, FEATURE_MAX
        for name, column in _columns(parquet, features):
            if column.null_count:
                nulls.append(name)
                continue
            extremes = pc.min_max(column)
            low, high = extremes["min"].as_py(), extremes["max"].as_py()
            if low < FEATURE_MIN or high > FEATURE_MAX:
                bad.append(name)
                lo, hi = min(lo, low), max(hi, high)
    except pa.ArrowException as exc:
        raise LiveDataError(f"cannot decode live data {path}: {exc}") from exc
    if nulls:
        raise LiveDataError(f"{len(nulls)} feature column(s) have missing values: {_few(nulls)}")
    if bad:
        raise LiveDataError(
            f"{len(bad)} feature column(s) have values outside {FEATURE_MIN}-{FEATURE_MAX} "
            f"(seen {lo}..{hi}): {_few(bad)}"
        )
    return pd.Index(ids, name=ID_COLUMN)


def read_example_predictions(path: str | Path) -> pd.Series:
    """Read live_example_preds.parquet as a Series named prediction, indexed by id."""
    frame = read_parquet_columns(path, ["prediction"])
    series = frame["prediction"].rename("prediction")
    series.index.name = ID_COLUMN
    return series
