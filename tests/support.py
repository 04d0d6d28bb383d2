"""Helpers the integration tests share: free ports and background processes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on (closed again at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate a process, and kill it if it does not end in time."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def background(
    args: list[str], env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A process of the project's interpreter in the project folder, stopped on exit."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield process
        except BaseException:
            out.flush()
            print(f"--- last lines of {log.name} ---\n{log.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            stop(process)


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
