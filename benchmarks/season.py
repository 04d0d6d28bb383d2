"""A simulated season: weeks of Numerai's round windows on the real deployments, with faults.

    make season SEEDS=1-10 WEEKS=1                 # one season per seed
    python -m benchmarks.season --weeks 2 --seed 7 --keep /tmp/season

Everything a production install runs is real: a Prefect server with its automations, the
project's prefect.yaml deployed with `prefect deploy --all`, a process worker, the webhook
receiver over HTTP, and a notification block pointing at a local sink. Numerai is the sandbox.

Time. The sandbox's clock runs SPEED times faster than the wall clock while a run is at work,
jumps to the next event whenever no run is under way, and stands still while every active run
is still waiting for its process to start. Events are a round opening (the sandbox POSTs each
model's webhook to the receiver) and the round-retry times of its window, read from
model/schedule.py; Prefect's scheduler keeps wall time, so it is off and the driver starts the
round-retry deployment at those simulated times, whether or not earlier runs are still going.
Time settings (retry delays, API timeouts, the close margin, the patience in an outage,
Prefect's wait for a deployment's concurrency slot) are divided by SPEED so that they last as
long in simulated time as in production. Two cannot be: a model's lease is at least 60 s of
wall time (Prefect's server refuses shorter ones), so a killed run holds its models SPEED times
longer than in production, which the season counts against itself; flow heartbeats are wall
time too. Clients see the sandbox's times translated to the wall clock, so the flows compare
round times with their own clock exactly as they do against Numerai.

Faults. Every scenario of SCENARIOS is dealt to the season's rounds in a seeded order (several
per round): bursts of GraphQL errors or HTTP 5xx, a hanging call, slow answers, a download cut
short or corrupted, an upload silently dropped, the flow processes killed at a drawn point of
their run, the webhook delivered many times at once, and outages (every call answers 503) from
the opening until a random time inside the window or past the close.

Report: a line per round as it plays; then per season, rounds open; per model, rounds with a
verified submission before the close; uploads after the close (must be 0); duplicate uploads
beyond the first (must be 0); missed rounds and whether a notification was sent for each;
whether every round that had a working minute was covered; and for every model of every missed
round, the runs of that round, what each did with the model and the last error it logged.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
from pydantic import SecretStr

from benchmarks.bench import ROOT, rank_feature
from deployments.process_pool import ensure_process_pool
from deployments.processes import background, free_port, wait_healthy
from deployments.server import TEST_DATABASE_ENV
from model.readable import plural
from model.schedule import ROUND_WINDOWS, RoundWindow, retry_offsets
from sandbox import Fault, Sandbox

SPEED = 30.0  # simulated seconds per wall second while runs are under way
MODELS = ("alpha", "beta")
POOL = "numerai-local"
FIRST_MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
# Production values of the flows' time settings; the season divides them by SPEED.
API_TIMEOUT_S = 30.0
RETRY_BASE_S = 5.0
CLOSE_MARGIN_S = 15.0
ROUND_PATIENCE_S = 900.0
SLOT_WAIT_S = 30.0  # Prefect: how long a run waits for its deployment's concurrency slot
REPOSSESSOR_S = 15.0  # Prefect: how often the server frees expired concurrency leases
GRAPHQL_OPERATIONS = (
    "rounds",
    "listDatasets",
    "dataset",
    "account",
    "submission_upload_auth",
    "create_submission",
    "submissions",
)
SCENARIOS = (
    "clean",
    "graphql-errors",
    "http-5xx",
    "hang",
    "slow",
    "truncated-download",
    "corrupted-download",
    "dropped-upload",
    "killed-run",
    "repeated-webhook",
    "outage",
    "outage-past-close",
)
# Where in a run its processes are killed, and the Numerai call that marks that point: the
# first `submissions` call is a model's, under its lease; an upload starts with its auth query.
KILL_POINTS = {
    "starting": None,
    "holding a model": "submissions",
    "uploading": "submission_upload_auth",
}
IDLE_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


@dataclass
class RoundPlan:
    """One round of the season and what goes wrong in it."""

    number: int
    window: str
    opens: dt.datetime
    closes: dt.datetime
    scenarios: list[str]
    faults: list[Fault] = field(default_factory=list)
    outage_until: dt.datetime | None = None

    @property
    def working_minute(self) -> bool:
        """Whether Numerai answered for at least a minute before the close."""
        if self.outage_until is None:
            return True
        return self.outage_until + dt.timedelta(minutes=1) <= self.closes


def plan_season(weeks: int, seed: int, first_round: int) -> list[RoundPlan]:
    """Every window of `weeks` weeks in order, with seeded scenarios.

    Every scenario happens at least once: dealt in a shuffled order over the rounds (a short
    season gets several per round), and rounds left over draw one at random.
    """
    rng = random.Random(seed)
    windows: list[RoundWindow] = sorted(ROUND_WINDOWS, key=lambda w: w.opens_offset)
    count = weeks * len(windows)
    faults = [s for s in SCENARIOS if s != "clean"]
    drawn = [*faults, *rng.choices(SCENARIOS, k=max(0, count - len(faults)))]
    rng.shuffle(drawn)
    scenarios: list[list[str]] = [[] for _ in range(count)]
    for index, scenario in enumerate(drawn):
        scenarios[index % count].append(scenario)
    plans: list[RoundPlan] = []
    for week in range(weeks):
        monday = FIRST_MONDAY + dt.timedelta(weeks=week)
        for window in windows:
            opens = monday + window.opens_offset
            plan = RoundPlan(
                first_round + len(plans),
                window.name,
                opens,
                opens + window.length,
                [s for s in scenarios[len(plans)] if s != "clean"] or ["clean"],
            )
            for scenario in plan.scenarios:
                _add_faults(plan, scenario, rng, window)
            plans.append(plan)
    return plans


def _add_faults(plan: RoundPlan, kind: str, rng: random.Random, window: RoundWindow) -> None:
    if kind == "graphql-errors":
        plan.faults.append(
            Fault("graphql_error", rng.choice(GRAPHQL_OPERATIONS), times=rng.randint(1, 3))
        )
    elif kind == "http-5xx":
        plan.faults.append(
            Fault(
                "http_status",
                rng.choice((*GRAPHQL_OPERATIONS, "download", "upload", None)),
                times=rng.randint(1, 3),
                status=rng.choice((500, 502, 503)),
            )
        )
    elif kind == "hang":
        # Longer than the scaled API timeout: the client's timeout has to fire.
        plan.faults.append(
            Fault("hang", rng.choice(GRAPHQL_OPERATIONS), seconds=3 * API_TIMEOUT_S / SPEED)
        )
    elif kind == "slow":
        plan.faults.append(Fault("slow", None, times=5, seconds=0.3 * API_TIMEOUT_S / SPEED))
    elif kind in ("truncated-download", "corrupted-download"):
        fault = "truncate_download" if kind.startswith("truncated") else "corrupt_download"
        plan.faults.append(Fault(fault, "download", times=rng.randint(1, 2)))
    elif kind == "dropped-upload":
        plan.faults.append(Fault("drop_upload", "upload"))
    elif kind.startswith("outage"):
        # Every call answers 503 from the opening until a random time inside the window, or
        # until after the close: a round without a working minute.
        share = rng.uniform(1.0, 1.2) if kind == "outage-past-close" else rng.uniform(0.05, 0.95)
        until = plan.opens + window.length * share
        plan.faults.append(Fault("http_status", None, status=503, until=until))
        # Two outages dealt to one round overlap: Numerai answers again when the later ends.
        plan.outage_until = max(until, plan.outage_until or until)


@dataclass
class Notice:
    """One notification the sink received, at which point of the season."""

    body: str
    round_index: int


class Sink:
    """A loopback HTTP endpoint standing in for Slack: records every notification."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.round_index = -1
        lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                with lock:
                    sink.notices.append(Notice(body, sink.round_index))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


