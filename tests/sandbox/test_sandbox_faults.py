"""Every fault kind, observed through numerapi (or plain requests where numerapi would hang)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numerapi
import pandas as pd
import pytest
import requests

from sandbox import Fault, Sandbox

from .conftest import valid_predictions

ROUND_QUERY = {"query": "{ rounds(tournament: 8, number: 0) { number } }"}


def test_graphql_error_once(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    sandbox.inject(Fault("graphql_error", operation="rounds", message="boom"))
    assert numerai.get_models()  # other operations are untouched
    with pytest.raises(ValueError, match="boom"):
        numerai.get_current_round()
    assert numerai.get_current_round() == 1000  # consumed
    assert [r for r in sandbox.requests if r[0] == "rounds"] == [
        ("rounds", "err"),
        ("rounds", "ok"),
    ]


def test_http_status_gives_keyerror_data(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numerapi.utils.time, "sleep", lambda _s: None)
    sandbox.inject(Fault("http_status", operation="rounds", times=3, status=503))
    with pytest.raises(KeyError, match="data"):
        numerai.get_current_round()
    assert sandbox.requests == [("rounds", "err")] * 3
    assert numerai.get_current_round() == 1000


def test_http_status_retried_by_numerapi(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(numerapi.utils.time, "sleep", lambda _s: None)
    sandbox.inject(Fault("http_status", times=2, status=502))
    assert numerai.get_current_round() == 1000


def test_hang_does_not_block_other_requests(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("hang", operation="rounds", seconds=1.0))
    with pytest.raises(requests.Timeout):
        requests.post(sandbox.api_url, json=ROUND_QUERY, timeout=0.3)
    started = time.monotonic()
    ok = requests.post(sandbox.api_url, json=ROUND_QUERY, timeout=5)
    assert ok.json() == {"data": {"rounds": [{"number": 1000}]}}
    assert time.monotonic() - started < 0.5


def test_stop_releases_hang(tmp_path: Path) -> None:
    sb = Sandbox(tmp_path)
    sb.open_round()
    sb.start()
    sb.inject(Fault("hang", seconds=60))
    t = threading.Thread(
        target=requests.post, args=(sb.api_url,), kwargs={"json": ROUND_QUERY, "timeout": 30}
    )
    t.start()
    time.sleep(0.2)
    started = time.monotonic()
    sb.stop()
    t.join(5)
    assert time.monotonic() - started < 5
    assert not t.is_alive()


def test_slow_answers_correctly(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    sandbox.inject(Fault("slow", operation="rounds", seconds=0.3))
    started = time.monotonic()
    assert numerai.get_current_round() == 1000
    assert time.monotonic() - started >= 0.3


def test_truncate_download_then_resume(
    sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path
) -> None:
    dest = tmp_path / "live.parquet"
    sandbox.inject(Fault("truncate_download"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        numerai.download_dataset("v5.3/live.parquet", str(dest))
    assert not dest.exists()
    numerai.download_dataset("v5.3/live.parquet", str(dest))
    assert dest.read_bytes() == sandbox.store.path("v5.3", "live.parquet", 1000).read_bytes()


def test_corrupt_download(sandbox: Sandbox, numerai: numerapi.NumerAPI, tmp_path: Path) -> None:
    dest = tmp_path / "live.parquet"
    sandbox.inject(Fault("corrupt_download", operation="download"))
    numerai.download_dataset("v5.3/live.parquet", str(dest))
    original = sandbox.store.path("v5.3", "live.parquet", 1000).read_bytes()
    assert len(dest.read_bytes()) == len(original)
    assert dest.read_bytes() != original
    with pytest.raises(Exception):  # noqa: B017 - any parquet error will do
        pd.read_parquet(dest)


def test_drop_upload_fails_create_submission(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    sandbox.inject(Fault("drop_upload"))
    preds = valid_predictions(sandbox)
    with pytest.raises(ValueError, match=r"File not found: predictions\.csv"):
        numerai.upload_predictions(df=preds, model_id=sandbox.models["alpha"])
    assert len(sandbox.uploads) == 1
    assert sandbox.submissions() == []
    assert numerai.upload_predictions(df=preds, model_id=sandbox.models["alpha"])
    assert len(sandbox.submissions()) == 1


def test_clear_faults_and_bad_kind(sandbox: Sandbox, numerai: numerapi.NumerAPI) -> None:
    sandbox.inject(Fault("graphql_error", times=5))
    sandbox.clear_faults()
    assert numerai.get_current_round() == 1000
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")
