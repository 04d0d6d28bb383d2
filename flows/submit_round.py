"""The submit-round flow: one round, every configured model, each in its own task run."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import BlockDocument, FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.futures import PrefectConcurrentFuture
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks import NumeraiCredentials, NumeraiModel, RoundInfo
from model.names import ROUND_FLOW, round_run_name
from model.readable import plural, utc_time
from model.sizes import size_job_variables
from model.tournaments import CLASSIC, tournament

from .leases import ModelLeases, ensure_model_limits
from .live import LiveData, LiveFrames, download_live_data, read_live_frames, resolve_data_version
from .policies import with_api_retries
from .progress import RoundProgress
from .reporting import (
    add_to_history,
    emit_submission_event,
    latest_histories,
    publish_round_report,
)
from .settings import flow_settings
from .submission import (
    ModelFailed,
    ModelReport,
    account_models,
    already_submitted,
    find_round_submission,
    import_numerai_tools,
    model_id_of,
    resolve_round,
    submit_model,
)

BLOCKS_PAGE = 200  # the most block documents the API returns at once


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


def load_model_configs(names: list[str] | None) -> dict[str, NumeraiModel]:
    """The named model blocks, or every saved one, by block name: read in one call, not one
    per model (a round of many models starts sooner)."""
    documents: list[BlockDocument] = []
    with get_client(sync_client=True) as client:
        while True:
            try:
                page = client.read_block_documents_by_type(
                    "numerai-model", offset=len(documents), limit=BLOCKS_PAGE
                )
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:  # 404: the block type was never registered
                    raise
                page = []
            documents += page
            if len(page) < BLOCKS_PAGE:
                break
    saved = {doc.name: doc for doc in documents if doc.name}
    wanted = names or list(saved)
    missing = [name for name in wanted if name not in saved]
    if missing:
        raise ValueError(
            f"No Numerai Model block named {', '.join(map(repr, missing))}; "
            f"saved: {', '.join(sorted(saved)) or 'none'}"
        )
    return {
        name: cast(NumeraiModel, NumeraiModel._load_from_block_document(saved[name]))
        for name in wanted
    }


def _name_round_run(round_number: int, size: str | None) -> None:
    """Rename this run round-N (round-N-SIZE for a size group) once the round is known."""
    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(run_id), name=round_run_name(round_number, size))


def failed_without_a_task(
    config: NumeraiModel, round_info: RoundInfo, error: str, tournament_name: str
) -> ModelReport:
    """The report of a model whose task never said why it failed (its tournament's live data or
    account could not be read, or the task crashed), announced as the task would have: without
    the event its failure would be silent (run-failed leaves rounds whose models announced),
    and into its history."""
    emit_submission_event("failed", config.model_name, round_info.number, error=error)
    report = ModelReport(
        config.model_name, round_info.number, error=error, tournament=tournament_name
    )
    add_to_history(report.row(), {})
    return report


def held_to_the_deadline(
    config: NumeraiModel,
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    account: dict[str, str],
    leases: ModelLeases,
    tournament_name: str,
) -> ModelReport:
    """The report of a model another run held until the upload deadline: already submitted
    when that run's submission stands (a read, which needs no lease), else failed.

    The other run may have uploaded long before: models leased together are freed with the
    last of them.
    """
    try:
        model_id = model_id_of(config, account)
        standing = find_round_submission(credentials, model_id, round_info.number)
    except Exception as exc:  # unknown: the model is reported failed, with why
        get_run_logger().warning("%s: submissions not read (%s)", config.model_name, exc)
        standing = None
    if standing is None:
        error = leases.held_elsewhere(config.model_name)
        return failed_without_a_task(config, round_info, f"RoundClosed: {error}", tournament_name)
    report = ModelReport(config.model_name, round_info.number, tournament=tournament_name)
    return already_submitted(report, standing)


def read_histories(models: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The models' histories, read in one call once their leases are taken (no other run
    writes them until this run's tasks do); none when the read fails: each task then reads
    its own, and warns if it cannot."""
    if not models:
        return {}
    try:
        return latest_histories(models)
    except Exception:
        return {}


