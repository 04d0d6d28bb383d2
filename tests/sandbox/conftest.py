"""Fixtures: a started Sandbox with models alpha/beta and an open round, and numerapi on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numerapi
import pytest

from sandbox import Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A started sandbox with models "alpha" and "beta" and round 1000 open."""
    sb = Sandbox(tmp_path / "data", seed=0)
    sb.add_model("alpha")
    sb.add_model("beta")
    sb.open_round()
    with sb:
        yield sb


@pytest.fixture
def numerai(sandbox: Sandbox) -> Iterator[numerapi.NumerAPI]:
    """A real NumerAPI client pointed at the sandbox."""
    with sandbox.use_as_numerai():
        yield numerapi.NumerAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)
