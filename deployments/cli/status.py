"""`numerai-prefect status`: each model's submissions and runs, round by round."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

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
    RoundInfo,
    SubmissionInfo,
)
from deployments.cli._common import (
    DEFAULT_CREDENTIALS,
    ROUND_HOURS,
    CredentialsBlock,
    ModelsFile,
    _credentials,
    _fail,
    _friendly,
    _model_ids,
    _pick_entry,
    _prefect,
    _read_entries,
    _state_label,
    _ui_url,
    _when,
    console,
)
from deployments.local import ROOT, ModelEntry
from flows.submission import latest_round_submission, resolve_round
from model.names import model_run_name
from model.tournaments import CLASSIC, tournament


def _model_runs(client: SyncPrefectClient, model: str) -> dict[int, TaskRun]:
    """Round -> the model's latest submit-model task run in it (named round-N-model)."""
    runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=f"-{model}")),
        sort=TaskRunSort.EXPECTED_START_TIME_DESC,
        limit=200,
    )
    latest: dict[int, TaskRun] = {}
    for run in runs:
        number = run.name.removeprefix("round-").removesuffix(f"-{model}")
        if number.isdigit() and run.name == model_run_name(int(number), model):
            latest.setdefault(int(number), run)
    return latest


def _short(moment: dt.datetime | None) -> str:
    """A moment as MM-DD HH:MM UTC: what fits a row."""
    return "-" if moment is None else f"{moment.astimezone(dt.UTC):%m-%d %H:%M}"


def _rows(
    entries: list[ModelEntry],
    submissions: dict[str, list[SubmissionInfo]],
    currents: dict[int, RoundInfo | None],
    rounds: int,
) -> list[dict[str, Any]]:
    """One row per model and round it had: a submission, a run, or the round open now."""
    rows: list[dict[str, Any]] = []
    with _prefect() as prefect:
        for entry in entries:
            current = currents[entry.tournament_number]
            runs = _model_runs(prefect, entry.name)
            had = {s.round_number for s in submissions[entry.name] if s.round_number}
            had |= set(runs)
            if current is not None:
                had.add(current.number)
            for number in sorted(had, reverse=True)[:rounds]:
                last = latest_round_submission(submissions[entry.name], number)
                run = runs.get(number)
                rows.append(
                    {
                        "model": entry.name,
                        "round": number,
                        "open": bool(current and current.number == number),
                        "submitted": last is not None,
                        "submission_id": last.id if last else None,
                        "inserted_at": last.inserted_at.isoformat()
                        if last and last.inserted_at
                        else None,
                        "trigger_id": last.trigger_id if last else None,
                        "run_state": run.state.name if run and run.state else None,
                        "run_url": _ui_url(run.flow_run_id) if run and run.flow_run_id else None,
                        "_run": run,
                        "_last": last,
                    }
                )
    return rows


@_friendly
def status(
    rounds: Annotated[int, typer.Option(min=1, help="How many rounds to show, newest first.")] = 5,
    model: Annotated[
        str | None, typer.Option("--model", help="Only this model (name or block name).")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="table, or json (one object per model and round).")
    ] = "table",
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Per model and round it had: submitted or not, trigger id, the last run and its link."""
    if output not in ("table", "json"):
        _fail(f"--output {output}: choose table or json")
    entries = _read_entries(models_file)
    if model is not None:
        entries = [_pick_entry(entries, model)]
    credentials = _credentials(credentials_block)
    client = credentials.get_client()
    with console.status("Reading rounds and submissions…"):
        # The round open now in each tournament, as a round run resolves it.
        current = {
            number: resolve_round.fn(credentials, number)
            for number in sorted({entry.tournament_number for entry in entries})
        }
        ids = _model_ids(credentials, entries)
        submissions = {
            entry.name: client.model_submissions(model_id) if (model_id := ids[entry.name]) else []
            for entry in entries
        }
        rows = _rows(entries, submissions, current, rounds)
    if output == "json":
        plain = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
        console.print_json(json.dumps(plain))
        return
    for number, open_round in current.items():
        label = "Round" if number == CLASSIC else f"{tournament(number).name.title()} round"
        if open_round is not None:
            closes = _when(open_round.close_time)
            console.print(f"{label} {open_round.number} is open until {closes}", style="bold")
        else:
            console.print(f"No {label.lower()} is open now ({ROUND_HOURS}).", style="bold")
    if not rows:
        console.print("No rounds to show yet: no round is open and nothing was submitted.")
        return
    for entry in entries:
        mine = [row for row in rows if row["model"] == entry.name]
        # The model's name as a heading, never cut; the rows fit 80 columns.
        console.print(f"\n[bold]{escape(entry.name)}[/]", soft_wrap=True)
        table = Table(box=None, pad_edge=False)
        for column in ("round", "submitted", "trigger id", "last run"):
            table.add_column(column, overflow="fold")
        links = []
        for row in mine:
            last, run = row["_last"], row["_run"]
            table.add_row(
                f"{row['round']}{' (open)' if row['open'] else ''}",
                f"[green]yes[/] {_short(last.inserted_at)}" if last else "[red]no[/]",
                escape(last.trigger_id or "-") if last else "-",
                _state_label(run),
            )
            if row["run_url"]:
                links.append(f"  round {row['round']}: {row['run_url']}")
        console.print(table)
        for link in links:
            console.print(link, soft_wrap=True, markup=False)
