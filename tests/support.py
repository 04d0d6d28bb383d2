"""Helpers the integration tests share: background processes that show their log on failure."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from deployments import processes
from deployments.processes import ROOT, free_port, wait_healthy

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

__all__ = [
    "ROOT",
    "LogRecords",
    "background",
    "free_port",
    "prefect_worker",
    "runs_of",
    "serve_in_thread",
    "unpooled_deployment",
    "wait_healthy",
]


@contextlib.contextmanager
def background(
    args: list[str], env: Mapping[str, str], log: Path, *, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the project's interpreter (see deployments.processes), whose log's last
    lines are printed when the test fails."""
    with processes.background(args, env, log, cwd=cwd) as process:
        try:
            yield process
        except BaseException:
            print(f"--- last lines of {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
            raise


@contextlib.contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """An ASGI app under uvicorn in a thread, on a free loopback socket; yields its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {"lifespan": "off", "timeout_graceful_shutdown": 2, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start serving")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def prefect_worker(
    pool: str, env: Mapping[str, str], log: Path, worker_type: str = "process"
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A real Prefect worker polling the pool every second."""
    fast = {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    return background(
        ["-m", "prefect", "worker", "start", "--pool", pool, "--type", worker_type],
        {**os.environ, **fast, **env},
        log,
    )


@contextlib.contextmanager
def unpooled_deployment(name: str) -> Iterator[UUID]:
    """A deployment of the real submit-round flow without a work pool: its runs stay Scheduled.

    Deleted afterwards, with its runs.
    """
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.submit_round import submit_round

    async def apply() -> UUID:
        deployment = await submit_round.ato_deployment(name=name)
        return await deployment.aapply()

    deployment_id = asyncio.run(apply())
    try:
        yield deployment_id
    finally:
        with get_client(sync_client=True) as client:
            for run in runs_of(deployment_id):
                client.delete_flow_run(run.id)
            client.delete_deployment(deployment_id)


def runs_of(deployment_id: UUID, trigger_id: str | None = None) -> list[FlowRun]:
    """Flow runs of the deployment (those carrying `trigger_id`, when given), every page."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                limit=200,
                offset=len(runs),
            )
            runs += page
            if len(page) < 200:
                break
    return [r for r in runs if trigger_id is None or r.parameters.get("trigger_id") == trigger_id]


class LogRecords(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)
