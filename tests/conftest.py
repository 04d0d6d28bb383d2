"""Shared fixtures: one real local Prefect server for the whole session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Offline and quick: no telemetry, short retry backoff for API calls that fail on purpose.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("NUMERAI_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect server on loopback with a fresh database (started once, ~15 s)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())
