"""`numerai-prefect logs`: a round run's logs and its models' task runs'."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Annotated
from uuid import UUID

import typer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort, LogSort
from prefect.exceptions import ObjectNotFound
from rich.markup import escape

from deployments.cli._common import (
    _api_url,
    _fail,
    _friendly,
    _prefect,
    _state_label,
    _ui_url,
    console,
)
from model.names import ROUND_FLOW


def _root_run(client: SyncPrefectClient, run: str | None) -> FlowRun:
    """The flow run asked for (id or name), or the latest submit-round run."""
    if run:
        try:
            return client.read_flow_run(UUID(run))
        except ValueError:
            pass
        except ObjectNotFound:
            _fail(f"no flow run with id {run}")
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
        if not found:
            _fail(f"no flow run named {run!r}")
        return found[0]
    found = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[ROUND_FLOW])),
        # Not the future runs the retry schedule has already created.
        flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime.model_validate(
                {"before_": dt.datetime.now(dt.UTC)}
            )
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    if not found:
        _fail(
            f"no {ROUND_FLOW} run yet on {_api_url()}",
            fix="`make run`, or `numerai-prefect test` with the receiver and a worker running",
        )
    return found[0]


def _run_family(client: SyncPrefectClient, root: FlowRun) -> dict[UUID, str]:
    """Run id -> name: the run, its child runs and their task runs (each model: round-N-model)."""
    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root.id])
        ),
        limit=200,
    )
    names = {root.id: root.name, **{child.id: child.name for child in children}}
    tasks = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=list(names))),
        limit=200,
    )
    return {**names, **{task.id: task.name for task in tasks}}


def _print_new_logs(
    client: SyncPrefectClient, family: dict[UUID, str], seen: set[UUID], since: dt.datetime | None
) -> dt.datetime | None:
    """Print logs not printed yet, oldest first; return the newest timestamp."""
    page, offset = 200, 0
    while True:
        logs = client.read_logs(
            LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=list(family)),
                timestamp=LogFilterTimestamp.model_validate({"after_": since}) if since else None,
            ),
            limit=page,
            offset=offset,
            sort=LogSort.TIMESTAMP_ASC,
        )
        for log in logs:
            if log.id in seen:
                continue
            seen.add(log.id)
            since = max(since, log.timestamp) if since else log.timestamp
            run_id = log.task_run_id or log.flow_run_id
            name = family.get(run_id, "?") if run_id else "?"
            level = logging.getLevelName(log.level)
            console.print(
                f"{log.timestamp.astimezone(dt.UTC):%H:%M:%S} {level:<7} {name:<28} {log.message}",
                markup=False,
                soft_wrap=True,
            )
        if len(logs) < page:
            return since
        offset += page


@_friendly
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Flow run id or name [default: the latest submit-round run]."),
    ] = None,
) -> None:
    """The logs of the latest submit-round run and of its models' task runs."""
    with _prefect() as client:
        root = _root_run(client, run)
        console.print(
            f"Flow run {escape(root.name)} ({_state_label(root)}): {_ui_url(root.id)}",
            soft_wrap=True,
        )
        seen: set[UUID] = set()
        since: dt.datetime | None = None
        while True:
            family = _run_family(client, root)
            since = _print_new_logs(client, family, seen, since)
            root = client.read_flow_run(root.id)
            final = root.state is not None and root.state.is_final()
            if not follow or final:
                break
            time.sleep(1)
        if follow:
            time.sleep(1)  # the last lines are shipped in batches after the state changes
            _print_new_logs(client, _run_family(client, root), seen, since)
            console.print(f"Flow run {escape(root.name)} ended {_state_label(root)}")
