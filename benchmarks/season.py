"""A simulated season: weeks of Numerai's round windows on the real deployments, with faults.

    make season                                   # four weeks, seed 1
    python -m benchmarks.season --weeks 1 --seed 3

Everything a production install runs is real: a Prefect server with its automations, the
project's prefect.yaml deployed with `prefect deploy --all`, a process worker, the webhook
receiver over HTTP, and a notification block pointing at a local sink. Numerai is the sandbox.

Time. The sandbox's clock runs SPEED times faster than the wall clock and jumps to the next
event whenever no run is under way. Events are a round opening (the sandbox POSTs each model's
webhook to the receiver) and the round-retry times of its window, read from model/schedule.py;
Prefect's scheduler keeps wall time, so it is off and the driver starts the round-retry
deployment at those simulated times, whether or not earlier runs are still going. Time settings
(retry delays, API timeouts, the close margin, the patience in an outage, Prefect's wait for a
deployment's concurrency slot) are divided by SPEED so that they last as long in simulated time
as in production. Clients see the sandbox's times translated to the wall clock, so the flows
compare round times with their own clock exactly as they do against Numerai.

Faults. Every scenario of SCENARIOS is dealt to the rounds in a seeded order (a short season
gets several per round): bursts of GraphQL errors or HTTP 5xx, a hanging call, slow answers, a
download cut short or corrupted, an upload silently dropped, the flow process killed mid-run,
the webhook delivered many times at once, and outages (every call answers 503) from the opening
until a random time inside the window or past the close.

Report: rounds open; per model, rounds with a verified submission before the close; uploads after
the close (must be 0); duplicate uploads beyond the first (must be 0); missed rounds and whether
a notification was sent for each; whether every round that had a working minute was covered.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
from pydantic import SecretStr

from benchmarks.bench import ROOT, rank_feature
from deployments.processes import background, free_port, wait_healthy
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
        plan.outage_until = plan.opens + window.length * share
        plan.faults.append(Fault("http_status", None, status=503, until=plan.outage_until))


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

    @property
    def missed(self) -> list[str]:
        """Models without a submission before the close."""
        return [m for m, ok in self.verified.items() if not ok]


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

    def kill_a_running_flow(self, timeout: float = 120) -> bool:
        """SIGKILL the flow-run process the worker started, once a run is Running."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(r.state_type.value == "RUNNING" for r in self.active_runs()):
                time.sleep(self.rng.uniform(0.0, 2.0))  # somewhere in the run
                pids = children(self.worker.pid)
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return bool(pids)
            time.sleep(0.1)
        return False

    # -- the season ----------------------------------------------------------------------

    def advance_to(self, sandbox: Sandbox, at: dt.datetime) -> None:
        """Let the clock run until `at`, jumping to it once no run is under way."""
        while sandbox.now() < at:
            if not self.active_runs():
                sandbox.set_clock(at, self.speed)
                return
            time.sleep(0.25)

    def play(self, sandbox: Sandbox, sink: Sink, plans: list[RoundPlan]) -> list[RoundOutcome]:
        """Walk the clock through every round; start what production would start, when."""
        from prefect.deployments import run_deployment

        outcomes = []
        sandbox.set_clock(plans[0].opens, self.speed)  # the season starts at its first opening
        for index, plan in enumerate(plans):
            sink.round_index = index
            runs_before = self._run_count()
            self.advance_to(sandbox, plan.opens)
            for fault in plan.faults:
                sandbox.inject(fault)
            delivered = len(sandbox.webhook_deliveries)
            sandbox.open_round(plan.number, opens=plan.opens, closes=plan.closes)
            # Deliveries run in the background; each ends once the receiver created its run.
            sandbox.wait_for_deliveries(delivered + len(MODELS), timeout=120)
            if "repeated-webhook" in plan.scenarios:
                self._repeat_webhooks(sandbox, plan.number)
            if "killed-run" in plan.scenarios:
                self.kill_a_running_flow()
            window = next(w for w in ROUND_WINDOWS if w.name == plan.window)
            for offset in retry_offsets(window):
                # On time even if earlier runs are still going, as the cron schedule would.
                self.advance_to(sandbox, plan.opens + offset)
                run_deployment("submit-round/round-retry", timeout=0)
            self.advance_to(sandbox, plan.closes)
            self.wait_idle()  # a run still going at the close ends (and must not upload)
            sandbox.clear_faults()
            outcomes.append(self._outcome(sandbox, plan, self._run_count() - runs_before))
        return outcomes

    def _run_count(self) -> int:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return int(client.count_flow_runs())

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
        outcome.notified = any(
            n.round_index == index or str(outcome.number) in n.body for n in notices
        )
    missed = [o for o in outcomes if o.missed]
    workable = [o for o in outcomes if o.working_minute]
    return {
        "rounds_open": len(outcomes),
        "rounds_with_a_working_minute": len(workable),
        "verified_before_close": {m: sum(o.verified[m] for o in outcomes) for m in MODELS},
        "uploads_after_close": sum(o.late_uploads for o in outcomes),
        "duplicate_uploads": sum(max(0, n - 1) for o in outcomes for n in o.submissions.values()),
        "rounds_missed": len(missed),
        "missed_rounds_notified": sum(o.notified for o in missed),
        "workable_rounds_missed": [o.number for o in workable if o.missed],
        "every_workable_round_covered": not any(o.missed for o in workable),
        "flow_runs": sum(o.runs for o in outcomes),
        "notifications": len(notices),
        "rounds": [{**asdict(o), "missed": o.missed} for o in outcomes],
    }


