"""The real parts on loopback: prefect.yaml deployed, a process worker, the sandbox."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel
from deployments.process_pool import ensure_process_pool
from sandbox import Sandbox
from tests.flows.conftest import rank_first_feature
from tests.support import ROOT, background, free_port, prefect_worker, wait_healthy

POOL = "numerai-local"


def _prefect(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def prefect_env(prefect_server: str) -> dict[str, str]:
    """Environment for prefect subprocesses: this session's server, fast polling and retries."""
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "NUMERAI_RETRY_BASE_SECONDS": "0.2",
        "NUMERAI_API_RETRIES": "2",
    }


def _deploy(env: dict[str, str]) -> None:
    ensure_process_pool(POOL)  # as `numerai-prefect setup` makes it
    _prefect("--no-prompt", "deploy", "--all", env=env)


@pytest.fixture(scope="session")
def deployed(prefect_env: dict[str, str]) -> None:
    """The project's own prefect.yaml, deployed with `prefect deploy --all`."""
    _deploy(prefect_env)


@pytest.fixture
def still_deployed(deployed: None, prefect_env: dict[str, str]) -> None:
    """Deployed again if another test (the CLI's teardown) removed the deployments meanwhile."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            for name in ("round", "round-retry"):
                client.read_deployment_by_name(f"submit-round/{name}")
        except ObjectNotFound:
            _deploy(prefect_env)


@pytest.fixture(scope="session")
def worker(
    deployed: None, prefect_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[bytes]]:
    """A real process worker polling the pool every second (stopped before the server)."""
    with prefect_worker(POOL, prefect_env, tmp_path_factory.mktemp("worker") / "worker.log") as w:
        yield w


@dataclass
class LiveRound:
    """A sandbox with an open round whose number no other test uses, and saved blocks."""

    sandbox: Sandbox
    models: dict[str, str]  # model name -> block name

    def submissions(self, name: str) -> list:
        """The sandbox's submissions of one model."""
        return self.sandbox.submissions(self.sandbox.models[name])


@pytest.fixture
def live_round(still_deployed: None, tmp_path: Path) -> Iterator[LiveRound]:
    with Sandbox(tmp_path / "sandbox", seed=7, size="tiny") as sandbox:
        # The deployed runs keep live data under the project's .numerai/data by round number;
        # a fresh number per test keeps them apart.
        sandbox.open_round(number=random.randint(100_000, 999_999))
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=2,
        ).save("numerai", overwrite=True)
        models = {}
        for name in ("alpha", "beta"):
            sandbox.add_model(name)
            predictor = tmp_path / f"{name}.pkl"
            predictor.write_bytes(cloudpickle.dumps(rank_first_feature))
            NumeraiModel(model_name=name, predictor_path=str(predictor), feature_set="small").save(
                name, overwrite=True
            )
            models[name] = name
        # Retry runs without a model list take every saved model: only this test's.
        with get_client(sync_client=True) as client:
            for document in client.read_block_documents_by_type("numerai-model"):
                if document.name not in models:
                    client.delete_block_document(document.id)
        yield LiveRound(sandbox, models)


def wait_for_final(flow_run_id: object, timeout: float = 120) -> FlowRun:
    """Poll the server until the run is final."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)  # type: ignore[arg-type]
            if run.state and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"flow run {run.name} still {run.state_name} after {timeout} s")
            time.sleep(0.5)


@pytest.fixture(scope="session")
def receiver(
    deployed: None, prefect_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The webhook receiver as its own uvicorn process: (base URL, secret)."""
    import secrets

    secret = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["-m", "deployments.receiver", "--host", "127.0.0.1", "--port", str(port)]
    # A round's run starts 2 s after its first webhook (5 s by default): the models' calls
    # from the sandbox come within milliseconds of each other.
    env = {**prefect_env, "NUMERAI_WEBHOOK_SECRET": secret, "NUMERAI_WEBHOOK_GATHER_SECONDS": "2"}
    log = tmp_path_factory.mktemp("receiver") / "receiver.log"
    with background(args, env, log) as process:
        wait_healthy(f"{url}/health", process, log)
        yield url, secret
