"""Which webhook trigger a model's submission carries: pure rules, no Prefect.

The webhooks of one round start one run of the round (`round_run_key`), so a model's trigger id
cannot travel as that run's parameter: the receiver stores each model's latest trigger
(`WebhookTrigger`) and the model's task reads it just before it uploads. A trigger belongs to the
round its webhook named; a webhook that names no round belongs to the round open when it came.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .schedule import RoundWindow

# A webhook may reach the receiver a little before the round's openTime as Numerai's API reports
# it (clocks differ); older triggers belong to an earlier round.
CLOCK_SLACK = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class WebhookTrigger:
    """A model's latest webhook trigger, as the receiver stores it."""

    trigger_id: str
    received: dt.datetime
    round_number: int | None = None

    def to_value(self) -> dict[str, Any]:
        """The JSON value stored in Prefect."""
        return {
            "trigger_id": self.trigger_id,
            "received": self.received.astimezone(dt.UTC).isoformat(),
            "round": self.round_number,
        }

    @classmethod
    def from_value(cls, value: object) -> WebhookTrigger | None:
        """The stored trigger, or None if the value is not one (edited by hand, older shape)."""
        if not isinstance(value, dict):
            return None
        trigger_id, received, number = (value.get(k) for k in ("trigger_id", "received", "round"))
        if not isinstance(trigger_id, str) or not trigger_id or not isinstance(received, str):
            return None
        if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
            return None
        try:
            when = dt.datetime.fromisoformat(received)
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        return cls(trigger_id, when, number)

    def belongs_to(self, round_number: int, open_time: dt.datetime) -> bool:
        """Whether this trigger was sent for the round `round_number`, open since `open_time`."""
        if self.round_number is not None:
            return self.round_number == round_number
        return self.received >= open_time - CLOCK_SLACK


def round_run_key(
    round_number: int | None, window: RoundWindow | None, moment: dt.datetime
) -> str | None:
    """The idempotency key of the one run the webhooks of a round start, or None.

    The round is the one the webhook names, else `window`, the one open at `moment` (see
    model.schedule.window_at); None when neither is known: the webhook starts a run of its own.
    """
    if round_number is not None:
        return f"numerai-round-{round_number}"
    if window is None:
        return None
    opens, _ = window.occurrence(moment)
    return f"numerai-window-{window.name}-{opens:%Y-%m-%d}"
