"""Rendering the automation templates: pure, no server."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import yaml
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger

from deployments.automations import TEMPLATES, RenderOptions, render, write_rendered
from model.schedule import ROUND_WINDOWS, next_retry_after, retry_offsets

BLOCK_ID = uuid.UUID("00000000-0000-0000-0000-0000000000b1")
UTC = dt.UTC


def _by_name(options: RenderOptions | None = None) -> dict[str, AutomationCore]:
    return {a.name: a for a in render(BLOCK_ID, options)}


def test_next_retry_follows_the_schedule_table() -> None:
    tuesday = dt.datetime(2026, 9, 1, 12, 5, tzinfo=UTC)  # a Tuesday, 5 min after the opening
    assert next_retry_after(tuesday) == dt.datetime(2026, 9, 1, 12, 10, tzinfo=UTC)
    assert next_retry_after(tuesday.replace(minute=40)) is None  # last retry is at 12:40
    assert next_retry_after(tuesday.replace(hour=14)) is None  # no window open
    saturday = dt.datetime(2026, 9, 5, 19, 0, tzinfo=UTC)
    weekend = next(w for w in ROUND_WINDOWS if w.name == "weekend")
    opens = dt.datetime(2026, 9, 5, 12, tzinfo=UTC)
    expected = min(opens + o for o in retry_offsets(weekend) if opens + o > saturday)
    assert next_retry_after(saturday) == expected


def test_every_automation_is_named_and_notifies_the_given_block() -> None:
    automations = render(BLOCK_ID)
    assert len({a.name for a in automations}) == len(automations)
    for automation in automations:
        assert automation.name.startswith("numerai-")
        notify = [a for a in automation.actions if isinstance(a, SendNotification)]
        if automation.name == "numerai-run-heartbeat-lost":
            # It marks the run Crashed, which numerai-run-failed notifies: one message, not two.
            assert not notify
            continue
        assert notify and all(a.block_document_id == BLOCK_ID for a in notify)


def test_round_miss_per_window_length_derived_from_the_schedule() -> None:
    automations = _by_name()
    one_hour = automations["numerai-round-about-to-be-missed-1h"].trigger
    weekend = automations["numerai-round-about-to-be-missed-26h"].trigger
    assert isinstance(one_hour, EventTrigger) and isinstance(weekend, EventTrigger)
    assert one_hour.within == dt.timedelta(minutes=45)
    assert weekend.within == dt.timedelta(hours=25, minutes=45)
    one_hour_windows = one_hour.model_dump()["match"]["numerai.window"]
    assert one_hour_windows == ["tuesday", "wednesday", "thursday", "friday"]
    assert weekend.model_dump()["match"]["numerai.window"] == ["weekend"]
    lengths = {w.length for w in ROUND_WINDOWS}
    assert sum(n.startswith("numerai-round-about") for n in automations) == len(lengths)


def test_thresholds_and_summary_are_configurable() -> None:
    default = _by_name()
    assert default["numerai-submission-verified"].enabled is False
    stuck = default["numerai-run-stuck-pending"].trigger
    assert isinstance(stuck, EventTrigger) and stuck.within == dt.timedelta(minutes=10)
    custom = _by_name(RenderOptions(stuck_after=dt.timedelta(minutes=3), summary=True))
    assert custom["numerai-submission-verified"].enabled is True
    stuck = custom["numerai-run-stuck-late"].trigger
    assert isinstance(stuck, EventTrigger) and stuck.within == dt.timedelta(minutes=3)
    assert "3 min" in str(custom["numerai-run-stuck-late"].actions[0].model_dump())


def test_rendered_files_are_deterministic_automation_documents(tmp_path: Path) -> None:
    first = [p.read_text() for p in write_rendered(BLOCK_ID, tmp_path / "a")]
    second = [p.read_text() for p in write_rendered(BLOCK_ID, tmp_path / "b")]
    assert first == second
    for text in first:
        AutomationCore.model_validate(yaml.safe_load(text))
        assert "${" not in text


def test_templates_hold_no_concrete_block_id() -> None:
    for path in TEMPLATES.glob("*.yaml"):
        text = path.read_text()
        if "send-notification" in text:
            assert "${block_document_id}" in text, path.name
        for line in text.splitlines():
            if "block_document_id:" in line:
                assert line.split("block_document_id:")[1].strip() == "${block_document_id}"
