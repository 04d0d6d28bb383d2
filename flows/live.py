"""Live data: which version, downloaded once per round into a fresh folder, checked, then read."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import requests
from prefect import get_run_logger

from blocks import NumeraiCredentials, NumeraiUnavailable
from model.data import check_live_file, feature_names, read_example_predictions, read_live
from model.errors import LiveDataError
from model.readable import duration, plural, size
from model.tournaments import CLASSIC, Tournament, tournament, version_key

from .policies import fresh_task

LIVE_FILES = tournament(CLASSIC).live_files
_MANIFEST = "manifest.json"


class DownloadFailed(NumeraiUnavailable):
    """A live data file arrived cut short or unreadable; a fresh download may fix it."""


@dataclass(frozen=True)
class LiveData:
    """The checked files of one round's live data."""

    round_number: int
    data_version: str
    directory: Path
    tournament: int = CLASSIC

    def path(self, name: str) -> Path:
        """Path of one of the tournament's live files."""
        return self.directory / name

    @property
    def rules(self) -> Tournament:
        """The tournament this live data belongs to."""
        return tournament(self.tournament)


@fresh_task
def resolve_data_version(
    credentials: NumeraiCredentials, requested: str | None, tournament_number: int = CLASSIC
) -> str:
    """The data version to use: the requested one if listed, else the newest with live data."""
    rules = tournament(tournament_number)
    versions = rules.versions(credentials.get_client(tournament_number).list_datasets())
    if requested:
        if requested not in versions:
            raise ValueError(f"data version {requested} is not listed; listed: {sorted(versions)}")
        return requested
    if not versions:
        raise ValueError(f"no {rules.name} data version with {rules.live_file} is listed")
    return max(versions, key=version_key)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _complete(directory: Path) -> bool:
    manifest = directory / _MANIFEST
    if not manifest.exists():
        return False
    recorded = json.loads(manifest.read_text())
    return all(
        (directory / name).exists() and _sha256(directory / name) == digest
        for name, digest in recorded.items()
    )


def _check_downloaded(directory: Path, rules: Tournament) -> None:
    """Fail unless every file is readable and the live frame has unique ids and its features."""
    if rules.number != CLASSIC:
        universe = pd.read_parquet(directory / rules.live_file)
        offered = [c for c in rules.id_columns if c in universe.columns]
        if rules.default_id_column not in offered:
            raise ValueError(f"{rules.live_file} lacks the {rules.default_id_column} column")
        if universe[rules.default_id_column].isna().any() or len(universe) == 0:
            raise ValueError(f"{rules.live_file} has no tickers or missing ones")
        for name in (*rules.live_files, *rules.optional_files):
            if (directory / name).exists():
                pd.read_parquet(directory / name)
        return
    # Every feature is decoded and checked, a chunk of columns at a time: the whole frame
    # (all ~3,500 features) is never in memory; each model later reads only its own columns.
    features = feature_names(directory / "features.json", "all")
    ids = check_live_file(directory / "live.parquet", features)
    for name in ("live_example_preds.parquet", "live_benchmark_models.parquet"):
        frame = pd.read_parquet(directory / name)
        missing = ids.difference(frame.index)
        if len(missing):
            raise ValueError(f"{name} lacks {len(missing)} live ids")


def _publish(fresh: Path, target: Path) -> None:
    """Move a checked download into place; a concurrent run's complete copy is kept as is."""
    if _complete(target):
        return
    shutil.rmtree(target, ignore_errors=True)
    try:
        fresh.rename(target)
    except OSError:
        # Another run published between our check and rename; use theirs if it is whole.
        if not _complete(target):
            raise


def live_data_dir(data_dir: str, rules: Tournament, data_version: str, round_number: int) -> Path:
    """Where a round's live data is kept: Classic under its version, others under their name."""
    base = Path(data_dir) if rules.number == CLASSIC else Path(data_dir) / rules.name
    return base / data_version / f"round-{round_number}"


