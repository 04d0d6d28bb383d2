"""The submit-round flow: one round, every configured model, each on its own."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, cast

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel, RoundInfo
from model.tournaments import tournament

from .reporting import emit_submission_event, publish_round_report, update_model_histories
from .tasks import (
    SHARED_READS,
    LiveData,
    account_models,
    download_live_data,
    find_round_submission,
    model_id_of,
    prepare_submission,
    resolve_data_version,
    resolve_round,
    upload,
    verify,
    wait_for_earlier_runs,
)

CLASSIC = 8
ENV_KEYS = ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY")
# How many models of a round run at once. They share the live columns read for their feature
# set, but each holds what its predictor makes while it runs, so this bounds the round's memory
# as well as its API traffic.
CONCURRENCY_ENV = "NUMERAI_MODEL_CONCURRENCY"
DEFAULT_CONCURRENCY = 8


class _Starts:
    """One round's models: their runs are created one at a time, then work side by side.

    Prefect's server on SQLite answers 503 to a task run created while another write commits
    (the subflow's tracking task run; the client then backs off 2, 4, 8 s), and a running
    model writes all the time. So every model's submit-model run is created first, one after
    the other, while no model works; then at most `concurrency` models work at once.
    """

    def __init__(self, models: int, concurrency: int) -> None:
        self.creating = threading.Lock()
        self.pending = models
        self.all_created = threading.Condition()
        self.working = threading.BoundedSemaphore(concurrency)

    def created(self) -> None:
        """This model's run exists (or could not be made): let the next one be created."""
        self.creating.release()
        with self.all_created:
            self.pending -= 1
            self.all_created.notify_all()

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Inside a model's run: wait until every run exists and a working slot is free."""
        self.created()
        with self.all_created:
            self.all_created.wait_for(lambda: self.pending <= 0)
        with self.working:
            yield


_model = threading.local()  # the _Starts of the round this thread's model belongs to


@contextmanager
def _model_turn() -> Iterator[None]:
    """The model's turn to work, when run side by side with others (else at once)."""
    starts: _Starts | None = getattr(_model, "starts", None)
    _model.starts = None
    if starts is None:
        yield
        return
    with starts.turn():
        yield


def model_concurrency() -> int:
    """NUMERAI_MODEL_CONCURRENCY (default 8, at least 1): models of a round run at once."""
    raw = os.environ.get(CONCURRENCY_ENV, "").strip()
    try:
        value = int(raw) if raw else DEFAULT_CONCURRENCY
    except ValueError:
        raise ValueError(f"{CONCURRENCY_ENV} must be a whole number, got {raw!r}") from None
    return max(1, value)


@dataclass
class ModelReport:
    """What happened to one model in one round: one row of the round's table."""

    model: str
    round: int
    status: str = "failed"
    rows: int | None = None
    mean: float | None = None
    std: float | None = None
    corr_with_example: float | None = None
    validation: str = ""
    submission_id: str | None = None
    verified: bool = False
    late: bool = False
    error: str | None = None
    histogram: list[int] | None = None
    example_histogram: list[int] | None = None
    tournament: str = "classic"

    @property
    def ok(self) -> bool:
        """A verified or an earlier verified submission stands for this round."""
        return self.status in {"verified", "already submitted"}


class ModelFailed(RuntimeError):
    """A model's round ended without a verified submission."""

    def __init__(self, report: ModelReport) -> None:
        super().__init__(f"{report.model}: {report.error}")
        self.report = report


def _model_run_name() -> str:
    params = flow_run.parameters
    return f"round-{params['round_info'].number}-{params['config'].model_name}"


@flow(name="submit-model", flow_run_name=_model_run_name)
def submit_model(
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    live: LiveData,
    account: dict[str, str],
    trigger_id: str | None = None,
    force: bool = False,
) -> ModelReport:
    """Predict, validate, upload and verify one model's submission for the open round."""
    with _model_turn():
        return _submit_model(config, credentials, round_info, live, account, trigger_id, force)


def _submit_model(
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    live: LiveData,
    account: dict[str, str],
    trigger_id: str | None,
    force: bool,
) -> ModelReport:
    logger = get_run_logger()
    report = ModelReport(
        model=config.model_name, round=round_info.number, tournament=live.rules.name
    )
    if config.tournament != live.tournament:
        raise ValueError(
            f"{config.model_name} is a {tournament(config.tournament).name} model, "
            f"given {live.rules.name} live data"
        )
    try:
        model_id = model_id_of(config, account)
        wait_for_earlier_runs(round_info)
        existing = find_round_submission(credentials, model_id, round_info.number)
        if existing is not None and not force:
            logger.info("%s already has submission %s for this round", report.model, existing.id)
            report.status, report.submission_id, report.verified = (
                "already submitted",
                existing.id,
                True,
            )
            emit_submission_event("skipped", report.model, report.round, submission_id=existing.id)
            return report
        prepared = prepare_submission(config, live)
        for key in ("rows", "mean", "std", "corr_with_example", "histogram", "example_histogram"):
            setattr(report, key, prepared.summary[key])
        report.validation = prepared.validation.summary()
        if not prepared.validation.ok:
            report.status = "invalid"
            raise ValueError(f"predictions not uploaded: {report.validation}")
        submission_id = upload(
            credentials, model_id, config.model_name, round_info, prepared.frame, trigger_id,
            live.tournament,
        )  # fmt: skip
        report.submission_id = submission_id
        emit_submission_event(
            "uploaded", report.model, report.round, submission_id=submission_id,
            trigger_id=trigger_id,
        )  # fmt: skip
        verify(credentials, model_id, round_info.number, submission_id, trigger_id)
        report.status, report.verified = "verified", True
        emit_submission_event(
            "verified", report.model, report.round, submission_id=submission_id,
            trigger_id=trigger_id,
        )  # fmt: skip
        logger.info(
            "%s: submission %s verified for round %s",
            *(report.model, submission_id, round_info.number),
        )
        return report
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        emit_submission_event("failed", report.model, report.round, error=report.error)
        raise ModelFailed(report) from exc


def load_credentials(block_name: str) -> NumeraiCredentials:
    """The credentials block; in a container without it, the keys ECS injects as variables."""
    try:
        return cast(NumeraiCredentials, NumeraiCredentials.load(block_name))
    except ValueError as missing:
        public_id, secret_key = (os.environ.get(v) for v in ENV_KEYS)
        if not (public_id and secret_key):
            raise ValueError(
                f"No Numerai Credentials block named {block_name!r}, and no "
                f"{' / '.join(ENV_KEYS)} in the environment: save the block (`setup`)"
            ) from missing
        return NumeraiCredentials(
            public_id=public_id,
            secret_key=SecretStr(secret_key),
            api_url=os.environ.get("NUMERAI_API_URL") or None,
        )


def load_model_configs(names: list[str] | None) -> list[NumeraiModel]:
    """The named model blocks, or every saved one."""
    if not names:
        with get_client(sync_client=True) as client:
            try:
                documents = client.read_block_documents_by_type("numerai-model")
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:  # 404: the block type was never registered
                    raise
                documents = []
        names = [doc.name for doc in documents if doc.name]
    return [cast(NumeraiModel, NumeraiModel.load(name)) for name in names]


def _report_rows(reports: list[ModelReport]) -> list[dict[str, Any]]:
    rows = []
    for report in reports:
        row = asdict(report)
        for key in ("mean", "std", "corr_with_example"):
            if row[key] is not None:
                row[key] = round(row[key], 4)
        rows.append(row)
    return rows


def run_model(
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    live: LiveData,
    account: dict[str, str],
    trigger_id: str | None,
    force: bool,
) -> ModelReport:
    """Run one model's submit-model subflow and turn however it ended into its report."""
    state = submit_model(
        config, credentials, round_info, live, account, trigger_id, force, return_state=True
    )
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, ModelReport):
        return outcome
    if isinstance(outcome, ModelFailed):
        return outcome.report
    return ModelReport(
        config.model_name, round_info.number, error=state.message or "crashed",
        tournament=live.rules.name,
    )  # fmt: skip


