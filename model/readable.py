"""How moments, durations, sizes and counts read in logs, messages, CLI output and reports."""

from __future__ import annotations

import datetime as dt


def utc_time(moment: dt.datetime, *, seconds: bool = False) -> str:
    """A moment as '2026-12-01 13:00 UTC' (seconds on request; a naive moment is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M{':%S' if seconds else ''}} UTC"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 model', '2 models' (`many` for a plural that is not the noun plus s)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def duration(seconds: float) -> str:
    """A span as '0.4 s', '42 s', '3 min 5 s' or '2 h 10 min'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def size(nbytes: int) -> str:
    """A file size as '512 B', '12.3 kB', '4.5 MB' or '1.2 GB' (powers of 1000, as tqdm)."""
    if nbytes < 1000:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"