@fresh_task
def download_live_data(
    credentials: NumeraiCredentials,
    round_number: int,
    data_version: str,
    data_dir: str,
    tournament_number: int = CLASSIC,
) -> LiveData:
    """Download a round's live data once, into a fresh folder, and check it before use."""
    logger = get_run_logger()
    rules = tournament(tournament_number)
    target = live_data_dir(data_dir, rules, data_version, round_number)
    if _complete(target):
        logger.info("Live data for round %s (%s) already here", round_number, data_version)
        return LiveData(round_number, data_version, target, tournament_number)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A fresh folder each attempt: numerapi appends to leftover .temp files and skips files
    # whose size matches, so a half-written earlier attempt must never be reused.
    fresh = Path(tempfile.mkdtemp(prefix=f".round-{round_number}-", dir=target.parent))
    started = time.monotonic()
    try:
        client = credentials.get_client(tournament_number)
        names = list(rules.live_files)
        if rules.optional_files:
            listed = set(client.list_datasets())
            names += [n for n in rules.optional_files if rules.dataset(data_version, n) in listed]
        for name in names:
            dataset = rules.dataset(data_version, name)
            try:
                client.download_dataset(dataset, str(fresh / name), round_number)
            except requests.RequestException as exc:
                raise DownloadFailed(f"download of {dataset} failed: {exc}") from exc
        try:
            _check_downloaded(fresh, rules)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DownloadFailed(f"live data of round {round_number} is unusable: {exc}") from exc
        manifest = {name: _sha256(fresh / name) for name in names}
        (fresh / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        downloaded = sum((fresh / name).stat().st_size for name in names)
        _publish(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    logger.info(
        "Downloaded and checked %s live data for round %s (%s): %s, %s in %s",
        *(rules.name, round_number, data_version, plural(len(names), "file")),
        *(size(downloaded), duration(time.monotonic() - started)),
    )
    return LiveData(round_number, data_version, target, tournament_number)


ALL_COLUMNS = None  # a model with no declared feature set: every column, as Numerai's runner


@dataclass(frozen=True)
class LiveFrames:
    """What a round's Classic models predict from, read once per feature set and shared.

    `features` maps a feature set (None: every column of live.parquet, era and data_type
    included, as Numerai's runner gives a Model Upload) to the frame of its columns. The models
    get the same frames: pandas' copy-on-write keeps one model's changes from reaching another.
    """

    live: LiveData
    features: dict[str | None, pd.DataFrame] = field(default_factory=dict)
    benchmarks: pd.DataFrame | None = None
    example: pd.Series | None = None
    # A feature set that could not be read (unknown to features.json, say) fails only its models.
    unreadable: dict[str | None, Exception] = field(default_factory=dict)

    def for_model(self, feature_set: str | None) -> pd.DataFrame:
        """The live frame a model with this feature set is given (or why there is none)."""
        if feature_set in self.unreadable:
            raise self.unreadable[feature_set]
        return self.features[feature_set]


@fresh_task
def read_live_frames(live: LiveData, feature_sets: list[str | None]) -> LiveFrames:
    """Read the live columns each feature set needs, the benchmarks and the example once."""
    if live.tournament != CLASSIC:
        return LiveFrames(live)
    frames: dict[str | None, pd.DataFrame] = {}
    unreadable: dict[str | None, Exception] = {}
    sets_path, live_path = live.path("features.json"), live.path("live.parquet")
    for feature_set in dict.fromkeys(feature_sets):
        try:
            features = None if feature_set is ALL_COLUMNS else feature_names(sets_path, feature_set)
            frames[feature_set] = read_live(live_path, features)
        except LiveDataError as exc:
            unreadable[feature_set] = exc
    return LiveFrames(
        live,
        frames,
        benchmarks=pd.read_parquet(live.path("live_benchmark_models.parquet")),
        example=read_example_predictions(live.path("live_example_preds.parquet")),
        unreadable=unreadable,
    )