def children(pid: int) -> list[int]:
    """Process ids of a process's direct children (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


@dataclass
class RoundOutcome:
    """How one round ended."""

    number: int
    window: str
    scenarios: list[str]
    working_minute: bool
    verified: dict[str, bool]
    submissions: dict[str, int]
    late_uploads: int
    runs: int
    notified: bool = False
    wall_seconds: float = 0.0
    # The round's webhooks the receiver refused (4xx: never a run), or did not answer with
    # a run (5xx or no answer after the sandbox's retries, as Prefect was too slow).
    webhooks_refused: int = 0
    webhooks_unanswered: int = 0
    killed: list[str] = field(default_factory=list)
    # For each missed model: every run of the round, what it did with the model, and why.
    explanations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    @property
    def missed(self) -> list[str]:
        """Models without a submission before the close."""
        return [m for m, ok in self.verified.items() if not ok]


PAGE = 200  # the most a Prefect server returns per read


def _read_all(read: Callable[[int], list[Any]]) -> list[Any]:
    """Every item of a paged Prefect read."""
    items: list[Any] = []
    while True:
        page = read(len(items))
        items += page
        if len(page) < PAGE:
            return items


def _first_line(text: str | None, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else f"{line[: limit - 1]}…"


def explain_misses(run_ids: list[Any], round_number: int, models: list[str]) -> dict[str, Any]:
    """For each missed model, every run of the round: its state, the model's task run, the error.

    A model's work is the task run round-N-model inside a round run; a round run without one
    never reached the model (the round, the live data or the account failed first), and its
    own state message says why. The last error is the latest ERROR log of the model's task run
    or of the tasks it ran (retries included), else of the round run itself.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
        LogFilterLevel,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import LogSort

    from model.names import model_run_name

    if not models:
        return {}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)), limit=200
        )
        deployments = {d.id: d.name for d in client.read_deployments()}
        tasks = _read_all(
            lambda offset: client.read_task_runs(
                task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=run_ids)),
                limit=PAGE,
                offset=offset,
            )
        )
        errors_only = LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=run_ids), level=LogFilterLevel(ge_=40)
        )
        logs = _read_all(
            lambda offset: client.read_logs(
                errors_only, limit=PAGE, offset=offset, sort=LogSort.TIMESTAMP_ASC
            )
        )
    children: dict[Any, list[Any]] = {}
    for task_run in tasks:
        for parent in task_run.task_inputs.get("__parents__", []):
            children.setdefault(getattr(parent, "id", None), []).append(task_run.id)
    explanations: dict[str, Any] = {}
    for model in models:
        name = model_run_name(round_number, model)
        rows = []
        for run in sorted(runs, key=lambda r: str(r.expected_start_time or r.created)):
            state = run.state
            row: dict[str, Any] = {
                "run": run.name,
                "deployment": deployments.get(run.deployment_id, "-") if run.deployment_id else "-",
                "state": state.name if state else "-",
                "message": _first_line(state.message if state else None),
            }
            mine = [t for t in tasks if t.flow_run_id == run.id and t.name == name]
            if mine:
                task_run = mine[-1]
                row["task_run"] = task_run.name
                row["task_state"] = task_run.state.name if task_run.state else "-"
                row["task_message"] = _first_line(task_run.state.message if task_run.state else "")
                scope = {task_run.id, *children.get(task_run.id, [])}
                errors = [log for log in logs if log.task_run_id in scope]
            else:
                row["task_run"] = None
                # What failed first in the run, not the engine's closing line about it.
                errors = [log for log in logs if log.flow_run_id == run.id]
                errors = [log for log in errors if log.task_run_id] or errors
            row["last_error"] = _first_line(errors[-1].message) if errors else None
            rows.append(row)
        explanations[model] = rows
    return explanations


