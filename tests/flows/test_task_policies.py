"""Every task of the flows runs afresh, and Numerai calls get the retry policy of the moment."""

from __future__ import annotations

import pytest
from prefect.cache_policies import NO_CACHE
from prefect.tasks import Task

from flows import live, reporting, submission
from flows.policies import retry_if_transient, with_api_retries


def test_no_task_of_the_flows_has_a_cache_policy() -> None:
    found = {
        name: value
        for module in (live, submission, reporting)
        for name, value in vars(module).items()
        if isinstance(value, Task)
    }
    assert {"download_live_data", "prepare_submission", "upload", "verify"} <= set(found)
    assert {"submit_model", "read_live_frames"} <= set(found)
    assert {"publish_round_report", "update_model_histories"} <= set(found)
    cached = sorted(name for name, value in found.items() if value.cache_policy is not NO_CACHE)
    assert cached == [], f"tasks with a cache policy: {cached}"


def test_api_retries_follow_the_settings_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMERAI_API_RETRIES", "2")
    assert with_api_retries(submission.upload).retries == 2
    monkeypatch.setenv("NUMERAI_API_RETRIES", "6")
    upload = with_api_retries(submission.upload)
    assert upload.retries == 6
    assert upload.retry_condition_fn is retry_if_transient
    assert upload.cache_policy is NO_CACHE
    monkeypatch.setenv("NUMERAI_ROUND_PATIENCE_SECONDS", "900")
    monkeypatch.setenv("NUMERAI_RETRY_BASE_SECONDS", "5")
    assert with_api_retries(submission.resolve_round, patient=True).retries == 17


def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from flows.settings import flow_settings

    monkeypatch.setenv("NUMERAI_MODEL_CONCURRENCY", "many")
    with pytest.raises(ValidationError, match="model_concurrency"):
        flow_settings()
