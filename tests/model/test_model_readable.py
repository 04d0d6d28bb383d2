"""Moments, durations, sizes and counts as people read them."""

from __future__ import annotations

import datetime as dt

from model.readable import duration, plural, size, utc_time


def test_a_moment_reads_to_the_minute_with_one_zone() -> None:
    moment = dt.datetime(2026, 12, 1, 13, 0, 5, 123456, tzinfo=dt.UTC)
    assert utc_time(moment) == "2026-12-01 13:00 UTC"
    assert utc_time(moment, seconds=True) == "2026-12-01 13:00:05 UTC"


def test_a_moment_in_another_zone_or_none_is_shown_in_utc() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert utc_time(dt.datetime(2026, 12, 1, 14, 0, tzinfo=paris)) == "2026-12-01 13:00 UTC"
    assert utc_time(dt.datetime(2026, 12, 1, 13, 0)) == "2026-12-01 13:00 UTC"


def test_counts_agree_with_their_noun() -> None:
    assert plural(1, "model") == "1 model"
    assert plural(2, "model") == "2 models"
    assert plural(0, "model") == "0 models"
    assert plural(3, "entry", "entries") == "3 entries"


def test_durations_and_sizes() -> None:
    assert duration(4.24) == "4.2 s"
    assert duration(42.4) == "42 s"
    assert duration(185) == "3 min 5 s"
    assert duration(120) == "2 min"
    assert duration(7800) == "2 h 10 min"
    assert size(512) == "512 B"
    assert size(12_345_678) == "12.3 MB"
    assert size(2_500_000_000) == "2.5 GB"