class Season:
    """The running parts of a season, and the driver that walks its clock."""

    def __init__(self, workdir: Path, *, speed: float = SPEED, seed: int = 1) -> None:
        self.workdir = workdir
        self.speed = speed
        self.seed = seed
        self.rng = random.Random(seed)
        self.worker: subprocess.Popen[bytes] | None = None
        self.receiver_url = ""
        self.secret = secrets.token_urlsafe(24)
        self.env: dict[str, str] = {}
        self._held: dt.datetime | None = None  # where the clock stands while runs start

    def flow_env(self, api_url: str) -> dict[str, str]:
        """Environment of the worker and the receiver: the flows' time settings scaled."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("NUMERAI_")},
            "PREFECT_API_URL": api_url,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_PREFETCH_SECONDS": "1",
            "NUMERAI_RETRY_BASE_SECONDS": f"{RETRY_BASE_S / self.speed:.4f}",
            "NUMERAI_CLOSE_MARGIN_SECONDS": f"{CLOSE_MARGIN_S / self.speed:.4f}",
            "NUMERAI_ROUND_PATIENCE_SECONDS": f"{ROUND_PATIENCE_S / self.speed:.4f}",
            "NUMERAI_WEBHOOK_SECRET": self.secret,
        }

    def _prefect(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
            [sys.executable, "-m", "prefect", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed:\n{result.stdout}{result.stderr}")

    def save_blocks(self, sandbox: Sandbox, sink: Sink) -> None:
        """Credentials, one model block per model, a notifier and the automations."""
        from blocks import NumeraiCredentials, NumeraiModel
        from deployments.automations import apply_automations
        from deployments.notifications import save_notifier

        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=API_TIMEOUT_S / self.speed,
        ).save("numerai", overwrite=True)
        predictor = self.workdir / "rank_feature.pkl"
        predictor.write_bytes(cloudpickle.dumps(rank_feature))
        for name in MODELS:
            model_id = sandbox.add_model(name)
            NumeraiModel(model_name=name, predictor_path=str(predictor), feature_set="small").save(
                name, overwrite=True
            )
            sandbox.set_webhook(model_id, f"{self.receiver_url}/webhook/{self.secret}/{name}")
        apply_automations(save_notifier("webhook", url=sink.url))

    # -- waiting -------------------------------------------------------------------------

    def active_runs(self) -> list[Any]:
        """Flow runs not yet in a final state."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType

        active = [t for t in StateType if t.value not in IDLE_STATES]
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=active))
                )
            )

    def wait_idle(self, timeout: float = 600) -> None:
        """Until every flow run is final."""
        deadline = time.monotonic() + timeout
        while self.active_runs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"runs still active after {timeout} s: {self.active_runs()}")
            time.sleep(0.5)

    def kill_the_flow_runs(self, sandbox: Sandbox, timeout: float = 300) -> list[str]:
        """SIGKILL the flow-run processes the worker started, at a point drawn from KILL_POINTS.

        Returns the runs that were Running when they were killed, and at which point.
        """
        assert self.worker is not None
        point = self.rng.choice(sorted(KILL_POINTS))
        seen = len(sandbox.requests)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.tick(sandbox)
            if not runs:
                # Every run ended before the point came (an outage failed them first): nothing
                # to kill. Waiting on would let the clock run free, past the retries and the close.
                return []
            running = [r.name for r in runs if r.state_type.value == "RUNNING"]
            if point == "starting" and running:
                time.sleep(self.rng.uniform(0.0, 1.0))
            elif point == "starting" or not any(
                op == KILL_POINTS[point] for op, _ in sandbox.requests[seen:]
            ):
                time.sleep(0.05)
                continue
            pids = children(self.worker.pid)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return [f"{name} ({point})" for name in running] if pids else []
        return []

    # -- the season ----------------------------------------------------------------------

    def tick(self, sandbox: Sandbox) -> list[Any]:
        """The active runs; while none of them is Running yet, the clock stands still.

        A run waiting for the worker to start its process reads nothing from Numerai, and that
        start (5-15 s in production) takes 10-30 s of wall time on a busy machine: at SPEED
        that would be 5-15 simulated minutes of a one-hour window. Holding the clock only ever
        moves round times later on the wall clock, so a client that read them just before
        sees the close earlier than it is, never later.
        """
        runs = self.active_runs()
        if runs and not any(r.state_type.value == "RUNNING" for r in runs):
            self._held = self._held or sandbox.now()
            sandbox.set_clock(self._held, self.speed)
        else:
            self._held = None
        return runs

    def advance_to(self, sandbox: Sandbox, at: dt.datetime, timeout: float = 600) -> None:
        """Let the clock run until `at`, jumping to it once no run is under way."""
        held_since = time.monotonic()
        while sandbox.now() < at:
            runs = self.tick(sandbox)
            if not runs:
                sandbox.set_clock(at, self.speed)
                break
            if self._held is None:
                held_since = time.monotonic()
            elif time.monotonic() - held_since > timeout:
                raise TimeoutError(f"no run started within {timeout} s: {runs}")
            time.sleep(0.25)
        self._held = None

    def play(
        self,
        sandbox: Sandbox,
        sink: Sink,
        plans: list[RoundPlan],
        progress: Callable[[RoundOutcome], None] | None = None,
    ) -> list[RoundOutcome]:
        """Walk the clock through every round; start what production would start, when."""
        from prefect.deployments import run_deployment

        outcomes = []
        seen = set(self._run_ids())
        sandbox.set_clock(plans[0].opens, self.speed)  # the season starts at its first opening
        for index, plan in enumerate(plans):
            started = time.perf_counter()
            sink.round_index = index
            self.advance_to(sandbox, plan.opens)
            for fault in plan.faults:
                sandbox.inject(fault)
            delivered = len(sandbox.webhook_deliveries)
            sandbox.open_round(plan.number, opens=plan.opens, closes=plan.closes)
            # Deliveries run in the background; each ends once the receiver created its run.
            hooks = sandbox.wait_for_deliveries(delivered + len(MODELS), timeout=120)[delivered:]
            if "repeated-webhook" in plan.scenarios:
                self._repeat_webhooks(sandbox, plan.number)
            killed = self.kill_the_flow_runs(sandbox) if "killed-run" in plan.scenarios else []
            window = next(w for w in ROUND_WINDOWS if w.name == plan.window)
            for offset in retry_offsets(window):
                # On time even if earlier runs are still going, as the cron schedule would.
                self.advance_to(sandbox, plan.opens + offset)
                run_deployment("submit-round/round-retry", timeout=0)
            self.advance_to(sandbox, plan.closes)
            self.wait_idle()  # a run still going at the close ends (and must not upload)
            sandbox.clear_faults()
            run_ids = [r for r in self._run_ids() if r not in seen]
            seen.update(run_ids)
            outcome = self._outcome(sandbox, plan, len(run_ids))
            outcome.killed = killed
            outcome.webhooks_refused = sum(1 for h in hooks if h.status and 400 <= h.status < 500)
            outcome.webhooks_unanswered = sum(1 for h in hooks if not h.ok) - (
                outcome.webhooks_refused
            )
            outcome.wall_seconds = time.perf_counter() - started
            try:
                outcome.explanations = explain_misses(run_ids, plan.number, outcome.missed)
            except Exception as exc:  # a report that cannot be read must not end the season
                error = [{"run": "-", "error": f"{type(exc).__name__}: {exc}"}]
                outcome.explanations = dict.fromkeys(outcome.missed, error)
            outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
        return outcomes

    def _run_ids(self) -> list[Any]:
        """Ids of every flow run on the server."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return [
                r.id
                for r in _read_all(lambda offset: client.read_flow_runs(limit=PAGE, offset=offset))
            ]

    def _repeat_webhooks(self, sandbox: Sandbox, number: int) -> None:
        """Numerai (or a proxy) delivers each model's webhook again, eight times at once."""
        deliveries = [d for d in sandbox.webhook_deliveries if d.round_number == number]
        with ThreadPoolExecutor(8) as pool:
            for delivery in deliveries:
                body = {"triggerId": delivery.trigger_id, "roundNumber": number}
                list(
                    pool.map(
                        lambda _, url=delivery.url, body=body: httpx.post(
                            url, json=body, timeout=30
                        ),
                        range(8),
                    )
                )

    def _outcome(self, sandbox: Sandbox, plan: RoundPlan, runs: int) -> RoundOutcome:
        verified, counts, late = {}, {}, 0
        for name in MODELS:
            subs = [
                s
                for s in sandbox.submissions(sandbox.models[name])
                if s.round_number == plan.number
            ]
            on_time = [s for s in subs if not s.late and s.inserted_at < plan.closes]
            verified[name] = bool(on_time)
            counts[name] = len(subs)
            late += sum(1 for s in subs if s.late or s.inserted_at >= plan.closes)
        return RoundOutcome(
            plan.number,
            plan.window,
            plan.scenarios,
            plan.working_minute,
            verified,
            counts,
            late,
            runs,
        )


