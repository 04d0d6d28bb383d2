"""Tasks: each does one side effect. Retry, timeout and cache policy live here, in one place."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import pandas as pd
import pyarrow as pa
import requests
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.runtime import task_run as current_task_run
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from blocks import (
    NumeraiCredentials,
    NumeraiModel,
    NumeraiUnavailable,
    RoundInfo,
    SubmissionInfo,
    is_transient,
)
from blocks.client import trigger_id_env
from model.data import check_live_file, feature_names, read_example_predictions, read_live
from model.predictor import load_predictor
from model.summary import prediction_summary
from model.ticker_example import read_prices
from model.tournaments import CLASSIC, Tournament, tournament, version_key
from model.validation import ValidationResult, validate_submission, validate_ticker_submission

# Retry policy for every Numerai API call: exponential backoff from a base delay that tests and
# impatient operators can shorten; the whole ladder stays well inside a one-hour round.
API_RETRIES = int(os.environ.get("NUMERAI_API_RETRIES", "4"))
API_RETRY_BASE_SECONDS = float(os.environ.get("NUMERAI_RETRY_BASE_SECONDS", "5"))
# While Numerai does not answer, a run's first call keeps trying this long: a run started in an
# outage submits as soon as it ends, instead of leaving the rest of the window to the next retry.
ROUND_PATIENCE_SECONDS = float(os.environ.get("NUMERAI_ROUND_PATIENCE_SECONDS", "900"))
# Nothing is uploaded closer than this to the round's close: an upload must finish in time.
CLOSE_MARGIN = dt.timedelta(seconds=float(os.environ.get("NUMERAI_CLOSE_MARGIN_SECONDS", "15")))
LIVE_FILES = tournament(CLASSIC).live_files
_MANIFEST = "manifest.json"


class RoundClosed(RuntimeError):
    """The round closed (or is about to) before this model's upload: nothing was uploaded."""


class DownloadFailed(NumeraiUnavailable):
    """A live data file arrived cut short or unreadable; a fresh download may fix it."""


class NotVerified(RuntimeError):
    """Numerai does not (yet) list the submission just made."""


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only failures that a later attempt can fix (timeouts, 5xx, GraphQL hiccups)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc) or isinstance(exc, NotVerified)
    return False


# No cache policy: every task of the flows is a side effect or reads what changes, so a run must
# never be answered from an earlier one's result (and no inputs, keys included, get hashed).
fresh_task = task(cache_policy=NO_CACHE)
api_task = task(
    cache_policy=NO_CACHE,
    retries=API_RETRIES,
    retry_delay_seconds=exponential_backoff(API_RETRY_BASE_SECONDS),
    retry_jitter_factor=0.2,
    retry_condition_fn=retry_if_transient,
)


def patient_delays(patience: float, base: float, longest: float) -> list[float]:
    """Retry delays doubling from `base` up to `longest`, adding up to at most `patience`."""
    delays: list[float] = []
    delay = base
    while len(delays) < 50 and sum(delays) + delay <= patience:  # Prefect takes 50 at most
        delays.append(delay)
        delay = min(2 * delay, longest)
    return delays


_PATIENT = patient_delays(
    ROUND_PATIENCE_SECONDS, API_RETRY_BASE_SECONDS, longest=12 * API_RETRY_BASE_SECONDS
)
# The same policy with the patient ladder, when patience buys more retries than the usual one.
patient_api_task = (
    task(
        cache_policy=NO_CACHE,
        retries=len(_PATIENT),
        retry_delay_seconds=_PATIENT,
        retry_jitter_factor=0.2,
        retry_condition_fn=retry_if_transient,
    )
    if len(_PATIENT) > API_RETRIES
    else api_task
)


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


@patient_api_task
def resolve_round(credentials: NumeraiCredentials, tournament: int) -> RoundInfo | None:
    """The round open for submissions now, or None; waits out an outage (the run's first call)."""
    current = credentials.get_client(tournament).current_round(tournament)
    if current is None or not current.is_open():
        return None
    return current


@api_task
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


@api_task
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
        _publish(fresh, target)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    logger.info(
        "Downloaded and checked %s live data for round %s (%s)",
        *(rules.name, round_number, data_version),
    )
    return LiveData(round_number, data_version, target, tournament_number)


@api_task
def account_models(credentials: NumeraiCredentials, tournament: int) -> dict[str, str]:
    """The account's models in a tournament, by lowercase name: one call for every model."""
    models = credentials.get_client(tournament).get_models(tournament)
    return {name.lower(): model_id for name, model_id in models.items()}


