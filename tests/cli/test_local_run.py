"""`make run` works in a space of its own: a user's exported Prefect server is never changed."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import cloudpickle
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel
from deployments import local
from tests.flows.conftest import rank_first_feature
from tests.support import free_port

pytestmark = pytest.mark.integration


def _models_file(tmp_path: Path, name: str) -> Path:
    predictor = tmp_path / "predict.pkl"
    predictor.write_bytes(cloudpickle.dumps(rank_first_feature))
    path = tmp_path / "models.toml"
    path.write_text(
        f'[[model]]\nname = "{name}"\npredictor = "{predictor}"\nfeature_set = "small"\n'
    )
    return path


@pytest.fixture(autouse=True)
def own_prefect_workers() -> Iterator[None]:
    """Prefect keeps one events and one log worker per process, bound to the server they first
    sent to: those `make run` used die with its server, so the next tests get new ones."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    yield
    EventsWorker.drain_all()
    APILogWorker.drain_all()


@pytest.fixture
def users_blocks(prefect_server: str) -> Iterator[list[tuple[str, str]]]:
    """(name, type slug) of the blocks a test saves as the user's; deleted afterwards."""
    saved: list[tuple[str, str]] = []
    yield saved
    with get_client(sync_client=True) as client:
        for name, slug in saved:
            with contextlib.suppress(ObjectNotFound):
                document = client.read_block_document_by_name(name, block_type_slug=slug)
                client.delete_block_document(document.id)


def test_make_run_leaves_the_exported_server_and_its_setup_alone(
    prefect_server: str,
    users_blocks: list[tuple[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With PREFECT_API_URL exported (the README's production steps), `make run` used to save
    its sandbox keys over the user's `numerai` block; now it runs on a server of its own."""
    name = f"local_{uuid.uuid4().hex[:6]}"
    block = name.replace("_", "-")
    users_keys = NumeraiCredentials(public_id="USER-ID", secret_key=SecretStr("USER-SECRET"))
    users_keys.save("numerai", overwrite=True)
    NumeraiModel(model_name=name, predictor_path="models/mine/model.pkl").save(block)
    users_blocks += [("numerai", "numerai-credentials"), (block, "numerai-model")]
    monkeypatch.delenv("NUMERAI_PUBLIC_ID", raising=False)
    monkeypatch.delenv("NUMERAI_SECRET_KEY", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    started = dt.datetime.now(dt.UTC)

    code = local.main(
        ["--models", str(_models_file(tmp_path, name)), "--workdir", str(tmp_path / "run"),
         "--port", str(free_port())]
    )  # fmt: skip

    assert code == 0
    kept = cast(NumeraiCredentials, NumeraiCredentials.load("numerai"))
    assert (kept.public_id, kept.secret_key.get_secret_value()) == ("USER-ID", "USER-SECRET")
    assert cast(NumeraiModel, NumeraiModel.load(block)).predictor_path == "models/mine/model.pkl"
    with get_client(sync_client=True) as client:
        names = {d.name for d in client.read_block_documents()}
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime.model_validate({"after_": started})
            )
        )
    assert not any(n and n.startswith("make-run") for n in names)
    assert [r.name for r in runs if r.name.startswith("round-")] == []


def test_make_run_names_the_setup_it_refuses_to_touch(
    users_blocks: list[tuple[str, str]],
) -> None:
    NumeraiCredentials(public_id="USER-ID", secret_key=SecretStr("USER-SECRET")).save(
        "numerai", overwrite=True
    )
    users_blocks.append(("numerai", "numerai-credentials"))
    found = local.foreign_setup()
    assert "credentials block numerai" in found
    assert not any(item.startswith("credentials block make-run") for item in found)


def test_make_run_refuses_a_busy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(SystemExit, match=f"port {port} is in use.*make run PORT="):
            local.main(["--models", str(_models_file(tmp_path, "x")), "--port", str(port)])