def settle_notifications(sink: Sink, quiet: float = 5.0, timeout: float = 60.0) -> None:
    """Wait until no notification has arrived for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    seen, since = len(sink.notices), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.5)
        if len(sink.notices) != seen:
            seen, since = len(sink.notices), time.monotonic()


def summarize(outcomes: list[RoundOutcome], notices: list[Notice]) -> dict[str, Any]:
    """The season's figures."""
    for index, outcome in enumerate(outcomes):
        outcome.notices = [
            n.body for n in notices if n.round_index == index or str(outcome.number) in n.body
        ]
        outcome.notified = bool(outcome.notices)
    missed = [o for o in outcomes if o.missed]
    workable = [o for o in outcomes if o.working_minute]
    return {
        "rounds_open": len(outcomes),
        "rounds_with_a_working_minute": len(workable),
        "verified_before_close": {m: sum(o.verified[m] for o in outcomes) for m in MODELS},
        "uploads_after_close": sum(o.late_uploads for o in outcomes),
        "duplicate_uploads": sum(max(0, n - 1) for o in outcomes for n in o.submissions.values()),
        "webhooks_refused": sum(o.webhooks_refused for o in outcomes),
        "webhooks_unanswered": sum(o.webhooks_unanswered for o in outcomes),
        "rounds_missed": len(missed),
        "missed_rounds_notified": sum(o.notified for o in missed),
        "workable_rounds_missed": [o.number for o in workable if o.missed],
        "every_workable_round_covered": not any(o.missed for o in workable),
        "flow_runs": sum(o.runs for o in outcomes),
        "notifications": len(notices),
        "rounds": [{**asdict(o), "missed": o.missed} for o in outcomes],
    }


