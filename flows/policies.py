"""Retry and cache policy of every task, in one place, from the settings of the moment.

Tasks are made with `fresh_task` (no cache); a round's calls to Numerai get their retries at call
time through `with_api_retries`, so a changed setting applies to the next run without a new
import. Inside a model's task its own calls (lookup, upload, verify) retry by `api_retrying`, the
same policy without a task run per call: a round of many models costs the server a task run per
model, not five.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import tenacity
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import MissingContextError
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from blocks import is_transient

from .settings import FlowSettings, flow_settings

T = TypeVar("T", bound=Task[Any, Any])
P = ParamSpec("P")
R = TypeVar("R")


class NotVerified(RuntimeError):
    """Numerai does not (yet) list the submission just made."""


def worth_retrying(exc: BaseException) -> bool:
    """Whether a later attempt can fix the failure (timeouts, 5xx, GraphQL hiccups, a
    submission Numerai does not list yet)."""
    return is_transient(exc) or isinstance(exc, NotVerified)


def retry_if_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only failures that a later attempt can fix (timeouts, 5xx, GraphQL hiccups)."""
    try:
        state.result()
    except Exception as exc:
        return worth_retrying(exc)
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


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger in a flow or task run (the UI shows it), else this module's."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _log_retry(what: str) -> Callable[[tenacity.RetryCallState], None]:
    def log(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        _logger().warning(
            "%s failed (%s: %s), attempt %d: retrying in %.0f s",
            *(what, type(error).__name__, error, state.attempt_number, wait),
        )

    return log


def api_retrying(what: str) -> tenacity.Retrying:
    """The API retry policy of a call made inside a task, as the settings say now: transient
    failures only, `api_retries` more attempts, delays doubling from `retry_base_seconds` with up
    to 20% jitter (as `with_api_retries` gives a task); the last failure is raised as it was.

    `what` names the call in the warning logged before each retry.
    """
    settings = flow_settings()
    base = settings.retry_base_seconds
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(settings.api_retries + 1),
        wait=tenacity.wait_exponential_jitter(multiplier=base, jitter=0.2 * base),
        retry=tenacity.retry_if_exception(worth_retrying),
        before_sleep=_log_retry(what),
        reraise=True,
    )


def call_with_api_retries(what: str, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`call(*args, **kwargs)` under `api_retrying`."""
    return api_retrying(what)(call, *args, **kwargs)
