"""The numerapi adapter: timeouts, clear errors, and the calls the flow makes, over real HTTP."""

from __future__ import annotations

import io
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
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
    frame = _live_frame(sandbox)
    submission_id = client.upload_predictions(
        "alpha.csv", model_id=model_id, df=frame, trigger_id="trigger-abc"
    )
    [listed] = client.model_submissions(model_id)
    assert (listed.id, listed.trigger_id, listed.round_number) == (
        submission_id,
        "trigger-abc",
        1000,
    )
    assert listed.inserted_at is not None and listed.inserted_at.tzinfo is not None


def _live_frame(sandbox: Sandbox) -> pd.DataFrame:
    ids = pd.read_parquet(sandbox.store.path("v5.3", "live.parquet", 1000), columns=["era"]).index
    return pd.DataFrame({"id": ids, "prediction": (pd.RangeIndex(len(ids)) / len(ids))})


def test_uploads_at_once_each_carry_their_own_trigger_id(sandbox: Sandbox) -> None:
    """numerapi reads the trigger id from the process's environment; ours is per upload, so a
    round's models can upload at the same time without one taking another's trigger id."""
    for name in ("gamma", "delta", "epsilon", "zeta"):
        sandbox.add_model(name)
    client = client_for(sandbox)
    models = client.get_models()
    frame = _live_frame(sandbox)

    def upload(name: str) -> tuple[str, str]:
        trigger_id = f"trigger-{name}"
        return client.upload_predictions(
            f"{name}.csv", models[name], frame, trigger_id=trigger_id
        ), trigger_id

    with ThreadPoolExecutor(len(models)) as pool:
        submitted = dict(pool.map(upload, models))
    carried = {s.id: s.trigger_id for m in models.values() for s in client.model_submissions(m)}
    assert carried == submitted and len(carried) == len(models) == 6
    assert "TRIGGER_ID" not in os.environ


def test_a_refused_put_raises_and_creates_no_submission(sandbox: Sandbox) -> None:
    """numerapi ignores the PUT's answer and goes on to create a submission without its file."""
    client = client_for(sandbox)
    model_id = client.get_models()["alpha"]
    sandbox.inject(Fault("http_status", status=503, operation="upload"))
    with pytest.raises(NumeraiUnavailable, match=r"/uploads/\S+ answered HTTP 503"):
        client.upload_predictions("alpha.csv", model_id, _live_frame(sandbox))
    assert client.model_submissions(model_id) == []
    sandbox.inject(Fault("http_status", status=403, operation="upload"))
    with pytest.raises(NumeraiQueryError, match="HTTP 403"):
        client.upload_predictions("alpha.csv", model_id, _live_frame(sandbox))
    assert client.model_submissions(model_id) == []
    assert client.upload_predictions("alpha.csv", model_id, _live_frame(sandbox))


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
