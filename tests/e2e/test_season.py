"""A simulated week of rounds with every fault, on the real deployments, receiver and worker.

`make season` plays four weeks and prints the report; this test plays one week, which deals
every fault scenario over its five rounds (about eight minutes here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.season import SCENARIOS, plan_season, run_season

pytestmark = pytest.mark.integration


def test_a_short_season_deals_every_fault() -> None:
    plans = plan_season(weeks=1, seed=1, first_round=1)
    assert len(plans) == 5  # Tuesday to Friday and the weekend
    dealt = {s for plan in plans for s in plan.scenarios}
    assert dealt == set(SCENARIOS) - {"clean"}
    assert [p.working_minute for p in plans].count(False) == 1  # the outage past the close


@pytest.mark.timeout(1500)
def test_a_week_of_rounds_with_faults_ends_right(tmp_path: Path) -> None:
    figures = run_season(tmp_path, weeks=1, seed=1)
    rounds = {r["number"]: r for r in figures["rounds"]}
    assert figures["rounds_open"] == 5
    assert figures["uploads_after_close"] == 0
    assert figures["duplicate_uploads"] == 0
    assert figures["every_workable_round_covered"], figures["workable_rounds_missed"]
    # The round whose outage outlasts the close is missed, and the user hears about it.
    [missed] = [r for r in rounds.values() if not r["working_minute"]]
    assert missed["missed"] == ["alpha", "beta"]
    assert figures["missed_rounds_notified"] == figures["rounds_missed"] == 1
    for model, verified in figures["verified_before_close"].items():
        assert verified == 4, model
