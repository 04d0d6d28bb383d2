"""Fixtures: real numerapi pointed at the sandbox (`sandbox` itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numerapi
import pandas as pd
import pytest

from sandbox import Sandbox


@pytest.fixture
def numerai(sandbox: Sandbox) -> Iterator[numerapi.NumerAPI]:
    """A real NumerAPI client pointed at the sandbox."""
    with sandbox.use_as_numerai():
        yield numerapi.NumerAPI(sandbox.public_id, sandbox.secret_key, show_progress_bars=False)


def valid_predictions(sandbox: Sandbox, round_number: int | None = None) -> pd.DataFrame:
    """A Classic submission the sandbox accepts: every live id of the round, ranks in (0, 1]."""
    number = round_number or sandbox.current_round.number  # type: ignore[union-attr]
    ids = pd.read_parquet(sandbox.store.path("v5.3", "live.parquet", number), columns=["era"])
    ranks = pd.Series(range(1, len(ids) + 1), dtype="float64") / len(ids)
    return pd.DataFrame({"id": ids.index, "prediction": ranks.to_numpy()})