def _report_of(future: PrefectConcurrentFuture[Any], config: NumeraiModel, round_info: RoundInfo,
               tournament_name: str) -> ModelReport:  # fmt: skip
    """The model's report from its finished task, or why the task crashed."""
    outcome = future.state.result(raise_on_failure=False)
    if isinstance(outcome, ModelReport):
        return outcome
    if isinstance(outcome, ModelFailed):
        return outcome.report
    error = future.state.message or "crashed"  # the task crashed before it could say why
    if isinstance(outcome, BaseException):
        error = f"{type(outcome).__name__}: {outcome}"
    return failed_without_a_task(config, round_info, error, tournament_name)


def run_models(
    configs: dict[str, NumeraiModel],
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    frames: LiveFrames,
    account: dict[str, str],
    trigger_id: str | None,
    force: bool,
    progress: RoundProgress | None = None,
) -> list[ModelReport]:
    """Every model's submit-model task (`configs` by block name) on Prefect's thread pool, each
    started once its model's lease is taken; reports in order.

    The flow's thread keeps the leases while it waits on the tasks: a model another run holds
    is asked for again when the server says, until the round's upload deadline.
    """
    ensure_model_limits([c.model_name for c in configs.values()])
    name = frames.live.rules.name
    reports: dict[str, ModelReport] = {}
    running: dict[Future[Any], tuple[str, PrefectConcurrentFuture[Any]]] = {}
    waiting = list(configs)  # block names
    runner: ThreadPoolTaskRunner[Any]
    with (
        get_client(sync_client=True) as client,
        ThreadPoolTaskRunner(max_workers=flow_settings().model_concurrency) as runner,
    ):
        leases = ModelLeases(client, round_info)
        try:
            while waiting or running:
                if waiting and time.monotonic() >= leases.retry_at:
                    models = dict.fromkeys(configs[b].model_name for b in waiting)
                    # Every free lease first, then the tasks: a lease taken while a task of this
                    # run writes would meet it on SQLite's one writer (a 2 s back-off).
                    taken = leases.take_free(list(models))
                    histories = read_histories(list(taken))
                    for model_name, lease in taken.items():
                        # Two blocks of one model: the second waits for the first's lease.
                        block = next(b for b in waiting if configs[b].model_name == model_name)
                        waiting.remove(block)
                        started: PrefectConcurrentFuture[Any] = runner.submit(
                            cast(Any, submit_model),  # submit's overloads do not name sync tasks
                            parameters={
                                "config": configs[block], "credentials": credentials,
                                "round_info": round_info, "frames": frames,
                                "account": account, "trigger_id": trigger_id, "force": force,
                                "block": block, "lease": lease,
                                # Quoted: plain rows, which Prefect need not search for futures.
                                "history": quote(histories.get(model_name)),
                            },
                        )  # fmt: skip
                        running[started.wrapped_future] = (block, started)
                if waiting and leases.past_deadline():
                    for block in waiting:
                        reports[block] = held_to_the_deadline(
                            configs[block], credentials, round_info, account, leases, name
                        )
                        if progress is not None:
                            progress.finished(ok=reports[block].ok)
                    waiting = []
                pause = leases.seconds_to_next_call(bool(waiting))
                if running:
                    done, _ = wait(list(running), timeout=pause, return_when=FIRST_COMPLETED)
                else:  # every model left is another run's for now
                    done = set()
                    time.sleep(pause)
                for finished in done:
                    block, future = running.pop(finished)
                    future.wait()  # keeps its final state, with its result, on the future
                    reports[block] = _report_of(future, configs[block], round_info, name)
                    leases.release(configs[block].model_name)
                    if progress is not None:
                        progress.finished(ok=reports[block].ok)
                leases.renew_due()
        finally:
            leases.release_all()
    return [reports[block] for block in configs]