def run_season(
    workdir: Path, weeks: int = 4, seed: int = 1, speed: float = SPEED
) -> dict[str, Any]:
    """Start every part, play the season, and return its figures."""
    from deployments.server import prefect_server

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
    # Round numbers no other run on this machine uses: deployed runs cache live data by number.
    first_round = random.SystemRandom().randint(10_000_000, 90_000_000)
    plans = plan_season(weeks, seed, first_round)
    sink = Sink()
    started = time.perf_counter()
    try:
        with (
            prefect_server(workdir / "prefect", port, server_settings, own=True) as api_url,
            Sandbox(workdir / "sandbox", seed=seed, size="tiny") as sandbox,
        ):
            season.env = season.flow_env(api_url)
            season._prefect("work-pool", "create", POOL, "--type", "process", "--overwrite")
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
                wait_healthy(f"{season.receiver_url}/health", receiver, workdir / "receiver.log")
                season.save_blocks(sandbox, sink)
                outcomes = season.play(sandbox, sink, plans)
                settle_notifications(sink)
    finally:
        sink.close()
    figures = summarize(outcomes, sink.notices)
    figures["wall_seconds"] = time.perf_counter() - started
    figures["settings"] = {"weeks": weeks, "seed": seed, "speed": speed}
    return figures


def print_report(figures: dict[str, Any]) -> None:
    """The season, one line per round, then the totals."""
    print(f"{'round':>9}  {'window':<9}  {'faults':<40}  {'runs':>4}  result")
    for r in figures["rounds"]:
        result = "covered" if not r["missed"] else f"missed {','.join(r['missed'])}"
        if r["missed"]:
            result += ", notified" if r["notified"] else ", NOT notified"
        if not r["working_minute"]:
            result += " (no working minute)"
        faults = ", ".join(r["scenarios"])
        print(f"{r['number']:>9}  {r['window']:<9}  {faults:<40}  {r['runs']:>4}  {result}")
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


def main(argv: list[str] | None = None) -> int:
    """Play a season and print its report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed", type=float, default=SPEED)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "season-results.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="numerai-season-") as tmp:
        figures = run_season(Path(tmp), args.weeks, args.seed, args.speed)
    print_report(figures)
    args.out.write_text(json.dumps(figures, indent=2, default=str))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
