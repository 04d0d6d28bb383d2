"""Helpers the integration tests share: background processes that show their log on failure."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from deployments import processes
from deployments.processes import ROOT, free_port, wait_healthy

__all__ = ["ROOT", "background", "free_port", "prefect_worker", "serve_in_thread", "wait_healthy"]


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