def _tournament_round(
    number: int,
    group: dict[str, NumeraiModel],
    credentials: NumeraiCredentials,
    round_info: RoundInfo,
    trigger_id: str | None,
    data_version: str | None,
    data_dir: str,
    force: bool,
    progress: RoundProgress | None = None,
) -> list[ModelReport]:
    """One tournament's models in its open round: live data once, then each model."""
    name = tournament(number).name
    import_numerai_tools.submit()  # on the flow's task runner, beside the download below
    try:
        version = with_api_retries(resolve_data_version)(
            credentials, data_version if number == CLASSIC else None, number
        )
        live: LiveData = with_api_retries(download_live_data)(
            credentials, round_info.number, version, data_dir, number
        )
        account = with_api_retries(account_models)(credentials, number)
        frames = read_live_frames(live, [c.feature_set for c in group.values()])
    except Exception as exc:
        # This tournament's data or account failed: its models fail, the others go on.
        error = f"{type(exc).__name__}: {exc}"
        failed = [failed_without_a_task(c, round_info, error, name) for c in group.values()]
        if progress is not None:
            progress.finished(len(failed), ok=False)
        return failed
    return run_models(group, credentials, round_info, frames, account, trigger_id, force, progress)


@dataclass(frozen=True)
class Placement:
    """Where this run is: its deployment's work pool type and its own job variables."""

    deployment_id: UUID
    pool_type: str
    job_variables: dict[str, Any]

    def runs_here(self, size: str) -> bool:
        """Whether this run already has the size (a process pool has none to set)."""
        wanted = size_job_variables(size, self.pool_type)
        return bool(wanted) and wanted.items() <= self.job_variables.items()


def placement() -> Placement | None:
    """This run's deployment, pool type and job variables; None when not a deployment run."""
    run_id, deployment_id = flow_run.get_id(), deployment.get_id()
    if run_id is None or deployment_id is None:
        return None
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(UUID(deployment_id))
        run = client.read_flow_run(UUID(run_id))
        if stored.work_pool_name is None:
            return None
        pool_type = client.read_work_pool(stored.work_pool_name).type
    variables = {**(stored.job_variables or {}), **(run.job_variables or {})}
    return Placement(UUID(deployment_id), pool_type, variables)


def split_by_size(
    configs: dict[str, NumeraiModel], run_size: str | None, where: Placement | None
) -> tuple[dict[str, NumeraiModel], dict[str, list[str]]]:
    """The models this run submits, and the other size groups' block names by size.

    A model without a size, or of the size this run was started for, runs here; so does every
    model of a run outside a deployment (there is no size to start). Any other size runs in a
    run of its own, so that its memory kill leaves the others alone.
    """
    here: dict[str, NumeraiModel] = {}
    groups: dict[str, list[str]] = {}
    for name, config in configs.items():
        if where is None or config.size in (None, run_size) or where.runs_here(config.size):
            here[name] = config
        else:
            groups.setdefault(config.size, []).append(name)
    return here, groups


def start_size_runs(
    where: Placement, groups: dict[str, list[str]], parameters: dict[str, Any]
) -> dict[str, FlowRun]:
    """One run of this deployment per size group, with that size's job variables."""
    run_id = flow_run.get_id()
    started = {}
    for size, names in groups.items():
        started[size] = cast(
            FlowRun,
            run_deployment(
                where.deployment_id,
                parameters={**parameters, "models": names, "size": size},
                job_variables=size_job_variables(size, where.pool_type),
                idempotency_key=f"{run_id}-{size}",  # a retried round run starts each group once
                tags=[f"size:{size}"],
                # Not waited for: a size run may need this deployment's concurrency slot, which this
                # run holds until it ends. It reports and notifies as a run of its own.
                timeout=0,
            ),
        )
    return started


