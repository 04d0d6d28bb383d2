"""The names this project gives to things in Prefect, made in one place.

Flows, the webhook receiver and the CLI import them from here, so a run, a block, a tag, a
concurrency limit or an event resource found by one is the one another made.
"""

from __future__ import annotations

ROUND_FLOW = "submit-round"  # the flow every deployment runs
MODEL_TASK = "submit-model"  # one model's work inside a round run
WEBHOOK_TAG = "numerai-webhook"  # on every run the webhook receiver creates
RETRY_TAG = "retry"
HISTORY_PREFIX = "numerai-history-"
MODEL_LIMIT_PREFIX = "numerai-model-"
CREDENTIALS_BLOCK = "numerai"  # the Numerai Credentials block `setup` saves and runs load
# `make run` keeps to blocks of its own, so it can tell them from a setup's and never writes those.
LOCAL_RUN_PREFIX = "make-run"


def model_block_name(model_name: str) -> str:
    """A model's block name: block names allow lowercase letters, digits and dashes only."""
    return model_name.lower().replace("_", "-")


def local_run_block_name(model_name: str | None = None) -> str:
    """`make run`'s credentials block (no model), or its block for a model."""
    if model_name is None:
        return LOCAL_RUN_PREFIX
    return f"{LOCAL_RUN_PREFIX}-{model_block_name(model_name)}"


def round_run_name(round_number: int, size: str | None = None) -> str:
    """The name of a round's submit-round run: round-N (round-N-SIZE for a size group's run)."""
    return f"round-{round_number}" + (f"-{size}" if size else "")


def model_run_name(round_number: int, model_name: str) -> str:
    """The name of a model's task run in a round: round-N-model (its name on Numerai)."""
    return f"{round_run_name(round_number)}-{model_name}"


def model_limit_name(model_name: str) -> str:
    """The global concurrency limit (one slot) that lets one run at a time work on a model."""
    return f"{MODEL_LIMIT_PREFIX}{model_block_name(model_name)}"


def model_resource_id(model_name_or_block: str) -> str:
    """The Prefect event resource id of a model (the receiver knows only its block name)."""
    return f"numerai.model.{model_block_name(model_name_or_block)}"


def round_resource_id(round_number: int | str) -> str:
    """The Prefect event resource id of a round."""
    return f"numerai.round.{round_number}"


def history_key(model_name: str) -> str:
    """Artifact key of a model's history (lowercase letters, digits and dashes only)."""
    slug = "".join(c if c.isalnum() else "-" for c in model_name.lower()).strip("-")
    return f"{HISTORY_PREFIX}{slug}"


def trigger_key(model_block: str | None, trigger_id: str) -> str:
    """Idempotency key of the run a webhook trigger creates (for one model, or for all)."""
    return f"numerai-trigger-{model_block or 'all'}-{trigger_id}"


def submission_filename(model_name: str, round_number: int) -> str:
    """The file name a model's predictions are uploaded under."""
    return f"{model_name}-{round_run_name(round_number)}.csv"


def flow_run_url(ui_url: str, run_id: object) -> str:
    """A flow run's page in the Prefect UI at `ui_url`."""
    return f"{ui_url.rstrip('/')}/runs/flow-run/{run_id}"


def trigger_variable_name(model_block: str) -> str:
    """The Prefect variable holding a model's latest webhook trigger (see model.triggers)."""
    return f"numerai-trigger-{model_block}"
