"""Retry, cache and lease policy of every task, in one place, from the settings of the moment.

Tasks are made with `fresh_task` (no cache); calls to Numerai get their retries at call time
through `with_api_retries`, so a changed setting applies to the next run without a new import.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from blocks import is_transient

from .settings import FlowSettings, flow_settings

T = TypeVar("T", bound=Task[Any, Any])


class NotVerified(RuntimeError):
    """Numerai does not (yet) list the submission just made."""


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only failures that a later attempt can fix (timeouts, 5xx, GraphQL hiccups)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc) or isinstance(exc, NotVerified)
    return False


# No cache policy: every task of the flows is a side effect or reads what changes, so a run must
# never be answered from an earlier one's result (and no inputs, keys included, get hashed).
fresh_task = task(cache_policy=NO_CACHE)


def patient_delays(patience: float, base: float, longest: float) -> list[float]:
    """Retry delays doubling from `base` up to `longest`, adding up to at most `patience`."""
    delays: list[float] = []
    delay = base
    while len(delays) < 50 and sum(delays) + delay <= patience:  # Prefect takes 50 at most
        delays.append(delay)
        delay = min(2 * delay, longest)
    return delays


def api_retry_options(settings: FlowSettings, *, patient: bool = False) -> dict[str, Any]:
    """Task options for a Numerai call: backoff on transient failures only.

    `patient` (a run's first call) keeps trying for round_patience_seconds when that buys more
    retries than the usual ladder, backing off up to 12 base delays.
    """
    base = settings.retry_base_seconds
    options: dict[str, Any] = {
        "retries": settings.api_retries,
        "retry_delay_seconds": exponential_backoff(base),
        "retry_jitter_factor": 0.2,
        "retry_condition_fn": retry_if_transient,
    }
    if patient:
        ladder = patient_delays(settings.round_patience_seconds, base, longest=12 * base)
        if len(ladder) > settings.api_retries:
            options.update(retries=len(ladder), retry_delay_seconds=ladder)
    return options


def with_api_retries(api_call: T, *, patient: bool = False) -> T:
    """The task with the API retry policy of the current settings."""
    return api_call.with_options(**api_retry_options(flow_settings(), patient=patient))  # type: ignore[return-value]
