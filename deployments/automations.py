"""The project's automations: render the templates in deployments/automations/ and apply them.

Templates carry ``${...}`` placeholders (the notifier block id, thresholds derived from
model/schedule.py) because ``prefect automation create --from-file`` needs concrete values:

    python -m deployments.automations render --block-id ID --out DIR
    prefect automation create --from-file DIR/numerai-run-failed.yaml

or, creating or updating every automation by name (idempotent):

    python -m deployments.automations apply --block-id ID
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import yaml
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore

from model.names import ROUND_FLOW
from model.schedule import ROUND_WINDOWS, RoundWindow

TEMPLATES = Path(__file__).resolve().parent / "automations"
PREFIX = "numerai-"
FLOW_NAMES = (ROUND_FLOW,)
# Flow runs send a heartbeat this often (PREFECT_FLOWS_HEARTBEAT_FREQUENCY on the deployments);
# a run that misses three is taken for dead.
DEFAULT_HEARTBEAT = dt.timedelta(seconds=30)
MISSED_HEARTBEATS = 3
DEFAULT_STUCK_AFTER = dt.timedelta(minutes=10)
DEFAULT_CLOSE_MARGIN = dt.timedelta(minutes=15)
# Proactive triggers must wait at least this long (Prefect's own lower bound).
MIN_PROACTIVE_WITHIN = dt.timedelta(seconds=10)
# Once a run leaves Pending (or Late), any of these says it is no longer stuck there.
_AFTER_PENDING = ("Running", "Completed", "Failed", "Crashed", "Cancelling", "Cancelled")
_AFTER_LATE = ("Pending", *_AFTER_PENDING)
_AFTER_HEARTBEAT = ("heartbeat", "Completed", "Failed", "Crashed", "Cancelled", "Paused")
_SET_FIELDS = {"after", "expect", "for_each"}
ApplyStatus = Literal["created", "updated", "unchanged", "deleted"]


@dataclass(frozen=True)
class RenderOptions:
    """Thresholds of the rendered automations (defaults for production, tiny ones for tests)."""

    stuck_after: dt.timedelta = DEFAULT_STUCK_AFTER
    close_margin: dt.timedelta = DEFAULT_CLOSE_MARGIN
    summary: bool = False
    heartbeat: dt.timedelta = DEFAULT_HEARTBEAT
    windows: tuple[RoundWindow, ...] = ROUND_WINDOWS


def _duration_label(length: dt.timedelta) -> str:
    hours, rest = divmod(int(length.total_seconds()), 3600)
    minutes = rest // 60
    if hours and minutes:
        return f"{hours}h{minutes:02d}m"
    return f"{hours}h" if hours else f"{minutes}m"


def _human(duration: dt.timedelta) -> str:
    """A short duration for messages: "10 min", "45 s", "1 h 30 min"."""
    minutes, seconds = divmod(int(duration.total_seconds()), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [(hours, "h"), (minutes, "min"), (seconds, "s")]
    return " ".join(f"{n} {unit}" for n, unit in parts if n) or "0 s"


def windows_by_length(windows: Sequence[RoundWindow]) -> dict[dt.timedelta, list[str]]:
    """Window names grouped by how long the window stays open, shortest first."""
    grouped: dict[dt.timedelta, list[str]] = {}
    for window in windows:
        grouped.setdefault(window.length, []).append(window.name)
    return dict(sorted(grouped.items()))


def _render_file(path: Path, values: dict[str, Any]) -> AutomationCore:
    text = string.Template(path.read_text()).substitute(
        {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    )
    return AutomationCore.model_validate(yaml.safe_load(text))


def render(
    block_document_id: UUID | str, options: RenderOptions | None = None
) -> list[AutomationCore]:
    """Every automation of the project, concrete, for the given notifier block."""
    options = options or RenderOptions()
    stuck = max(options.stuck_after, MIN_PROACTIVE_WITHIN)
    heartbeat_lost = max(MISSED_HEARTBEATS * options.heartbeat, MIN_PROACTIVE_WITHIN)
    common: dict[str, Any] = {
        "block_document_id": str(block_document_id),
        "flow_names": list(FLOW_NAMES),
        "stuck_within_seconds": int(stuck.total_seconds()),
        "stuck_for": _human(stuck),
        "left_pending": [f"prefect.flow-run.{s}" for s in _AFTER_PENDING],
        "left_late": [f"prefect.flow-run.{s}" for s in _AFTER_LATE],
        "summary_enabled": options.summary,
        "after_heartbeat": [f"prefect.flow-run.{s}" for s in _AFTER_HEARTBEAT],
        "heartbeat_within_seconds": int(heartbeat_lost.total_seconds()),
        "heartbeat_lost_after": _human(heartbeat_lost),
    }
    automations = [
        _render_file(path, common)
        for path in sorted(TEMPLATES.glob("*.yaml"))
        if path.stem != "round-miss"
    ]
    for length, names in windows_by_length(options.windows).items():
        within = max(length - options.close_margin, MIN_PROACTIVE_WITHIN)
        values = {
            **common,
            "window_label": _duration_label(length),
            "window_names": names,
            "window_list": ", ".join(names),
            "within_seconds": int(within.total_seconds()),
            "margin": _human(options.close_margin),
        }
        automations.append(_render_file(TEMPLATES / "round-miss.yaml", values))
    return automations


def _sorted_sets(data: Any) -> Any:
    """Trigger event and label sets as sorted lists, so equal automations dump equally."""
    if isinstance(data, dict):
        return {
            k: sorted(v) if k in _SET_FIELDS and isinstance(v, list) else _sorted_sets(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_sorted_sets(v) for v in data]
    return data


def _as_document(automation: AutomationCore) -> dict[str, Any]:
    """The automation as plain data, as `prefect automation create --from-file` reads it."""
    document: dict[str, Any] = _sorted_sets(
        automation.model_dump(mode="json", exclude={"owner_resource"})
    )
    return document


def write_rendered(
    block_document_id: UUID | str, out: Path, options: RenderOptions | None = None
) -> list[Path]:
    """Render every automation to its own YAML file in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for automation in render(block_document_id, options):
        path = out / f"{automation.name}.yaml"
        path.write_text(yaml.safe_dump(_as_document(automation), sort_keys=False))
        paths.append(path)
    return paths


