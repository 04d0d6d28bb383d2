"""The numerapi adapter: timeouts, clear errors, and the calls the flow makes, over real HTTP."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from blocks import (
    NumeraiAPI,
    NumeraiAuthError,
    NumeraiQueryError,
    NumeraiUnavailable,
    is_transient,
)
from blocks.client import trigger_id_env
from sandbox import Fault, Sandbox


def client_for(sb: Sandbox, *, secret: str | None = None, timeout: float = 2.0) -> NumeraiAPI:
    return NumeraiAPI(sb.public_id, secret or sb.secret_key, api_url=sb.api_url, timeout=timeout)


def test_a_hanging_api_times_out_quickly(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("hang", operation="rounds", seconds=20))
    started = time.monotonic()
    with pytest.raises(NumeraiUnavailable, match="no answer") as caught:
        client_for(sandbox, timeout=0.5).current_round()
    assert time.monotonic() - started < 5
    assert is_transient(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_http_errors_raise_unavailable_at_once(sandbox: Sandbox, status: int) -> None:
    sandbox.inject(Fault("http_status", status=status))
    started = time.monotonic()
    with pytest.raises(NumeraiUnavailable, match=f"HTTP {status}"):
        client_for(sandbox).list_datasets()
    assert time.monotonic() - started < 2  # numerapi alone sleeps 5 s + 10 s here


def test_graphql_errors_are_query_errors_worth_a_retry(sandbox: Sandbox) -> None:
    sandbox.inject(Fault("graphql_error", operation="listDatasets", message="Internal error"))
    with pytest.raises(NumeraiQueryError, match="Internal error") as caught:
        client_for(sandbox).list_datasets()
    assert isinstance(caught.value, ValueError)
    assert is_transient(caught.value)


def test_invalid_keys_are_an_auth_error_never_retried(sandbox: Sandbox) -> None:
    with pytest.raises(NumeraiAuthError, match="Invalid credentials") as caught:
        client_for(sandbox, secret="wrong").get_models()
    assert not is_transient(caught.value)


def test_unreachable_api_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = NumeraiAPI("a", "b", api_url=f"http://127.0.0.1:{port}/", timeout=1)
    with pytest.raises(NumeraiUnavailable, match="cannot connect"):
        client.current_round()


def test_current_round_open_and_closed(sandbox: Sandbox) -> None:
    client = client_for(sandbox)
    current = client.current_round()
    assert current is not None and current.is_open()
    assert current.number == sandbox.current_round.number  # type: ignore[union-attr]
    sandbox.close_round()
    closed = client.current_round()
    assert closed is None or not closed.is_open()


def test_upload_carries_the_trigger_id_and_reads_back(sandbox: Sandbox) -> None:
    client = client_for(sandbox)
    model_id = client.get_models()["alpha"]
    ids = pd.read_parquet(sandbox.store.path("v5.3", "live.parquet", 1000), columns=["era"]).index
    frame = pd.DataFrame({"id": ids, "prediction": range(len(ids))})
    frame["prediction"] = frame["prediction"] / len(ids)
    with trigger_id_env("trigger-abc"):
        submission_id = client.upload_predictions("alpha.csv", model_id=model_id, df=frame)
    [listed] = client.model_submissions(model_id)
    assert (listed.id, listed.trigger_id, listed.round_number) == (
        submission_id,
        "trigger-abc",
        1000,
    )
    assert listed.inserted_at is not None and listed.inserted_at.tzinfo is not None


def test_downloads_show_numerapis_bar_on_a_terminal_only(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    monkeypatch.setattr("sys.stderr", screen)
    dataset = next(n for n in client_for(sandbox).list_datasets() if n.endswith("/live.parquet"))
    client_for(sandbox).download_dataset(dataset, str(tmp_path / "quiet.parquet"))
    assert screen.getvalue() == ""  # a log or a pipe: no bar redrawn in it
    monkeypatch.setattr(screen, "isatty", lambda: True)
    client_for(sandbox).download_dataset(dataset, str(tmp_path / "shown.parquet"))
    assert "100%" in screen.getvalue()
