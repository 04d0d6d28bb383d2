"""Which webhook trigger a submission carries, and which run a webhook joins: pure rules."""

from __future__ import annotations

import datetime as dt

import pytest

from model.schedule import ROUND_WINDOWS
from model.triggers import CLOCK_SLACK, WebhookTrigger, round_run_key

NOON = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)  # a Tuesday round opens


def test_a_stored_trigger_reads_back() -> None:
    trigger = WebhookTrigger("t-1", NOON + dt.timedelta(seconds=3), 1234)
    assert WebhookTrigger.from_value(trigger.to_value()) == trigger


@pytest.mark.parametrize(
    "value",
    [
        None,
        "t-1",
        {"trigger_id": "", "received": NOON.isoformat(), "round": 1},
        {"trigger_id": "t", "received": "yesterday", "round": 1},
        {"trigger_id": "t", "received": "2026-12-01T12:00:00", "round": 1},  # no zone
        {"trigger_id": "t", "received": NOON.isoformat(), "round": "1"},
        {"trigger_id": "t", "received": NOON.isoformat(), "round": True},
        {"received": NOON.isoformat()},
    ],
)
def test_a_value_that_is_not_a_trigger_is_ignored(value: object) -> None:
    assert WebhookTrigger.from_value(value) is None


def test_a_trigger_that_names_its_round_belongs_to_that_round_only() -> None:
    trigger = WebhookTrigger("t", NOON - dt.timedelta(days=3), 1234)
    assert trigger.belongs_to(1234, NOON)  # the round it names, whenever it came
    assert not trigger.belongs_to(1235, NOON - dt.timedelta(days=4))


def test_a_trigger_without_a_round_belongs_to_the_round_open_when_it_came() -> None:
    assert WebhookTrigger("t", NOON + dt.timedelta(minutes=1)).belongs_to(7, NOON)
    assert WebhookTrigger("t", NOON - CLOCK_SLACK).belongs_to(7, NOON)  # clocks differ
    yesterday = WebhookTrigger("t", NOON - dt.timedelta(days=1))
    assert not yesterday.belongs_to(7, NOON)


def test_the_webhooks_of_a_round_share_one_key() -> None:
    tuesday = ROUND_WINDOWS[0]
    assert round_run_key(1234, None, NOON) == "numerai-round-1234"
    assert round_run_key(1234, tuesday, NOON) == "numerai-round-1234"  # the named round wins
    late = NOON + dt.timedelta(minutes=40)
    assert round_run_key(None, tuesday, NOON) == round_run_key(None, tuesday, late)
    assert round_run_key(None, tuesday, NOON) == "numerai-window-tuesday-2026-12-01"
    assert round_run_key(None, None, NOON) is None  # no round known: a run of its own
