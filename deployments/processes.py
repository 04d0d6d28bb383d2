"""Background processes: the local stack, the benchmarks and the tests start them the same way.

A free loopback port, `python -m ...` of this interpreter in the background with its output in
a log (stopped on exit, killed if it will not stop), and a wait until its health URL answers.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

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
    args: list[str], env: Mapping[str, str], log: Path, *, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """`python *args` with this interpreter, its output appended to `log`, stopped on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our interpreter, the caller's fixed arguments
            [sys.executable, *args], cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            stop(process)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    """Poll GET `url` until it answers 200; an error naming the log if the process ends first
    or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited ({process.returncode}); see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.2)