def model_id_of(config: NumeraiModel, account: dict[str, str]) -> str:
    """The model's Numerai id: configured, or found by name among the account's models."""
    if config.model_id:
        return config.model_id
    if config.model_name.lower() not in account:
        raise ValueError(
            f"model {config.model_name!r} is not in this account; it has: {sorted(account)}"
        )
    return account[config.model_name.lower()]


@api_task
def find_round_submission(
    credentials: NumeraiCredentials, model_id: str, round_number: int
) -> SubmissionInfo | None:
    """The model's latest submission already held by Numerai for this round, if any."""
    submissions = [
        s
        for s in credentials.get_client().model_submissions(model_id)
        if s.round_number == round_number
    ]
    if not submissions:
        return None
    return max(submissions, key=lambda s: s.inserted_at or dt.datetime.min.replace(tzinfo=dt.UTC))


# How often a model's run looks again at an earlier run of the same model and round.
TURN_POLL_SECONDS = 2.0
_GOING = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]


def earlier_runs(me: FlowRun, going: list[FlowRun]) -> list[FlowRun]:
    """The runs among `going` created before `me` (the server's clock; ties by id)."""

    def order(run: FlowRun) -> tuple[dt.datetime, str]:
        return (run.created or dt.datetime.min.replace(tzinfo=dt.UTC), str(run.id))

    return [run for run in going if run.id != me.id and order(run) < order(me)]


def _abandoned(client: SyncPrefectClient, run: FlowRun, parents: dict[UUID, UUID | None]) -> bool:
    """A model's run whose round run ended (crashed, killed, cancelled) while it was working.

    `parents` keeps each run's round run id between looks (a run's parent never changes).
    """
    if run.parent_task_run_id is None:
        return False
    try:
        if run.id not in parents:
            parents[run.id] = client.read_task_run(run.parent_task_run_id).flow_run_id
        parent_id = parents[run.id]
        if parent_id is None:
            return False
        parent = client.read_flow_run(parent_id)
    except ObjectNotFound:  # its round run was deleted
        return True
    return parent.state is not None and parent.state.is_final()


def wait_for_earlier_runs(round_info: RoundInfo) -> None:
    """One run at a time works on a model in a round, so two runs never both upload.

    The webhook's run and a retry can overlap (a slow start, an outage both wait out). Every
    model's run is named round-N-model: this one waits while a run of that name created before
    it is still at work, then goes on (and finds that run's submission). A run whose round run
    ended without it (a killed worker process) does not count. Waiting ends at the round's close.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    me = context.flow_run  # as the engine read it back and renamed it: round-N-model
    name = me.name
    logger = get_run_logger()
    waited_for: set[UUID] = set()
    parents: dict[UUID, UUID | None] = {}
    with get_client(sync_client=True) as client:
        same = FlowRunFilter(
            name=FlowRunFilterName(any_=[name]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_GOING)),
        )
        while True:
            going = client.read_flow_runs(flow_run_filter=same)
            ahead = [r for r in earlier_runs(me, going) if not _abandoned(client, r, parents)]
            if not ahead:
                return
            if not round_info.is_open(dt.datetime.now(dt.UTC) + CLOSE_MARGIN):
                raise RoundClosed(
                    f"run {ahead[0].id} of {name} was still at work when round "
                    f"{round_info.number} closed: this run uploaded nothing"
                )
            for run in ahead:
                if run.id not in waited_for:
                    logger.info("Waiting for the earlier run %s of %s to finish", run.id, name)
                    waited_for.add(run.id)
            time.sleep(TURN_POLL_SECONDS)


T = TypeVar("T")


class SharedReads:
    """Live files read once per process and shared by a round's models.

    An entry is keyed by the file (path, size, modification time) and what was read from it,
    so a new download is read afresh. One thread reads a key while the others wait for it; a
    failed read is not kept, so every model fails with its own error. The models get the same
    frames: pandas' copy-on-write keeps one model's changes from reaching another.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[tuple[Any, ...], threading.Lock] = {}
        self._values: dict[tuple[Any, ...], Any] = {}

    def read(self, path: Path, what: tuple[Any, ...], reader: Callable[[], T]) -> T:
        """What reader() returns for this file, read by the first model that asks."""
        try:
            stat = path.stat()
        except OSError:
            return reader()  # its own error names the file
        key = (str(path), stat.st_size, stat.st_mtime_ns, *what)
        with self._lock:
            key_lock = self._keys.setdefault(key, threading.Lock())
        with key_lock:
            if key not in self._values:
                self._values[key] = reader()
            return self._values[key]

    def forget(self, directory: Path) -> None:
        """Drop what was read from files in this directory (the round is over)."""
        with self._lock:
            for key in [k for k in self._keys if Path(k[0]).parent == directory]:
                del self._keys[key]
                self._values.pop(key, None)


