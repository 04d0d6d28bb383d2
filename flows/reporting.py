"""What a round run tells the outside: Prefect events, the round report, each model's history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from prefect.events import emit_event
from prefect.runtime import flow_run, task_run
from prefect.settings import PREFECT_UI_URL

from blocks import NumeraiCredentials
from model.names import flow_run_url, history_key, model_resource_id, round_resource_id
from model.readable import utc_time
from model.report import apply_scores, history_markdown, merge_history, round_markdown
from model.schedule import next_retry_after, window_at

from .policies import fresh_task

ROUND_TABLE_KEY = "numerai-round-report"
ROUND_MARKDOWN_KEY = "numerai-round-summary"
# Rounds whose scores each run reads again: more than are being scored at once (a round is
# scored for 20 days, with up to five rounds a week).
SCORED_ROUNDS = 40


def model_resource(model: str) -> dict[str, str]:
    """The Prefect event resource standing for one Numerai model.

    Its id uses the model's block name, which is all the webhook receiver knows of the model,
    so that the receiver's numerai.round.opened and the flow's events concern one resource.
    """
    return {
        "prefect.resource.id": model_resource_id(model),
        "prefect.resource.name": model,
    }


def round_resource(round_number: int) -> dict[str, str]:
    """The related resource standing for one round."""
    return {
        "prefect.resource.id": round_resource_id(round_number),
        "prefect.resource.role": "round",
        "prefect.resource.name": f"round {round_number}",
    }


def run_url() -> str | None:
    """The UI page of the current flow run, as this process reaches Prefect (the link in a
    message: the server itself knows no UI URL unless PREFECT_UI_URL is set there)."""
    run_id = flow_run.get_id()
    ui = PREFECT_UI_URL.value()
    if not run_id or not ui:
        return None
    return flow_run_url(str(ui), run_id)


def emit_submission_event(kind: str, model: str, round_number: int, **payload: Any) -> None:
    """Emit numerai.submission.<kind> (uploaded, verified, failed, skipped) for a model's round.

    The payload carries the run's UI link (and the model's task run id when there is one).
    """
    now = dt.datetime.now(dt.UTC)
    run_id = flow_run.get_id()
    payload.setdefault("url", run_url())
    payload.setdefault("flow_run_id", run_id)
    if task_run.get_id():
        payload.setdefault("task_run_id", task_run.get_id())
    resource = {**model_resource(model), "numerai.round": str(round_number)}
    # The label the "about to be missed" automations match on, as on numerai.round.opened.
    if (window := window_at(now)) is not None:
        resource["numerai.window"] = window.name
    if kind == "failed":
        retry = next_retry_after(now)
        # Read by people in the failure notification: "2026-09-01 12:25 UTC".
        payload.setdefault("next_retry", utc_time(retry) if retry else None)
    emit_event(
        event=f"numerai.submission.{kind}",
        resource=resource,
        related=[round_resource(round_number)],
        payload={"model": model, "round": round_number, **payload},
    )


@fresh_task
def publish_round_report(round_number: int, rows: Sequence[Mapping[str, Any]]) -> None:
    """The run's artifacts: the per-model table, and Markdown with the distribution chart."""
    table_columns = (
        "model",
        "round",
        "status",
        "rows",
        "mean",
        "std",
        "corr_with_example",
        "validation",
        "submission_id",
        "verified",
    )
    create_table_artifact(
        table=[{k: row.get(k) for k in table_columns} for row in rows],
        key=ROUND_TABLE_KEY,
        description=f"Round {round_number}: one row per model",
    )
    create_markdown_artifact(
        markdown=round_markdown(round_number, rows),
        key=ROUND_MARKDOWN_KEY,
        description=f"Round {round_number} report",
    )


def latest_histories(models: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The latest rows of each model's history artifact (none for a new model), in one read."""
    keys = {history_key(model): model for model in models}
    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(
                key=ArtifactCollectionFilterKey(any_=list(keys))
            ),
            limit=len(keys),
        )
    found: dict[str, list[dict[str, Any]]] = {model: [] for model in models}
    for artifact in latest:
        data = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
        if artifact.key in keys and isinstance(data, list):
            found[keys[artifact.key]] = [dict(r) for r in data]
    return found


def model_scores(
    credentials: NumeraiCredentials, tournament_number: int, model_id: str, what: str
) -> dict[int, dict[str, Any]] | None:
    """Numerai's scores per round of one model, or None (with a warning) when they cannot be
    read: scores only decorate the history, so they never fail a model. One attempt: the next
    round reads them again."""
    try:
        found = credentials.get_client(tournament_number).round_scores(model_id, SCORED_ROUNDS)
    except Exception as exc:  # whatever went wrong, the model's round stands
        get_run_logger().warning(
            "%s: Numerai's scores could not be read, its history keeps its own: %s", what, exc
        )
        return None
    return {number: asdict(score) for number, score in found.items()}


def add_to_history(
    outcome: Mapping[str, Any],
    scores: Mapping[int, Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """A model's round outcome (a round table row) and its Numerai scores, as a new version of
    its history artifact (described by its summary, score trend and chart) on top of the latest
    rows: `previous`, as the flow read them after taking the model's lease, else read here.

    Called by the model's task as it ends, under the model's lease, so no other run writes the
    history between its read and its write. Histories are a view: if one cannot be read or
    written the round goes on, with a warning, and it is never rewritten from nothing.
    """
    model = str(outcome["model"])
    if previous is None:
        try:
            previous = latest_histories([model])[model]
        except Exception as exc:  # never rewrite a history from nothing
            get_run_logger().warning("History of %s not updated in this run: %s", model, exc)
            return
    rows = apply_scores(merge_history(previous, outcome), scores)
    try:
        create_table_artifact(
            table=rows, key=history_key(model), description=history_markdown(model, rows)
        )
    except Exception as exc:
        get_run_logger().warning("History of %s not updated: %s", model, exc)
