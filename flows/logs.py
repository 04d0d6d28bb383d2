"""What the runs' logs leave out: the engine's bare 'Finished in state Completed()' lines."""

from __future__ import annotations

import logging

BARE_COMPLETION = "Finished in state Completed()"


class QuietBareCompletions(logging.Filter):
    """Drops the engine's completion line of a task run that ended Completed with no message.

    Prefect logs it at INFO for every task run, on prefect.task_runs: the logger the tasks' own
    lines (get_run_logger) and the engine's retry notices use too. Its level, the only setting
    (PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL), cannot quiet these lines alone. A failure,
    and a completion with a message, still show; each model's task says what finished itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the bare completion line."""
        return record.getMessage() != BARE_COMPLETION


def quiet_bare_completions() -> None:
    """Leave the bare completion lines out of this process's task run logs (console and API)."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, QuietBareCompletions) for f in logger.filters):
        logger.addFilter(QuietBareCompletions())
