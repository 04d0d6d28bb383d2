"""Shared fixtures: one real local Prefect server for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox import Sandbox

# Offline and quick: no telemetry, short retry backoff for API calls that fail on purpose.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NUMERAI_RETRY_BASE_SECONDS", "0.2")
# Round resolution waits out outages for 15 min in production; tests that want it say so.
os.environ.setdefault("NUMERAI_ROUND_PATIENCE_SECONDS", "0")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server on loopback with a fresh database (started once, ~15 s)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


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
