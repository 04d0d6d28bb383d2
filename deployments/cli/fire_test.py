"""`numerai-prefect test`: fire a model's webhook, follow the run to its submission."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from rich.markup import escape

from deployments.cli._common import (
    _KEYS_FIX,
    DEFAULT_CREDENTIALS,
    DEFAULT_POOL,
    ROUND_HOURS,
    TRIGGER_MUTATION,
    CredentialsBlock,
    ModelsFile,
    PoolOption,
    _credentials,
    _fail,
    _friendly,
    _model_ids,
    _pick_entry,
    _prefect,
    _read_entries,
    _registered_webhooks,
    _ui_url,
    _when,
    console,
)
from deployments.local import ROOT
from flows.submission import find_round_submission, resolve_round
from model.names import WEBHOOK_TAG


def _find_trigger_run(client: SyncPrefectClient, trigger_id: str) -> FlowRun | None:
    """The flow run the receiver created for this trigger, if any yet."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[WEBHOOK_TAG])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=50,
    )
    return next((r for r in runs if r.parameters.get("trigger_id") == trigger_id), None)


def _no_run_fix(pool: str) -> str:
    return (
        "is the receiver reachable at the registered URL (`numerai-prefect doctor` asks it)? "
        "does it use this Prefect API? is submit-round/round deployed "
        f"(`numerai-prefect setup --deploy`)? is a worker running (`prefect worker start --pool "
        f"{pool}`)?"
    )


def _follow_run(
    client: SyncPrefectClient, run: FlowRun, deadline: float, timeout: float, pool: str
) -> FlowRun:
    """Print the run's state transitions until it is final (or the deadline passes)."""
    shown = 0
    with console.status(f"Following flow run {run.name}…"):
        while True:
            # The run first, then its states: the states read hold the state the run is in, so
            # a run that ended between two polls has its final state printed too.
            run = client.read_flow_run(run.id)
            states = sorted(
                client.read_flow_run_states(run.id), key=lambda s: s.timestamp or dt.datetime.min
            )
            for step in states[shown:]:
                message = f": {step.message}" if step.message else ""
                when = _when(step.timestamp, seconds=True)
                console.print(f"  {when}  {step.name}{escape(message)}")
            shown = len(states)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                state = run.state_name or "unknown"
                fix = (
                    f"is a worker running? `prefect worker start --pool {pool}`"
                    if state in ("Scheduled", "Late", "Pending")
                    else f"look at its logs: `numerai-prefect logs --run {run.id}`"
                )
                _fail(f"flow run {run.name} is still {state} after {timeout:g} s", fix=fix)
            time.sleep(1)


@_friendly
def fire_test(
    model: Annotated[
        str | None, typer.Option(help="Model (name or block name) [default: the first].")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the run and its submission.")
    ] = 300,
    pool: PoolOption = DEFAULT_POOL,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Fire a model's webhook and follow the run until its submission carries the trigger id."""
    entry = _pick_entry(_read_entries(models_file), model)
    credentials = _credentials(credentials_block)
    client = credentials.get_client()
    round_info = resolve_round.fn(credentials, entry.tournament_number)
    if round_info is None:
        _fail("no round is open: the run would submit nothing", fix=f"retry during {ROUND_HOURS}")
    model_id = _model_ids(credentials, [entry])[entry.name]
    if model_id is None:
        _fail(f"model {entry.name!r} is not in this Numerai account", fix=_KEYS_FIX)
    hooks = _registered_webhooks(client)
    if hooks is not None and not hooks.get(model_id):
        _fail(
            f"model {entry.name!r} has no webhook registered on Numerai",
            fix="numerai-prefect setup --webhook-url BASE",
        )
    deadline = time.monotonic() + timeout
    answer = client.raw_query(TRIGGER_MUTATION, {"modelId": model_id}, authorization=True)
    trigger_id = str(answer["data"]["triggerModelWebhook"])
    console.print(
        f"Numerai fired the webhook of {escape(entry.name)} for round {round_info.number}: "
        f"trigger id {trigger_id}"
    )
    with _prefect() as prefect:
        run: FlowRun | None = None
        with console.status("Waiting for the receiver to start a flow run…"):
            while (run := _find_trigger_run(prefect, trigger_id)) is None:
                if time.monotonic() > deadline:
                    _fail(f"no run appeared within {timeout:g} s", fix=_no_run_fix(pool))
                time.sleep(1)
        console.print(f"Flow run {run.name}: {_ui_url(run.id)}")
        run = _follow_run(prefect, run, deadline, timeout, pool)
    if run.state is None or not run.state.is_completed():
        _fail(
            f"flow run {run.name} ended {run.state_name}: {run.state.message if run.state else ''}",
            fix=f"numerai-prefect logs --run {run.id}",
        )
    # The submission Numerai counts for the round, looked up as a run looks it up.
    match = find_round_submission(credentials, model_id, round_info.number)
    if match is None:
        _fail(
            f"no submission of {entry.name} for round {round_info.number} carries trigger "
            f"{trigger_id}",
            fix=f"numerai-prefect logs --run {run.id}",
        )
    if match.trigger_id != trigger_id:
        _fail(
            f"round {round_info.number} has a submission of {entry.name} from before "
            f"(trigger {match.trigger_id or 'none'}); the run skipped the model, "
            "so none carries this trigger id",
            fix="the webhook path works; test again in a round without a submission",
        )
    console.print(
        f"[green]✓ {escape(entry.name)}: submission {match.id} for round {round_info.number} "
        f"carries trigger {trigger_id}[/]"
    )
