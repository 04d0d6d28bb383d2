"""Progress of work that takes time: a rich bar on a terminal, a periodic log line elsewhere.

A bar redrawn in a log file or a Prefect run's logs is noise; a log line every so often (and
one when the work is done) says the same there.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator

from model.readable import duration

Progress = Callable[[int, int], None]  # (done, total), called as the work advances

LOG_EVERY_SECONDS = 30.0


def interactive() -> bool:
    """Whether standard error is a terminal a bar can be drawn on."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(
    description: str,
    unit: str,
    logger: logging.Logger,
    *,
    bar: bool | None = None,
    every: float = LOG_EVERY_SECONDS,
) -> Iterator[Progress]:
    """A callback reporting `done` of `total` units: a bar if `bar` (default: on a terminal),
    else a log line at most every `every` seconds and at the end."""
    if bar is None:
        bar = interactive()
    start = time.monotonic()
    if bar:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Bar(*columns, console=Console(stderr=True)) as shown:
            task = shown.add_task(description, total=None)
            yield lambda done, total: shown.update(task, completed=done, total=total)
        return
    last = start

    def log(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < every:
            return
        last = now
        share = f" ({100 * done // total}%)" if total else ""
        logger.info(
            "%s: %d of %d %s%s, %s", description, done, total, unit, share, duration(now - start)
        )

    yield log
