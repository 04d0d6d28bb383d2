"""One model's submission for a round: predict, validate, upload once, verify, under its lease
(which the flow takes, renews and releases: `flows/leases.py`)."""

from __future__ import annotations

import datetime as dt
import importlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client

from blocks import NumeraiCredentials, NumeraiModel, RoundInfo, SubmissionInfo
from model.names import (
    MODEL_TASK,
    model_run_name,
    submission_filename,
    trigger_variable_name,
)
from model.predictor import load_predictor
from model.readable import duration
from model.summary import prediction_summary
from model.ticker_example import read_prices
from model.tournaments import CLASSIC, tournament
from model.triggers import WebhookTrigger
from model.validation import ValidationResult, validate_submission, validate_ticker_submission

from .leases import Lease, close_margin, confirm_lease, too_late
from .live import LiveData, LiveFrames
from .policies import NotVerified, api_retrying, call_with_api_retries, fresh_task
from .reporting import add_to_history, emit_submission_event, model_scores


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
    # Numerai's scores of the model's recent rounds (round -> corr, mmc, final), for its history.
    scores: dict[int, dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """A verified or an earlier verified submission stands for this round."""
        return self.status in {"verified", "already submitted"}

    def row(self) -> dict[str, Any]:
        """The model's row of the round's table (and its history), without Numerai's scores."""
        row = asdict(self)
        del row["scores"]
        for key in ("mean", "std", "corr_with_example"):
            if row[key] is not None:
                row[key] = round(row[key], 4)
        return row


SUMMARY_FIELDS = ("rows", "mean", "std", "corr_with_example", "histogram", "example_histogram")


class ModelFailed(RuntimeError):
    """A model's round ended without a verified submission; carries the model's report."""

    def __init__(self, report: ModelReport) -> None:
        super().__init__(f"{report.model}: {report.error}")
        self.report = report


@fresh_task
def resolve_round(credentials: NumeraiCredentials, tournament: int) -> RoundInfo | None:
    """The round open for submissions now, or None; waits out an outage (the run's first call)."""
    current = credentials.get_client(tournament).current_round(tournament)
    if current is None or not current.is_open():
        return None
    return current


@fresh_task
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


def latest_round_submission(
    submissions: list[SubmissionInfo], round_number: int
) -> SubmissionInfo | None:
    """The last of a model's submissions in a round (the one Numerai counts), if any."""
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    in_round = [s for s in submissions if s.round_number == round_number]
    return max(in_round, key=lambda s: s.inserted_at or earliest, default=None)


def find_round_submission(
    credentials: NumeraiCredentials, model_id: str, round_number: int
) -> SubmissionInfo | None:
    """The model's latest submission already held by Numerai for this round, if any."""
    submissions = credentials.get_client().model_submissions(model_id)
    return latest_round_submission(submissions, round_number)


def already_submitted(report: ModelReport, standing: SubmissionInfo) -> ModelReport:
    """The report of a model whose submission for the round already stands, announced
    (numerai.submission.skipped)."""
    report.status, report.submission_id, report.verified = "already submitted", standing.id, True
    emit_submission_event("skipped", report.model, report.round, submission_id=standing.id)
    return report


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


@task(name="import-numerai-tools", cache_policy=NO_CACHE)
def import_numerai_tools() -> None:
    """Load numerai-tools, which the models' validation needs, with scipy and scikit-learn
    (about a second): submitted as the round starts, so that it loads while the live data
    downloads instead of at the first model's validation."""
    importlib.import_module("numerai_tools.submissions")


def prepare_submission(config: NumeraiModel, frames: LiveFrames) -> PreparedSubmission:
    """Run the model's predictor on its live frame, then check and summarize the predictions."""
    if frames.live.tournament != CLASSIC:
        return _prepare_tickers(config, frames.live)
    live_features = frames.for_model(config.feature_set)
    benchmarks = frames.benchmarks
    predictor = load_predictor(config.predictor_path)
    frame = predictor(
        live_features, None if benchmarks is None else benchmarks.loc[live_features.index]
    )
    return PreparedSubmission(
        frame=frame,
        validation=validate_submission(frame, live_features.index),
        summary=prediction_summary(frame, frames.example),
    )


def webhook_trigger(block: str | None, round_info: RoundInfo) -> str | None:
    """The trigger id the receiver stored for the model's webhook of this round, if any.

    Read just before the upload, so that a webhook that came after the round's run started is
    still carried. A trigger that cannot be read is logged and left out: the submission stands.
    """
    if block is None:
        return None
    try:
        with get_client(sync_client=True) as client:
            stored = client.read_variable_by_name(trigger_variable_name(block))
    except Exception as exc:  # a trigger id never costs a round
        get_run_logger().warning(
            "Webhook trigger of %s not read (%s): uploading without one", block, exc
        )
        return None
    trigger = WebhookTrigger.from_value(stored.value) if stored is not None else None
    if trigger is None or not trigger.belongs_to(round_info.number, round_info.open_time):
        return None
    return trigger.trigger_id


def upload(
    credentials: NumeraiCredentials,
    model_id: str,
    model_name: str,
    round_info: RoundInfo,
    submission: pd.DataFrame,
    trigger_id: str | None,
    tournament_number: int = CLASSIC,
    *,
    retry: bool = False,
) -> str:
    """Upload a validated submission for the open round, once; returns its submission id.

    A `retry` first looks for the submission an earlier attempt may have made.
    """
    if not round_info.is_open(dt.datetime.now(dt.UTC) + close_margin()):
        raise too_late(round_info)
    # The tournament's client: Signals uploads by its own auth query and create mutation.
    client = credentials.get_client(tournament_number)
    if retry:
        # An earlier attempt may have landed before its answer was lost: never upload twice.
        for existing in client.model_submissions(model_id):
            if existing.round_number == round_info.number:
                return existing.id
    return client.upload_predictions(
        file_path=submission_filename(model_name, round_info.number),
        model_id=model_id,
        df=submission,
        trigger_id=trigger_id,
    )


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


def _upload_and_verify(
    report: ModelReport,
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    frames: LiveFrames,
    model_id: str,
    trigger_id: str | None,
    block: str | None,
    what: str,
    lease: Lease,
) -> str | None:
    """Predict, validate, upload once and verify, filling `report`; returns the trigger id the
    submission carries. Raises when the predictions are invalid or the upload is not verified."""
    prepared = prepare_submission(config, frames)
    for key in SUMMARY_FIELDS:
        setattr(report, key, prepared.summary[key])
    report.validation = prepared.validation.summary()
    if not prepared.validation.ok:
        report.status = "invalid"
        raise ValueError(f"predictions not uploaded: {report.validation}")
    trigger_id = trigger_id or webhook_trigger(block, round_info)
    for attempt in api_retrying(f"{what}: upload"):
        with attempt:
            confirm_lease(lease, config.model_name)
            submission_id = upload(
                credentials, model_id, config.model_name, round_info, prepared.frame,
                trigger_id, frames.live.tournament,
                retry=attempt.retry_state.attempt_number > 1,
            )  # fmt: skip
    report.submission_id = submission_id
    emit_submission_event(
        "uploaded", report.model, report.round, submission_id=submission_id,
        trigger_id=trigger_id,
    )  # fmt: skip
    call_with_api_retries(
        f"{what}: verify", verify,
        credentials, model_id, round_info.number, submission_id, trigger_id,
    )  # fmt: skip
    return trigger_id


@task(
    name=MODEL_TASK,
    task_run_name="round-{round_info.number}-{config.model_name}",
    cache_policy=NO_CACHE,
)
def submit_model(
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    frames: LiveFrames,
    account: dict[str, str],
    lease: Lease,
    trigger_id: str | None = None,
    force: bool = False,
    block: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> ModelReport:
    """Predict, validate, upload and verify one model's submission for the open round.

    The submission carries `trigger_id`, else the trigger of the model's webhook (`block`, the
    model's block name, as the receiver knows it) for this round, if one came. The flow holds
    the model's lease (`lease`) while this runs; the upload confirms it first. The round's
    outcome goes into the model's history as the task ends, verified or not: on top of
    `history`, its rows as the flow read them under the lease, else as read then.
    Raises ModelFailed, carrying the model's report, when no verified submission stands.
    """
    logger = get_run_logger()
    started = time.monotonic()
    live = frames.live
    what = model_run_name(round_info.number, config.model_name)
    report = ModelReport(
        model=config.model_name, round=round_info.number, tournament=live.rules.name
    )
    try:
        if config.tournament != live.tournament:
            raise ValueError(
                f"{config.model_name} is a {tournament(config.tournament).name} model, "
                f"given {live.rules.name} live data"
            )
        model_id = model_id_of(config, account)
        existing = call_with_api_retries(
            f"{what}: reading its submissions", find_round_submission,
            credentials, model_id, round_info.number,
        )  # fmt: skip
        standing = None if force else existing  # the submission that makes this model skip
        if standing is None:
            trigger_id = _upload_and_verify(
                report, config, credentials, round_info, frames, model_id,
                trigger_id, block, what, lease,
            )  # fmt: skip
        if standing is not None:
            logger.info(
                "%s: already submitted (submission %s), checked in %s",
                *(what, standing.id, duration(time.monotonic() - started)),
            )
            already_submitted(report, standing)
        else:
            report.status, report.verified = "verified", True
            emit_submission_event(
                "verified", report.model, report.round, submission_id=report.submission_id,
                trigger_id=trigger_id,
            )  # fmt: skip
            logger.info(
                "%s: verified submission %s in %s",
                *(what, report.submission_id, duration(time.monotonic() - started)),
            )
        report.scores = model_scores(credentials, live.tournament, model_id, what)
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        logger.error(
            "%s: %s after %s: %s",
            *(what, report.status, duration(time.monotonic() - started), report.error),
        )
        emit_submission_event("failed", report.model, report.round, error=report.error)
        raise ModelFailed(report) from exc
    finally:
        add_to_history(report.row(), report.scores or {}, history)  # the lease still held
    return report