def _run_models(
    configs: list[NumeraiModel],
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    live: LiveData,
    account: dict[str, str],
    trigger_id: str | None,
    force: bool,
) -> list[ModelReport]:
    """Every model's subflow, at most model_concurrency() at once; reports in config order."""
    shared: dict[str, Any] = {
        "credentials": credentials, "round_info": round_info, "live": live, "account": account,
        "trigger_id": trigger_id, "force": force,
    }  # fmt: skip
    starts = _Starts(len(configs), model_concurrency())

    def run_in_turn(config: NumeraiModel) -> ModelReport:
        starts.creating.acquire()
        _model.starts = starts
        try:
            return run_model(config, **shared)
        finally:
            if _model.starts is starts:  # its run was never created: do not hold the others
                _model.starts = None
                starts.created()

    # A thread per model (each waits for its turn inside its own run), all in the round run's
    # context so that every submit-model run is its subflow. Runs are created one at a time,
    # which also keeps Prefect's per-run counter of subflow keys free of races.
    with ThreadPoolExecutor(max_workers=len(configs), thread_name_prefix="model") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, run_in_turn, config) for config in configs
        ]
        reports = []
        for config, future in zip(configs, futures, strict=True):
            try:
                outcome = future.result()
            except Exception as exc:  # run_model itself never raises; in case
                outcome = ModelReport(
                    config.model_name, round_info.number, error=f"{type(exc).__name__}: {exc}",
                    tournament=live.rules.name,
                )  # fmt: skip
            reports.append(outcome)
    return reports


