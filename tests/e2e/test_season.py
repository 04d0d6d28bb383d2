"""A simulated week of rounds with every fault, on the real deployments, receiver and worker.

`make season` plays seasons and prints their reports; this test plays one week, which deals
every fault scenario over its five rounds, with a seed it draws itself (printed, so a failure
can be replayed: NUMERAI_SEASON_SEED=N, or `make season SEEDS=N WEEKS=1`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from benchmarks.season import SCENARIOS, explanation_lines, plan_season, run_season

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", range(1, 21))
def test_a_short_season_deals_every_fault(seed: int) -> None:
    plans = plan_season(weeks=1, seed=seed, first_round=1)
    assert len(plans) == 5  # Tuesday to Friday and the weekend
    dealt = {s for plan in plans for s in plan.scenarios}
    assert dealt == set(SCENARIOS) - {"clean"}
    # The outage past the close leaves its round without a working minute, even when a
    # shorter outage is dealt to the same round.
    [past_close] = [p for p in plans if "outage-past-close" in p.scenarios]
    assert not past_close.working_minute
    assert [p.working_minute for p in plans].count(False) == 1


def test_overlapping_outages_last_until_the_later_one_ends() -> None:
    # Seed 5 deals both outages to its Tuesday: the shorter one must not hide the longer.
    tuesday = plan_season(weeks=1, seed=5, first_round=1)[0]
    assert {"outage", "outage-past-close"} <= set(tuesday.scenarios)
    ends = [f.until for f in tuesday.faults if f.until is not None]
    assert tuesday.outage_until == max(e for e in ends if e is not None) >= tuesday.closes
    assert not tuesday.working_minute


@pytest.mark.timeout(1500)
def test_a_week_of_rounds_with_faults_ends_right(tmp_path: Path) -> None:
    seed = int(os.environ.get("NUMERAI_SEASON_SEED") or random.SystemRandom().randint(1, 10**6))
    print(f"season seed {seed} (replay: NUMERAI_SEASON_SEED={seed})")
    figures = run_season(
        tmp_path, weeks=1, seed=seed, database_url=os.environ.get("NUMERAI_TEST_DATABASE_URL")
    )
    why = "\n".join([f"seed {seed}", *explanation_lines(figures)])
    assert figures["rounds_open"] == 5
    assert figures["uploads_after_close"] == 0, why
    assert figures["duplicate_uploads"] == 0, why
    assert figures["every_workable_round_covered"], why
    # The round whose outage outlasts the close is missed, and the user hears about it.
    [missed] = [r for r in figures["rounds"] if not r["working_minute"]]
    assert missed["missed"] == ["alpha", "beta"], why
    assert figures["missed_rounds_notified"] == figures["rounds_missed"] == 1, why
    for model, verified in figures["verified_before_close"].items():
        assert verified == 4, (model, why)