SHARED_READS = SharedReads()


@dataclass(frozen=True)
class PreparedSubmission:
    """Predictions for the round, their validation against the live ids, and their summary."""

    frame: pd.DataFrame
    validation: ValidationResult
    summary: dict[str, Any]


def _second_frame(config: NumeraiModel, live: LiveData) -> pd.DataFrame:
    """A Signals/Crypto predictor's second argument: the model's own data, or the listed file."""
    rules = live.rules
    if config.data_path:
        return read_prices(config.data_path)
    if rules.second_file and live.path(rules.second_file).exists():
        return pd.read_parquet(live.path(rules.second_file))
    return pd.DataFrame()


def _prepare_tickers(config: NumeraiModel, live: LiveData) -> PreparedSubmission:
    """Signals/Crypto: predict on the live universe, validate by the tournament's rules."""
    rules = live.rules
    universe = pd.read_parquet(live.path(rules.live_file))
    predictor = load_predictor(config.predictor_path)
    frame = predictor(universe, _second_frame(config, live), tournament=rules)
    example = None
    if rules.example_file and live.path(rules.example_file).exists():
        preds = pd.read_parquet(live.path(rules.example_file))
        id_col, pred_col = preds.columns[0], preds.columns[-1]
        example = preds.set_index(id_col)[pred_col].rename("prediction")
    indexed = frame
    if len(frame.columns) == 2 and frame.columns[0] in rules.id_columns:
        indexed = frame.set_index(frame.columns[0])
    return PreparedSubmission(
        frame=frame,
        validation=validate_ticker_submission(frame, universe, rules),
        summary=prediction_summary(indexed, example),
    )


@fresh_task
def prepare_submission(config: NumeraiModel, live: LiveData) -> PreparedSubmission:
    """Run the model's predictor on the live data it reads, then check and summarize."""
    if live.tournament != CLASSIC:
        return _prepare_tickers(config, live)
    shared = SHARED_READS.read
    sets_path, live_path = live.path("features.json"), live.path("live.parquet")
    feature_set = config.feature_set
    features = shared(sets_path, (feature_set,), lambda: feature_names(sets_path, feature_set))
    live_features = shared(live_path, tuple(features), lambda: read_live(live_path, features))
    benchmarks_path = live.path("live_benchmark_models.parquet")
    benchmarks = shared(benchmarks_path, (), lambda: pd.read_parquet(benchmarks_path))
    predictor = load_predictor(config.predictor_path)
    frame = predictor(live_features, benchmarks.loc[live_features.index])
    example_path = live.path("live_example_preds.parquet")
    example = shared(example_path, (), lambda: read_example_predictions(example_path))
    return PreparedSubmission(
        frame=frame,
        validation=validate_submission(frame, live_features.index),
        summary=prediction_summary(frame, example),
    )


@api_task
def upload(
    credentials: NumeraiCredentials,
    model_id: str,
    model_name: str,
    round_info: RoundInfo,
    submission: pd.DataFrame,
    trigger_id: str | None,
    tournament_number: int = CLASSIC,
) -> str:
    """Upload a validated submission for the open round, once; returns its submission id."""
    if not round_info.is_open(dt.datetime.now(dt.UTC) + CLOSE_MARGIN):
        raise RoundClosed(
            f"round {round_info.number} closes at {round_info.close_time:%Y-%m-%d %H:%M} UTC: "
            "too late to upload, nothing was sent"
        )
    # The tournament's client: Signals uploads by its own auth query and create mutation.
    client = credentials.get_client(tournament_number)
    if current_task_run.get_run_count() > 1:
        # An earlier attempt may have landed before its answer was lost: never upload twice.
        for existing in client.model_submissions(model_id):
            if existing.round_number == round_info.number:
                return existing.id
    with trigger_id_env(trigger_id):
        return client.upload_predictions(
            file_path=f"{model_name}-round-{round_info.number}.csv",
            model_id=model_id,
            df=submission,
        )


@api_task
def verify(
    credentials: NumeraiCredentials,
    model_id: str,
    round_number: int,
    submission_id: str,
    trigger_id: str | None,
) -> SubmissionInfo:
    """Read the model's submissions back: this round, this submission, this trigger id."""
    for s in credentials.get_client().model_submissions(model_id):
        if s.id == submission_id and s.round_number == round_number:
            if trigger_id and s.trigger_id != trigger_id:
                raise NotVerified(
                    f"submission {submission_id} carries trigger id {s.trigger_id!r}, "
                    f"not {trigger_id!r}"
                )
            return s
    raise NotVerified(f"submission {submission_id} is not listed for round {round_number}")