def _comparable(automation: AutomationCore) -> dict[str, Any]:
    return _as_document(AutomationCore.model_validate(automation.model_dump()))


def apply_automations(
    block_document_id: UUID | str,
    *,
    summary: bool = False,
    options: RenderOptions | None = None,
) -> list[tuple[str, ApplyStatus]]:
    """Create or update every automation by name; delete ``numerai-`` ones no longer rendered."""
    options = options or RenderOptions(summary=summary)
    wanted = {a.name: a for a in render(block_document_id, options)}
    results: list[tuple[str, ApplyStatus]] = []
    with get_client(sync_client=True) as client:
        existing: dict[str, list[Any]] = {}
        offset = 0
        while page := client.read_automations(limit=200, offset=offset):
            for stored in page:
                if stored.name.startswith(PREFIX):
                    existing.setdefault(stored.name, []).append(stored)
            offset += len(page)
        for name, automation in wanted.items():
            found = existing.pop(name, [])
            current, duplicates = (found[0], found[1:]) if found else (None, [])
            for duplicate in duplicates:  # left by an earlier `create --from-file`
                client.delete_automation(duplicate.id)
            if current is None:
                client.create_automation(automation)
                results.append((name, "created"))
            elif _comparable(current) == _comparable(automation) and not duplicates:
                results.append((name, "unchanged"))
            else:
                # Every field sent, defaults too: the server keeps what an update leaves unset,
                # so a paused automation (enabled by default) would otherwise stay paused.
                every_field = AutomationCore.model_validate(
                    automation.model_dump(exclude={"owner_resource"})  # not in an update
                )
                client.update_automation(current.id, every_field)
                results.append((name, "updated"))
        for name, stale in existing.items():
            for automation in stale:
                client.delete_automation(automation.id)
            results.append((name, "deleted"))
    return results


def _options(args: argparse.Namespace) -> RenderOptions:
    return RenderOptions(
        stuck_after=dt.timedelta(minutes=args.stuck_minutes),
        close_margin=dt.timedelta(minutes=args.margin_minutes),
        summary=args.summary,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``render`` to YAML files, or ``apply`` to the Prefect server."""
    parser = argparse.ArgumentParser(prog="python -m deployments.automations", description=__doc__)
    parser.add_argument("command", choices=["render", "apply"])
    parser.add_argument("--block-id", required=True, help="document id of the notifier block")
    parser.add_argument("--out", type=Path, default=Path("automations"), help="render: folder")
    parser.add_argument("--stuck-minutes", type=float, default=DEFAULT_STUCK_AFTER.seconds / 60)
    parser.add_argument("--margin-minutes", type=float, default=DEFAULT_CLOSE_MARGIN.seconds / 60)
    parser.add_argument("--summary", action="store_true", help="notify verified submissions too")
    args = parser.parse_args(argv)
    if args.command == "render":
        for path in write_rendered(args.block_id, args.out, _options(args)):
            print(path)
    else:
        for name, status in apply_automations(args.block_id, options=_options(args)):
            print(f"{status:9} {name}")


if __name__ == "__main__":
    main()
