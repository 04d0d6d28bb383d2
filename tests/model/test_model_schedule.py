"""The round schedule table, and prefect.yaml's crons checked against it."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
import yaml
from prefect.server.schemas.schedules import CronSchedule

from model.schedule import (
    ROUND_WINDOWS,
    close_of_window_at,
    is_inside_window,
    retry_crons,
    window_at,
)

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A moment in the week of Monday 2026-11-23 (day 0 = Monday)."""
    return dt.datetime(2026, 11, 23 + day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "name"),
    [
        (at(1, 12, 0), "tuesday"),
        (at(4, 12, 59), "friday"),
        (at(5, 12, 0), "weekend"),
        (at(6, 13, 59), "weekend"),
        (at(6, 0, 0), "weekend"),
    ],
)
def test_windows_open(moment: dt.datetime, name: str) -> None:
    window = window_at(moment)
    assert window is not None and window.name == name


@pytest.mark.parametrize(
    "moment",
    [at(0, 12, 30), at(1, 11, 59), at(1, 13, 0), at(6, 14, 0), at(5, 11, 0), at(3, 0, 0)],
)
def test_windows_closed(moment: dt.datetime) -> None:
    assert not is_inside_window(moment)


def test_close_of_the_weekend_round_is_sunday_14() -> None:
    assert close_of_window_at(at(5, 20)) == at(6, 14)
    assert close_of_window_at(at(0, 12)) is None


def _prefect_yaml_crons() -> list[str]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [retry] = [d for d in config["deployments"] if d.get("schedules")]
    return [s["cron"] for s in retry["schedules"]]


def test_prefect_yaml_crons_are_the_ones_derived_from_the_table() -> None:
    assert sorted(_prefect_yaml_crons()) == sorted(retry_crons())


def test_every_cron_fires_inside_a_window_and_each_window_gets_two_retries() -> None:
    start = at(0, 0)
    fires: list[dt.datetime] = []
    for cron in _prefect_yaml_crons():
        schedule = CronSchedule(cron=cron, timezone="UTC")
        fires += _fires(schedule, start, start + dt.timedelta(days=14))
    assert fires
    outside = [f for f in fires if not is_inside_window(f)]
    assert not outside, f"crons firing outside a round window: {outside}"
    for window in ROUND_WINDOWS:
        for week in range(2):
            opens = start + window.opens_offset + dt.timedelta(weeks=week)
            inside = [f for f in fires if opens <= f < opens + window.length]
            assert len(inside) >= 2, f"{window.name} week {week}: {inside}"


def _fires(schedule: CronSchedule, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The run times Prefect's own scheduler computes for a cron schedule."""
    dates = asyncio.run(schedule.get_dates(n=1000, start=start, end=end))
    return [dt.datetime.fromtimestamp(d.timestamp(), UTC) for d in dates]
