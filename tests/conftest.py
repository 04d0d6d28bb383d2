"""Shared fixtures: one real local Prefect server for the whole session."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox import Sandbox

assert "prefect" not in sys.modules, "tests/conftest.py must set Prefect's settings first"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Offline and quick: no telemetry, short retry backoff for API calls that fail on purpose.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NUMERAI_RETRY_BASE_SECONDS", "0.2")
# Round resolution waits out outages for 15 min in production; tests that want it say so.
os.environ.setdefault("NUMERAI_ROUND_PATIENCE_SECONDS", "0")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
# The session's Prefect server, chosen before Prefect is imported: every thread and subprocess
# of the tests reads it (threads do not inherit a settings context), and a user's own
# PREFECT_API_URL or profile is never touched.
_PORT = _free_port()
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{_PORT}/api"
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="numerai-tests-prefect-")
# The test server frees expired leases every second, so a killed run's model comes back soon.
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1",
    "PREFECT_UI_ENABLED": "false",
}


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `prefect server start` on loopback with a fresh database, for the whole session.

    On PostgreSQL (a new database on the server NUMERAI_TEST_DATABASE_URL names, as in CI and
    production), else on SQLite. A real server, not prefect_test_harness's ephemeral one: only a
    real server reclaims expired concurrency leases, which keep a killed run from holding a model.
    """
    from deployments.server import TEST_DATABASE_ENV, throwaway_prefect_server

    home = tmp_path_factory.mktemp("prefect-server")
    admin_url = os.environ.get(TEST_DATABASE_ENV)
    with throwaway_prefect_server(
        home, _PORT, SERVER_SETTINGS, own=True, postgres_admin_url=admin_url
    ) as api_url:
        yield api_url


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A started sandbox with models "alpha" and "beta" and round 1000 open."""
    from sandbox import Sandbox

    sb = Sandbox(tmp_path / "data", seed=0)
    sb.add_model("alpha")
    sb.add_model("beta")
    sb.open_round()
    with sb:
        yield sb