DATA_DIR = ROOT / ".numerai" / "data"  # the deployments' data_dir (prefect.yaml)
MAX_ROUND = 10**6  # the receiver refuses larger round numbers, as no real round has one


def unused_round_numbers(count: int, data_dir: Path = DATA_DIR) -> int:
    """The first of `count` round numbers whose live data no earlier run kept.

    Deployed runs keep each round's live data under its number in the project's data folder
    and reuse it: a number an earlier season used would hand this one that season's live ids.
    """
    names = (p.name.removeprefix("round-") for p in data_dir.glob("**/round-*"))
    used = {int(n) for n in names if n.isdigit()}
    pick = random.SystemRandom()
    while True:
        first = pick.randint(100_000, MAX_ROUND - count)
        if used.isdisjoint(range(first, first + count)):
            return first


def round_line(outcome: RoundOutcome) -> str:
    """One line for a round: its faults and how it ended."""
    result = "covered" if not outcome.missed else f"missed {','.join(outcome.missed)}"
    if outcome.missed and not outcome.working_minute:
        result += " (no working minute)"
    if outcome.killed:
        result += f", killed {','.join(outcome.killed)}"
    if outcome.webhooks_refused or outcome.webhooks_unanswered:
        result += (
            f", webhooks refused {outcome.webhooks_refused}, "
            f"unanswered {outcome.webhooks_unanswered}"
        )
    faults = ",".join(outcome.scenarios)
    return (
        f"round {outcome.number} {outcome.window:<9} {faults:<44} {result} "
        f"({outcome.runs} runs, {outcome.wall_seconds:.0f} s)"
    )