@flow(name="submit-round")
def submit_round(
    models: list[str] | None = None,
    credentials_block: str = "numerai",
    trigger_id: str | None = None,
    data_version: str | None = None,
    data_dir: str = "data",
    force: bool = False,
) -> State[Any]:
    """Submit the open round for every configured model; one model's failure spares the rest.

    Models run side by side, at most NUMERAI_MODEL_CONCURRENCY (default 8) at once, each in its
    own submit-model run named round-N-model; live data is downloaded and checked once.
    """
    logger = get_run_logger()
    credentials = load_credentials(credentials_block)
    configs = load_model_configs(models)
    if not configs:
        return Failed(message="No Numerai Model blocks are saved: nothing to submit")
    by_tournament: dict[int, list[NumeraiModel]] = {}
    for config in configs:
        by_tournament.setdefault(config.tournament, []).append(config)

    reports: list[ModelReport] = []
    rounds: list[RoundInfo] = []
    not_open: list[str] = []
    for number, group in by_tournament.items():
        name = tournament(number).name
        round_info = resolve_round(credentials, number)
        if round_info is None:
            not_open.append(f"no {name} round is open ({len(group)} model(s) not submitted)")
            logger.info("No %s round is open for submissions", name)
            continue
        rounds.append(round_info)
        logger.info(
            "Round %s is open until %s UTC (%s)", round_info.number, round_info.close_time, name
        )
        try:
            version = resolve_data_version(
                credentials, data_version if number == CLASSIC else None, number
            )
            live = download_live_data(credentials, round_info.number, version, data_dir, number)
            account = account_models(credentials, number)
        except Exception as exc:
            # This tournament's data or account failed: its models fail, the others go on.
            error = f"{type(exc).__name__}: {exc}"
            reports += [
                ModelReport(c.model_name, round_info.number, error=error, tournament=name)
                for c in group
            ]
            continue
        try:
            reports += _run_models(group, credentials, round_info, live, account, trigger_id, force)
        finally:
            SHARED_READS.forget(live.directory)

    if not rounds:
        message = "No round is open for submissions: nothing submitted"
        logger.info(message)
        return Completed(message=message, data=[])
    round_info = rounds[0]
    rows = _report_rows(reports)
    publish_round_report(round_info.number, rows)
    update_model_histories(rows)
    failed = [r for r in reports if not r.ok]
    closed = "".join(f"; {note}" for note in not_open)
    if failed:
        details = "; ".join(f"{r.model}: {r.error}" for r in failed)
        return Failed(
            message=f"Round {round_info.number}: {len(failed)} of {len(reports)} models failed: "
            f"{details}{closed}",
            data=reports,
        )
    return Completed(
        message=f"Round {round_info.number}: {len(reports)} models verified{closed}", data=reports
    )
