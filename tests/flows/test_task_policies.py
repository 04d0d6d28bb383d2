"""Every task of the flows runs afresh, and Numerai calls get the retry policy of the moment."""

from __future__ import annotations

import pytest
from prefect.cache_policies import NO_CACHE
from prefect.tasks import Task

from flows import live, reporting, submission
from flows.policies import NotVerified, api_retrying, retry_if_transient, with_api_retries


def test_no_task_of_the_flows_has_a_cache_policy() -> None:
    found = {
        name: value
        for module in (live, submission, reporting)
        for name, value in vars(module).items()
        if isinstance(value, Task)
    }
    assert {"download_live_data", "submit_model", "read_live_frames"} <= set(found)
    assert "publish_round_report" in found
    cached = sorted(name for name, value in found.items() if value.cache_policy is not NO_CACHE)
    assert cached == [], f"tasks with a cache policy: {cached}"


def test_api_retries_follow_the_settings_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMERAI_API_RETRIES", "2")
    assert with_api_retries(submission.account_models).retries == 2
    monkeypatch.setenv("NUMERAI_API_RETRIES", "6")
    account = with_api_retries(submission.account_models)
    assert account.retries == 6
    assert account.retry_condition_fn is retry_if_transient
    assert account.cache_policy is NO_CACHE
    monkeypatch.setenv("NUMERAI_ROUND_PATIENCE_SECONDS", "900")
    monkeypatch.setenv("NUMERAI_RETRY_BASE_SECONDS", "5")
    assert with_api_retries(submission.resolve_round, patient=True).retries == 17


def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from flows.settings import flow_settings

    monkeypatch.setenv("NUMERAI_MODEL_CONCURRENCY", "many")
    with pytest.raises(ValidationError, match="model_concurrency"):
        flow_settings()


def test_calls_inside_a_model_task_retry_transient_failures_only(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A model's own calls (lookup, upload, verify) get the same policy without task runs."""
    import requests

    monkeypatch.setenv("NUMERAI_API_RETRIES", "2")
    monkeypatch.setenv("NUMERAI_RETRY_BASE_SECONDS", "0.01")
    calls: list[str] = []

    def flaky(error: Exception) -> str:
        calls.append(type(error).__name__)
        raise error

    def attempts(error: Exception) -> int:
        calls.clear()
        with pytest.raises(type(error)):
            api_retrying("a call")(flaky, error)
        return len(calls)

    assert attempts(requests.ConnectionError("reset")) == 3  # 1 + NUMERAI_API_RETRIES
    assert attempts(NotVerified("not listed yet")) == 3
    assert attempts(ValueError("bad input")) == 1  # never retried: a repeat cannot fix it
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 4  # two for each retried error, each saying what failed and why
    assert retries[0].startswith("a call failed (ConnectionError: reset), attempt 1: retrying in")
