"""The round run's progress artifact, which moves as its models end."""

from __future__ import annotations

import logging
import time
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from model.readable import plural

ROUND_PROGRESS_KEY = "numerai-round-progress"
# The artifact moves at most this often while models finish (and always at the last one): a
# round of many light models would otherwise cost the server one write per model.
UPDATE_EVERY_SECONDS = 1.0

log = logging.getLogger(__name__)


class RoundProgress:
    """A Prefect progress artifact at the share of the run's models that are done.

    Progress is a view: if the API refuses it, the round goes on without it. Called from the
    flow's own thread only.
    """

    def __init__(
        self,
        total: int,
        every: float = UPDATE_EVERY_SECONDS,
    ) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.every = every
        self._shown_at = time.monotonic()
        self.artifact_id: UUID | None = None
        try:
            created = create_progress_artifact(
                progress=0.0, key=ROUND_PROGRESS_KEY, description=self.description
            )
            self.artifact_id = cast(UUID, created)  # the sync call's result, not a coroutine
        except Exception as exc:
            log.warning("No progress artifact for this run: %s", exc)

    @property
    def description(self) -> str:
        """'2 of 3 models done (1 failed)'."""
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{self.done} of {plural(self.total, 'model')} done{failed}"

    @property
    def share(self) -> float:
        """Percent of the models done."""
        return 100.0 * self.done / self.total if self.total else 100.0

    def finished(self, count: int = 1, *, ok: bool = True) -> None:
        """`count` more models are done (submitted, skipped, failed or without an open round)."""
        self.done = min(self.total, self.done + count)
        self.failed += 0 if ok else count
        now = time.monotonic()
        if self.artifact_id is None or (
            self.done < self.total and now - self._shown_at < self.every
        ):
            return
        self._shown_at = now
        try:
            update_progress_artifact(self.artifact_id, self.share, self.description)
        except Exception as exc:
            log.warning("Progress artifact not updated: %s", exc)