def print_progress(seed: int) -> Callable[[RoundOutcome], None]:
    """A line per round as the season plays, on stderr."""

    def show(outcome: RoundOutcome) -> None:
        print(f"{time.strftime('%H:%M:%S')} seed {seed}: {round_line(outcome)}", file=sys.stderr)
        sys.stderr.flush()

    return show


def run_season(
    workdir: Path,
    weeks: int = 4,
    seed: int = 1,
    speed: float = SPEED,
    database_url: str | None = None,
    progress: Callable[[RoundOutcome], None] | None = None,
) -> dict[str, Any]:
    """Start every part, play the season, and return its figures.

    `database_url`: a PostgreSQL server's admin URL; Prefect then runs on a throwaway database
    there (as in production), else on SQLite.
    """
    from deployments.server import throwaway_prefect_server

    season = Season(workdir, speed=speed, seed=seed)
    port = free_port()
    server_settings = {
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",  # the driver is the scheduler
        "PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY": "PT1S",
        "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": f"{SLOT_WAIT_S / speed:.4f}",
        # How often the slots of killed runs (expired leases) are freed; a lease is at least 60 s.
        "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": f"{REPOSSESSOR_S / speed:.4f}",
    }
    plans = plan_season(weeks, seed, unused_round_numbers(weeks * len(ROUND_WINDOWS)))
    sink = Sink()
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            api_url = stack.enter_context(
                throwaway_prefect_server(
                    workdir / "prefect",
                    port,
                    server_settings,
                    own=True,
                    postgres_admin_url=database_url,
                )
            )
            sandbox = stack.enter_context(Sandbox(workdir / "sandbox", seed=seed, size="tiny"))
            season.env = season.flow_env(api_url)
            ensure_process_pool(POOL)  # as `numerai-prefect setup` makes it
            season._prefect("--no-prompt", "deploy", "--all")
            receiver_port = free_port()
            season.receiver_url = f"http://127.0.0.1:{receiver_port}"
            receiver_args = ["-m", "deployments.receiver", "--host", "127.0.0.1"]
            with (
                background(
                    [*receiver_args, "--port", str(receiver_port)],
                    season.env,
                    workdir / "receiver.log",
                ) as receiver,
                background(
                    ["-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
                    season.env,
                    workdir / "worker.log",
                ) as worker,
            ):
                season.worker = worker
                try:
                    wait_healthy(
                        f"{season.receiver_url}/health", receiver, workdir / "receiver.log"
                    )
                    season.save_blocks(sandbox, sink)
                    outcomes = season.play(sandbox, sink, plans, progress)
                    settle_notifications(sink)
                finally:
                    # A season stopped mid-round: the worker leaves its runs' processes behind.
                    for pid in children(worker.pid):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
    finally:
        sink.close()
    figures = summarize(outcomes, sink.notices)
    figures["wall_seconds"] = time.perf_counter() - started
    figures["settings"] = {"weeks": weeks, "seed": seed, "speed": speed}
    return figures


def explanation_lines(figures: dict[str, Any]) -> list[str]:
    """Why each missed model of each round was missed: its runs, their states, the last error."""
    lines: list[str] = []
    for r in figures["rounds"]:
        for model, runs in r["explanations"].items():
            minute = "" if r["working_minute"] else " (no working minute)"
            lines.append(f"round {r['number']} {r['window']}, {model} missed{minute}:")
            for run in runs:
                task = (
                    f"{run['task_run']} {run['task_state']}"
                    if run["task_run"]
                    else "never reached the model"
                )
                lines.append(
                    f"  {run['run']} ({run['deployment']}) {run['state']}: {run['message']}"
                )
                lines.append(f"    {task}; last error: {run['last_error'] or '-'}")
            if not runs:
                lines.append("  no run of the round")
            notices = r["notices"] or ["none"]
            lines += [f"  notified: {_first_line(n, 200)}" for n in notices]
    return lines


def print_report(figures: dict[str, Any]) -> None:
    """The season, one line per round, why each miss happened, then the totals."""
    seed = figures["settings"]["seed"]
    print(f"season of {plural(figures['settings']['weeks'], 'week')}, seed {seed}")
    for r in figures["rounds"]:
        print(round_line(RoundOutcome(**{k: v for k, v in r.items() if k != "missed"})))
    print(*["", *explanation_lines(figures)] if figures["rounds_missed"] else [], sep="\n")
    print()
    rows = [
        ("rounds open", figures["rounds_open"]),
        ("rounds with a working minute", figures["rounds_with_a_working_minute"]),
        *(
            (f"verified before the close, {m}", n)
            for m, n in figures["verified_before_close"].items()
        ),
        ("uploads after the close (goal 0)", figures["uploads_after_close"]),
        ("duplicate uploads (goal 0)", figures["duplicate_uploads"]),
        ("webhooks refused (goal 0)", figures["webhooks_refused"]),
        ("webhooks unanswered", figures["webhooks_unanswered"]),
        ("rounds missed", figures["rounds_missed"]),
        ("missed rounds notified", figures["missed_rounds_notified"]),
        ("every round with a working minute covered", figures["every_workable_round_covered"]),
        ("flow runs", figures["flow_runs"]),
        ("notifications", figures["notifications"]),
        ("wall time", f"{figures['wall_seconds']:.0f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def parse_seeds(text: str) -> list[int]:
    """Seeds as "3", "1-5" or "1,4,7-9"."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def sweep_summary(seasons: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per season of the sweep."""
    return {
        "seasons": [
            {
                "seed": f["settings"]["seed"],
                "weeks": f["settings"]["weeks"],
                "rounds_open": f["rounds_open"],
                "rounds_with_a_working_minute": f["rounds_with_a_working_minute"],
                "verified_before_close": f["verified_before_close"],
                "uploads_after_close": f["uploads_after_close"],
                "duplicate_uploads": f["duplicate_uploads"],
                "workable_rounds_missed": f["workable_rounds_missed"],
                "missed_rounds_notified": f"{f['missed_rounds_notified']} of {f['rounds_missed']}",
                "flow_runs": f["flow_runs"],
                "wall_seconds": round(f["wall_seconds"]),
            }
            for f in seasons
        ],
        "every_workable_round_covered": all(f["every_workable_round_covered"] for f in seasons),
        "uploads_after_close": sum(f["uploads_after_close"] for f in seasons),
        "duplicate_uploads": sum(f["duplicate_uploads"] for f in seasons),
    }


def print_sweep(summary: dict[str, Any]) -> None:
    """The sweep, one row per seed (a Markdown table, as the README shows it)."""
    print(
        "| seed | rounds | with a working minute | verified per model | workable rounds missed "
        "| late | duplicates | missed rounds notified | flow runs | wall time |"
    )
    print("|---:|---:|---:|---|---|---:|---:|---|---:|---:|")
    for s in summary["seasons"]:
        verified = ", ".join(f"{m} {n}" for m, n in s["verified_before_close"].items())
        missed = ", ".join(map(str, s["workable_rounds_missed"])) or "none"
        print(
            f"| {s['seed']} | {s['rounds_open']} | {s['rounds_with_a_working_minute']} "
            f"| {verified} | {missed} | {s['uploads_after_close']} | {s['duplicate_uploads']} "
            f"| {s['missed_rounds_notified']} | {s['flow_runs']} | {s['wall_seconds']} s |"
        )


def main(argv: list[str] | None = None) -> int:
    """Play one season per seed, print each report, and write them all."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=1)
    parser.add_argument("--seeds", default="1", help='e.g. "3", "1-5" or "1,4,7-9"')
    parser.add_argument("--seed", type=int, help="one seed (same as --seeds N)")
    parser.add_argument("--speed", type=float, default=SPEED)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "season-results.json")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(TEST_DATABASE_ENV),
        help="a PostgreSQL server's admin URL (postgresql+asyncpg://...) to run Prefect on, in a "
        f"throwaway database [default: ${TEST_DATABASE_ENV}; unset: SQLite]",
    )
    parser.add_argument("--keep", type=Path, help="keep each season's logs under this folder")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else parse_seeds(args.seeds)
    # Stopped from outside, the season still stops the server, worker and receiver it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    started = time.perf_counter()
    seasons = []
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="numerai-season-") as tmp:
            workdir = args.keep / f"seed-{seed}" if args.keep else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            figures = run_season(
                workdir, args.weeks, seed, args.speed, args.database_url, print_progress(seed)
            )
        print_report(figures)
        print(flush=True)
        seasons.append(figures)
    summary = sweep_summary(seasons)
    summary["sweep_wall_seconds"] = round(time.perf_counter() - started)
    print_sweep(summary)
    print(f"sweep wall time {summary['sweep_wall_seconds']} s")
    args.out.write_text(json.dumps({**summary, "details": seasons}, indent=2, default=str))
    print(f"\nwritten to {args.out}")
    return 0 if summary["every_workable_round_covered"] and len(seasons) == len(seeds) else 1


if __name__ == "__main__":
    sys.exit(main())
