"""`numerai-prefect status`: each model's submissions and runs, round by round."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.sorting import TaskRunSort
from rich.markup import escape
from rich.table import Table

from blocks import (
    SubmissionInfo,
)
from deployments.local import ROOT
from model.names import model_block_name, model_run_name

if TYPE_CHECKING:
    pass
from deployments.cli._common import (
    DEFAULT_CREDENTIALS,
    ROUND_HOURS,
    CredentialsBlock,
    ModelsFile,
    _credentials,
    _friendly,
    _load_model_block,
    _prefect,
    _read_entries,
    _state_label,
    _ui_url,
    _when,
    console,
)


def _latest_model_runs(client: SyncPrefectClient, names: list[str]) -> dict[str, TaskRun]:
    """Run name -> the latest submit-model task run of that name (round-N-model)."""
    runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)),
        sort=TaskRunSort.EXPECTED_START_TIME_DESC,
        limit=200,
    )
    latest: dict[str, TaskRun] = {}
    for run in runs:
        latest.setdefault(run.name, run)
    return latest


def _latest_submission(submissions: list[SubmissionInfo], number: int) -> SubmissionInfo | None:
    """The model's last submission in a round (the one Numerai counts)."""
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    in_round = [s for s in submissions if s.round_number == number]
    return max(in_round, key=lambda s: s.inserted_at or earliest, default=None)


@_friendly
def status(
    rounds: Annotated[int, typer.Option(min=1, help="How many rounds to show, newest first.")] = 5,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Per model and round: submitted or not, trigger id, the last flow run and its UI link."""
    entries = _read_entries(models_file)
    client = _credentials(credentials_block).get_client()
    with console.status("Reading rounds and submissions…"):
        current = client.current_round()
        account: dict[str, str] | None = None
        submissions: dict[str, list[SubmissionInfo]] = {}
        for entry in entries:
            block = _load_model_block(model_block_name(entry.name))
            model_id = entry.model_id or (block.model_id if block else None)
            if model_id is None:
                account = account if account is not None else client.get_models()
                model_id = account.get(entry.name)
            submissions[entry.name] = client.model_submissions(model_id) if model_id else []
    if current is not None:
        console.print(
            f"Round {current.number} is open until {_when(current.close_time)}", style="bold"
        )
    else:
        console.print(f"No round is open now ({ROUND_HOURS}).", style="bold")
    seen = [s.round_number for subs in submissions.values() for s in subs if s.round_number]
    latest = current.number if current else max(seen, default=None)
    if latest is None:
        console.print("No rounds to show yet: no round is open and nothing was submitted.")
        return
    numbers = list(range(latest, max(latest - rounds, 0), -1))
    names = [model_run_name(n, e.name) for e in entries for n in numbers]
    with _prefect() as prefect:
        runs = _latest_model_runs(prefect, names)
    table = Table(title="Submissions by model and round", title_justify="left")
    for column in ("model", "round", "submitted", "trigger id", "last run"):
        table.add_column(column)
    table.add_column("link", overflow="fold")
    for entry in entries:
        for number in numbers:
            last = _latest_submission(submissions[entry.name], number)
            run = runs.get(model_run_name(number, entry.name))
            table.add_row(
                escape(entry.name),
                f"{number}{' (open)' if current and current.number == number else ''}",
                f"[green]yes[/] {_when(last.inserted_at)}" if last else "[red]no[/]",
                escape(last.trigger_id or "-") if last else "-",
                _state_label(run),
                _ui_url(run.flow_run_id) if run and run.flow_run_id else "-",
            )
        table.add_section()
    console.print(table)
