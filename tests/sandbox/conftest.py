"""Fixtures: real numerapi pointed at the sandbox (`sandbox` itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numerapi
import pytest

from sandbox import Sandbox


@pytest.fixture
def numerai(sandbox: Sandbox) -> Iterator[numerapi.NumerAPI]:
    """A real NumerAPI client pointed at the sandbox."""
    with sandbox.use_as_numerai():
        yield numerapi.NumerAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
