"""Every task of the flows runs afresh: none may be answered from an earlier result."""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE
from prefect.tasks import Task

from flows import reporting, tasks


def test_no_task_of_the_flows_has_a_cache_policy() -> None:
    found = {
        name: value
        for module in (tasks, reporting)
        for name, value in vars(module).items()
        if isinstance(value, Task)
    }
    assert {"download_live_data", "prepare_submission", "upload", "verify"} <= set(found)
    assert {"publish_round_report", "update_model_histories"} <= set(found)
    cached = sorted(name for name, value in found.items() if value.cache_policy is not NO_CACHE)
    assert cached == [], f"tasks with a cache policy: {cached}"