def _submit_here(
    configs: dict[str, NumeraiModel],
    credentials: NumeraiCredentials,
    trigger_id: str | None,
    data_version: str | None,
    data_dir: str,
    force: bool,
    size: str | None,
) -> tuple[list[ModelReport], list[RoundInfo], list[str]]:
    """This run's own models, tournament by tournament: reports, open rounds, closed notes."""
    logger = get_run_logger()
    progress = RoundProgress(len(configs)) if configs else None
    by_tournament: dict[int, dict[str, NumeraiModel]] = {}
    for block, config in configs.items():
        by_tournament.setdefault(config.tournament, {})[block] = config
    reports: list[ModelReport] = []
    rounds: list[RoundInfo] = []
    not_open: list[str] = []
    for number, group in by_tournament.items():
        name = tournament(number).name
        round_info = with_api_retries(resolve_round, patient=True)(credentials, number)
        if round_info is None:
            not_open.append(
                f"no {name} round is open ({plural(len(group), 'model')} not submitted)"
            )
            logger.info("No %s round is open for submissions", name)
            if progress is not None:
                progress.finished(len(group))
            continue
        if not rounds:
            _name_round_run(round_info.number, size)
        rounds.append(round_info)
        logger.info(
            "Round %s is open until %s (%s)",
            round_info.number,
            utc_time(round_info.close_time),
            name,
        )
        reports += _tournament_round(
            number, group, credentials, round_info, trigger_id, data_version, data_dir, force,
            progress,
        )  # fmt: skip
    return reports, rounds, not_open


@flow(name=ROUND_FLOW)
def submit_round(
    models: list[str] | None = None,
    credentials_block: str = "numerai",
    trigger_id: str | None = None,
    data_version: str | None = None,
    data_dir: str = "data",
    force: bool = False,
    size: str | None = None,
) -> State[Any]:
    """Submit the open round for every configured model; one model's failure spares the rest.

    Each model is a submit-model task run named round-N-model, at most NUMERAI_MODEL_CONCURRENCY
    (default 8) at once, while this run holds its model's concurrency slot; live data is
    downloaded, checked and read once. A model with its own size runs in a run of its size
    group (this deployment, that size's job variables); `size` is set on such a run.
    """
    logger = get_run_logger()
    credentials = load_credentials(credentials_block)
    try:
        configs = load_model_configs(models)
    except ValueError as missing:  # a model named that has no block: say which, no traceback
        return Failed(message=str(missing))
    if not configs:
        return Failed(message="No Numerai Model blocks are saved: nothing to submit")
    where = placement()
    here, groups = split_by_size(configs, size, where)
    started: dict[str, FlowRun] = {}
    if groups and where is not None:
        shared = {
            "credentials_block": credentials_block, "trigger_id": trigger_id,
            "data_version": data_version, "data_dir": data_dir, "force": force,
        }  # fmt: skip
        started = start_size_runs(where, groups, shared)
        for group_size, run in started.items():
            logger.info(
                "Size %s: %s in run %s", group_size, ", ".join(groups[group_size]), run.name
            )

    reports, rounds, not_open = _submit_here(
        here, credentials, trigger_id, data_version, data_dir, force, size
    )
    closed = "".join(f"; {note}" for note in not_open)
    sized = "".join(
        f"; size {s}: {', '.join(groups[s])} in run {run.name}" for s, run in started.items()
    )
    if not rounds:
        message = "No round is open for submissions: nothing submitted"
        if not here:
            message = "Every model runs in a run of its size"
        logger.info(message)
        return Completed(message=f"{message}{sized}{closed}", data=[])
    round_info = rounds[0]
    publish_round_report(round_info.number, [r.row() for r in reports])
    failed = [r for r in reports if not r.ok]
    if failed:
        details = "; ".join(f"{r.model}: {r.error}" for r in failed)
        message = (
            f"Round {round_info.number}: {len(failed)} of {plural(len(reports), 'model')} failed: "
            f"{details}{sized}{closed}"
        )
        # A failed state's result must be an exception: this one carries every model's report.
        return Failed(message=message, data=RoundFailed(message, reports))
    verified = plural(len(reports), "model")
    return Completed(
        message=f"Round {round_info.number}: {verified} verified{sized}{closed}",
        data=reports,
    )
