"""Two runs of one round at once (the webhook's and a retry's): one upload per model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from .conftest import Round, rank_first_feature


def slow_rank(live_features: pd.DataFrame, live_benchmark_models: pd.DataFrame) -> Any:
    """Takes long enough that a second run arrives while the first is predicting."""
    import time

    time.sleep(3)
    return rank_first_feature(live_features, live_benchmark_models)


def test_overlapping_runs_upload_once_and_the_later_one_skips(open_round: Round) -> None:
    block = open_round.save_model("overlap", slow_rank)
    with ThreadPoolExecutor(2) as pool:
        states = list(pool.map(lambda _: open_round.run([block]), range(2)))
    assert all(state.is_completed() for state in states), [s.message for s in states]
    model_id = open_round.sandbox.models["overlap"]
    assert len(open_round.sandbox.submissions(model_id)) == 1
    statuses = sorted(report.status for state in states for report in state.result())
    assert statuses == ["already submitted", "verified"]
