"""Helpers the integration tests share: background processes that show their log on failure."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from deployments import processes
from deployments.processes import ROOT, free_port, wait_healthy

__all__ = ["ROOT", "background", "free_port", "prefect_worker", "wait_healthy"]


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
