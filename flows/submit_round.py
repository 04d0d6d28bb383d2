"""The submit-round flow: one round, every configured model, each in its own task run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, unmapped
from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.futures import PrefectFutureList
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import NumeraiCredentials, NumeraiModel, RoundInfo
from model.names import ROUND_FLOW, round_run_name
from model.tournaments import CLASSIC, tournament

from .live import LiveData, LiveFrames, download_live_data, read_live_frames, resolve_data_version
from .policies import with_api_retries
from .reporting import publish_round_report, update_model_histories
from .settings import flow_settings
from .submission import (
    ModelFailed,
    ModelReport,
    account_models,
    ensure_model_limits,
    resolve_round,
    submit_model,
)


class RoundFailed(RuntimeError):
    """Some models of the round have no verified submission; `reports` has every model's."""

    def __init__(self, message: str, reports: list[ModelReport]) -> None:
        super().__init__(message)
        self.reports = reports


def load_credentials(block_name: str) -> NumeraiCredentials:
    """The keys ECS injects from Secrets Manager when both are set, else the credentials block.

    In the environment the keys follow a rotated secret at the next task start; the block is
    the local and Prefect-managed way.
    """
    settings = flow_settings()
    if settings.public_id and settings.secret_key:
        return NumeraiCredentials(
            public_id=settings.public_id,
            secret_key=settings.secret_key,
            api_url=settings.api_url,
        )
    try:
        return cast(NumeraiCredentials, NumeraiCredentials.load(block_name))
    except ValueError as missing:
        raise ValueError(
            f"No Numerai Credentials block named {block_name!r}, and no NUMERAI_PUBLIC_ID / "
            "NUMERAI_SECRET_KEY in the environment: save the block (`setup`)"
        ) from missing


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


def _name_round_run(round_number: int) -> None:
    """Rename this run round-N once the round is known (its number is not a parameter)."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), name=round_run_name(round_number))


def run_models(
    configs: list[NumeraiModel],
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    frames: LiveFrames,
    account: dict[str, str],
    trigger_id: str | None,
    force: bool,
) -> list[ModelReport]:
    """Every model's submit-model task, mapped on Prefect's thread pool; reports in order."""
    ensure_model_limits([c.model_name for c in configs])
    runner: ThreadPoolTaskRunner[Any]
    with ThreadPoolTaskRunner(max_workers=flow_settings().model_concurrency) as runner:
        futures: PrefectFutureList[Any] = runner.map(
            cast(Any, submit_model),  # map's overloads do not name sync tasks
            {
                "config": configs,
                "credentials": unmapped(credentials),
                "round_info": unmapped(round_info),
                "frames": unmapped(frames),
                "account": unmapped(account),
                "trigger_id": unmapped(trigger_id),
                "force": unmapped(force),
            },
        )
        futures.wait()
    reports = []
    for config, future in zip(configs, futures, strict=True):
        outcome = future.state.result(raise_on_failure=False)
        if isinstance(outcome, ModelReport):
            reports.append(outcome)
        elif isinstance(outcome, ModelFailed):
            reports.append(outcome.report)
        else:  # the task crashed before it could say why
            error = future.state.message or "crashed"
            if isinstance(outcome, BaseException):
                error = f"{type(outcome).__name__}: {outcome}"
            name = frames.live.rules.name
            reports.append(
                ModelReport(config.model_name, round_info.number, error=error, tournament=name)
            )
    return reports


def _tournament_round(
    number: int,
    group: list[NumeraiModel],
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    trigger_id: str | None,
    data_version: str | None,
    data_dir: str,
    force: bool,
) -> list[ModelReport]:
    """One tournament's models in its open round: live data once, then each model."""
    name = tournament(number).name
    try:
        version = with_api_retries(resolve_data_version)(
            credentials, data_version if number == CLASSIC else None, number
        )
        live: LiveData = with_api_retries(download_live_data)(
            credentials, round_info.number, version, data_dir, number
        )
        account = with_api_retries(account_models)(credentials, number)
        frames = read_live_frames(live, [c.feature_set for c in group])
    except Exception as exc:
        # This tournament's data or account failed: its models fail, the others go on.
        error = f"{type(exc).__name__}: {exc}"
        return [
            ModelReport(c.model_name, round_info.number, error=error, tournament=name)
            for c in group
        ]
    return run_models(group, credentials, round_info, frames, account, trigger_id, force)


@flow(name=ROUND_FLOW)
def submit_round(
    models: list[str] | None = None,
    credentials_block: str = "numerai",
    trigger_id: str | None = None,
    data_version: str | None = None,
    data_dir: str = "data",
    force: bool = False,
) -> State[Any]:
    """Submit the open round for every configured model; one model's failure spares the rest.

    Each model is a submit-model task run named round-N-model, at most NUMERAI_MODEL_CONCURRENCY
    (default 8) at once, and holds its model's concurrency slot while it works; live data is
    downloaded, checked and read once.
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
        round_info = with_api_retries(resolve_round, patient=True)(credentials, number)
        if round_info is None:
            not_open.append(f"no {name} round is open ({len(group)} model(s) not submitted)")
            logger.info("No %s round is open for submissions", name)
            continue
        if not rounds:
            _name_round_run(round_info.number)
        rounds.append(round_info)
        logger.info(
            "Round %s is open until %s UTC (%s)",
            *(round_info.number, f"{round_info.close_time:%Y-%m-%d %H:%M}", name),
        )
        reports += _tournament_round(
            number, group, credentials, round_info, trigger_id, data_version, data_dir, force
        )

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
        message = (
            f"Round {round_info.number}: {len(failed)} of {len(reports)} models failed: "
            f"{details}{closed}"
        )
        # A failed state's result must be an exception: this one carries every model's report.
        return Failed(message=message, data=RoundFailed(message, reports))
    verified = len(reports)
    return Completed(
        message=f"Round {round_info.number}: {verified} model{'s' if verified != 1 else ''} "
        f"verified{closed}",
        data=reports,
    )
