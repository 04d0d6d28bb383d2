"""Numerai's round schedule as data: the one place that knows when rounds open and close.

Every cron in prefect.yaml and every "near the close" threshold is derived from ROUND_WINDOWS
(a test checks prefect.yaml against it), so a schedule change is an edit here and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

_WEEK = dt.timedelta(days=7)
_MONDAY = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # any Monday 00:00 UTC anchors weekly offsets


@dataclass(frozen=True)
class RoundWindow:
    """A weekly submission window: opens and closes at a weekday and time (UTC, Monday = 0)."""

    name: str
    opens_weekday: int
    opens_at: dt.time
    closes_weekday: int
    closes_at: dt.time

    def _offset(self, weekday: int, at: dt.time) -> dt.timedelta:
        return dt.timedelta(days=weekday, hours=at.hour, minutes=at.minute)

    @property
    def opens_offset(self) -> dt.timedelta:
        """Time from Monday 00:00 UTC to the opening."""
        return self._offset(self.opens_weekday, self.opens_at)

    @property
    def length(self) -> dt.timedelta:
        """How long the window stays open."""
        return (self._offset(self.closes_weekday, self.closes_at) - self.opens_offset) % _WEEK

    def occurrence(self, moment: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The (opens, closes) of this window's latest opening at or before ``moment``."""
        since_monday = (moment.astimezone(dt.UTC) - _MONDAY) % _WEEK
        opens = moment.astimezone(dt.UTC) - (since_monday - self.opens_offset) % _WEEK
        return opens, opens + self.length

    def contains(self, moment: dt.datetime) -> bool:
        """Whether the window is open at ``moment``."""
        opens, closes = self.occurrence(moment)
        return opens <= moment < closes


# Since April 2026: Tuesday to Friday 12:00-13:00 UTC; Saturday 12:00 to Sunday 14:00 UTC.
ROUND_WINDOWS: tuple[RoundWindow, ...] = (
    *(
        RoundWindow(day, weekday, dt.time(12), weekday, dt.time(13))
        for weekday, day in enumerate(("tuesday", "wednesday", "thursday", "friday"), start=1)
    ),
    RoundWindow("weekend", 5, dt.time(12), 6, dt.time(14)),
)

# Retries after the webhook: three in the first hour, then every six hours in longer windows,
# none in the last twenty minutes (a run needs time to finish before the close).
EARLY_RETRIES = (dt.timedelta(minutes=10), dt.timedelta(minutes=25), dt.timedelta(minutes=40))
LATE_RETRY_EVERY = dt.timedelta(hours=6)
LAST_RETRY_BEFORE_CLOSE = dt.timedelta(minutes=20)


def window_at(moment: dt.datetime) -> RoundWindow | None:
    """The window open at ``moment``, if any."""
    return next((w for w in ROUND_WINDOWS if w.contains(moment)), None)


def is_inside_window(moment: dt.datetime) -> bool:
    """Whether a round is scheduled to be open at ``moment``."""
    return window_at(moment) is not None


def close_of_window_at(moment: dt.datetime) -> dt.datetime | None:
    """When the window open at ``moment`` closes."""
    window = window_at(moment)
    return window.occurrence(moment)[1] if window else None


def retry_offsets(window: RoundWindow) -> list[dt.timedelta]:
    """Offsets from the opening at which a retry run starts in this window."""
    latest = window.length - LAST_RETRY_BEFORE_CLOSE
    offsets = [o for o in EARLY_RETRIES if o <= latest]
    step = LATE_RETRY_EVERY
    while step <= latest:
        offsets.append(step)
        step += LATE_RETRY_EVERY
    return offsets


def next_retry_after(moment: dt.datetime) -> dt.datetime | None:
    """The first round-retry run scheduled after ``moment`` in the window open then, if any."""
    window = window_at(moment)
    if window is None:
        return None
    opens, _ = window.occurrence(moment)
    later = [opens + offset for offset in retry_offsets(window) if opens + offset > moment]
    return min(later, default=None)


def retry_crons() -> list[str]:
    """Cron expressions (UTC) for every retry of every window, one per time of day."""
    days_by_time: dict[tuple[int, int], set[int]] = defaultdict(set)
    for window in ROUND_WINDOWS:
        for offset in retry_offsets(window):
            at = window.opens_offset + offset
            weekday = (at.days % 7 + 1) % 7  # cron counts Sunday as 0
            days_by_time[(at.seconds // 3600, at.seconds % 3600 // 60)].add(weekday)
    return [
        f"{minute} {hour} * * {','.join(str(d) for d in sorted(days))}"
        for (hour, minute), days in sorted(days_by_time.items())
    ]


if __name__ == "__main__":
    # Print the schedules block for prefect.yaml.
    for cron in retry_crons():
        print(f'      - cron: "{cron}"\n        timezone: UTC')
