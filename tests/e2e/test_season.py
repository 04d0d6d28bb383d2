"""A simulated week of rounds with every fault, on the real deployments, receiver and worker.

`make season` plays seasons and prints their reports; this test plays one week, which deals
every fault scenario over its five rounds, with a seed it draws itself (printed, so a failure
can be replayed: NUMERAI_SEASON_SEED=N, or `make season SEEDS=N WEEKS=1`).
"""

from __future__ import annotations

import datetime as dt
import os
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.client.schemas.objects import StateType

from benchmarks.season import (
    SCENARIOS,
    Season,
    explanation_lines,
    plan_season,
    run_season,
    unused_round_numbers,
)
from deployments.receiver import RoundWebhook
from sandbox import Sandbox


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


def test_a_season_numbers_its_rounds_as_the_receiver_takes_them_and_no_earlier_one_did(
    tmp_path: Path,
) -> None:
    first = unused_round_numbers(20, tmp_path)
    # The receiver refuses a webhook whose round number no real round could have.
    RoundWebhook.model_validate({"triggerId": "t", "roundNumber": first + 19})
    for number in range(first, first + 20):
        (tmp_path / "v5.3" / f"round-{number}").mkdir(parents=True)
    again = unused_round_numbers(20, tmp_path)
    assert not set(range(first, first + 20)) & set(range(again, again + 20))


def test_the_clock_stands_still_while_every_run_waits_to_start(tmp_path: Path) -> None:
    sandbox, season = Sandbox(tmp_path), Season(tmp_path)
    sandbox.set_clock(dt.datetime(2026, 1, 6, 12, tzinfo=dt.UTC), season.speed)
    runs: list[Any] = [SimpleNamespace(name="round", state_type=StateType.PENDING)]
    season.active_runs = lambda: runs  # type: ignore[method-assign]
    season.tick(sandbox)
    held, first = season._held, sandbox._clock
    season.tick(sandbox)
    assert held is not None and first is not None and sandbox._clock is not None
    # The simulated time stays where it was held while its wall anchor moves on.
    assert sandbox._clock[0] == held and sandbox._clock[1] > first[1]
    # Once a run is at work, the clock runs again: ticks leave it alone.
    runs.append(SimpleNamespace(name="round-2", state_type=StateType.RUNNING))
    running = sandbox._clock
    season.tick(sandbox)
    assert sandbox._clock is running and season._held is None


@pytest.mark.integration
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
    assert figures["webhooks_refused"] == 0, why  # every round started from its webhook
    assert figures["every_workable_round_covered"], why
    # The round whose outage outlasts the close is missed, and the user hears about it.
    [missed] = [r for r in figures["rounds"] if not r["working_minute"]]
    assert missed["missed"] == ["alpha", "beta"], why
    assert figures["missed_rounds_notified"] == figures["rounds_missed"] == 1, why
    for model, verified in figures["verified_before_close"].items():
        assert verified == 4, (model, why)
    # Each missed model is explained: every run of its round, its state and its last error.
    for model in ("alpha", "beta"):
        runs = missed["explanations"][model]
        assert runs and all(r["state"] != "-" for r in runs), why
        assert any("503" in (r["last_error"] or "") for r in runs), why
    assert missed["notices"], why
