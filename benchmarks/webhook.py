"""Webhook benchmark: receiver latency on loopback, webhook → verified submission, and bursts.

    python -m benchmarks.webhook [--requests 1000] [--rounds 3]
    python -m benchmarks.webhook --burst-only [--burst 20 50] \
        [--database-url postgresql+asyncpg://USER:PASS@127.0.0.1:PORT/DB]

A burst is what Numerai does when a round opens: every model's webhook at once, each with its
own trigger id. It is measured on a Prefect server of its own on SQLite and, with
--database-url (or $NUMERAI_TEST_DATABASE_URL), on a second server on a throwaway database of
that PostgreSQL server, side by side: answers that were not 2xx, the round's runs (exactly one,
also after the same burst is delivered again), every model's trigger kept, and the answer's
p50/p99.
Prints tables and writes benchmarks/webhook-results.json. Figures, never
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import cloudpickle
import httpx
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import SecretStr

from benchmarks.bench import ROOT, rank_feature
from deployments.process_pool import ensure_process_pool
from deployments.processes import background, free_port, wait_healthy
from deployments.server import TEST_DATABASE_ENV, throwaway_prefect_server
from sandbox import Sandbox

ROUND = "submit-round/round"  # the deployment the receiver starts by default
BURST = "submit-round/burst"  # a deployment without a work pool: its runs stay Scheduled
ROUND_MODELS = 10  # models with webhooks in the one-run-per-round comparison


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies in milliseconds."""
    ordered = sorted(samples_ms)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "n": len(ordered),
    }


def _prefect(env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip


def latency(url: str, secret: str, n: int) -> dict[str, Any]:
    """GET /health, webhook with new trigger ids, repeated trigger id, direct Prefect create."""
    results: dict[str, Any] = {}
    with httpx.Client(timeout=30) as client:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            client.get(f"{url}/health")
            samples.append((time.perf_counter() - started) * 1000)
        results["health"] = percentiles(samples)
        for label, trigger in (("webhook_new_trigger", None), ("webhook_repeated_trigger", "same")):
            samples, statuses = [], []
            for i in range(n):
                body = {"triggerId": trigger or f"bench-{i}-{secrets.token_hex(4)}"}
                started = time.perf_counter()
                answer = client.post(f"{url}/webhook/{secret}/bench-latency", json=body)
                samples.append((time.perf_counter() - started) * 1000)
                statuses.append(answer.status_code)
            results[label] = percentiles(samples)
            results[label]["non_200"] = sum(1 for s in statuses if s != 200)
    results["prefect_create_run_direct"] = asyncio.run(_direct_create(n))
    added = (
        results["webhook_new_trigger"]["p50_ms"] - results["prefect_create_run_direct"]["p50_ms"]
    )
    results["receiver_added_p50_ms"] = added
    return results


async def _direct_create(n: int) -> dict[str, float]:
    from prefect.client.orchestration import get_client

    samples = []
    async with get_client() as client:
        deployment = await client.read_deployment_by_name("submit-round/latency")
        for i in range(n):
            started = time.perf_counter()
            await client.create_flow_run_from_deployment(
                deployment.id, parameters={"trigger_id": f"direct-{i}"}, idempotency_key=f"d-{i}"
            )
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


async def _apply_latency_deployment(name: str = "latency") -> None:
    """A deployment without a work pool for the latency runs: they stay Scheduled."""
    from flows import submit_round

    deployment = await submit_round.ato_deployment(name=name)
    await deployment.aapply()


async def _deliver_at_once(
    webhook: str, triggers: dict[str, str], round_number: int
) -> list[tuple[int, float]]:
    """POST every model's trigger at the same moment, each on its own connection: (status, ms)."""
    limits = httpx.Limits(max_connections=len(triggers), max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = asyncio.Event()

        async def deliver(model: str, trigger: str) -> tuple[int, float]:
            await start.wait()
            began = time.perf_counter()
            body = {"triggerId": trigger, "roundNumber": round_number}
            try:
                answer = await client.post(f"{webhook}/{model}", json=body)
                status = answer.status_code
            except httpx.HTTPError:
                status = 0  # no answer at all
            return status, (time.perf_counter() - began) * 1000

        tasks = [asyncio.create_task(deliver(m, t)) for m, t in triggers.items()]
        await asyncio.sleep(0)  # every task waits at the start line
        start.set()
        return list(await asyncio.gather(*tasks))


def _round_outcome(api_url: str, triggers: dict[str, str], round_number: int) -> dict[str, int]:
    """Runs of the burst deployment for the round, and the models whose trigger was kept."""
    from model.names import WEBHOOK_TAG, trigger_variable_name
    from model.triggers import WebhookTrigger

    with SyncPrefectClient(api_url) as prefect:
        deployment = prefect.read_deployment_by_name(BURST)
        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[WEBHOOK_TAG]),
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
            ),
            limit=200,
        )
        kept = 0
        for model, trigger in triggers.items():
            variable = prefect.read_variable_by_name(trigger_variable_name(model))
            stored = WebhookTrigger.from_value(variable.value) if variable else None
            kept += stored is not None and stored.trigger_id == trigger
    key = f"numerai-round-{round_number}"
    return {"runs": sum(1 for r in runs if r.idempotency_key == key), "kept": kept}


def burst(api_url: str, url: str, secret: str, size: int) -> dict[str, Any]:
    """A round opening: `size` models' webhooks at once, each its own trigger, then the same
    again: answers, the round's runs (one is right), triggers kept, latency."""
    tag = secrets.token_hex(4)
    triggers = {f"bench-burst-{size}-{i}-{tag}": f"burst-{i}-{tag}" for i in range(size)}
    round_number = random.randint(100_000, 999_999)
    webhook = f"{url}/webhook/{secret}"
    first = asyncio.run(_deliver_at_once(webhook, triggers, round_number))
    again = asyncio.run(_deliver_at_once(webhook, triggers, round_number))
    outcome = _round_outcome(api_url, triggers, round_number)
    latencies = [ms for _, ms in first]
    return {
        "deliveries": size,
        "non_2xx": sum(1 for status, _ in first if not 200 <= status < 300),
        "statuses": sorted({status for status, _ in first}),
        "repeated_non_2xx": sum(1 for status, _ in again if not 200 <= status < 300),
        "round_runs_created": outcome["runs"],
        "triggers_kept": outcome["kept"],
        **percentiles(latencies),
        "max_ms": max(latencies),
    }


async def _direct_burst(api_url: str, size: int, concurrency: int) -> dict[str, float]:
    """The floor: `size` creates straight through one Prefect client, `concurrency` at a time."""
    from prefect.client.orchestration import PrefectClient

    gate = asyncio.Semaphore(concurrency)
    async with PrefectClient(api_url) as client:
        deployment = await client.read_deployment_by_name(BURST)

        async def create(i: int) -> float:
            began = time.perf_counter()
            async with gate:
                await client.create_flow_run_from_deployment(
                    deployment.id,
                    parameters={"trigger_id": f"direct-{i}"},
                    idempotency_key=f"direct-{size}-{i}-{secrets.token_hex(4)}",
                )
            return (time.perf_counter() - began) * 1000

        began = time.perf_counter()
        samples = await asyncio.gather(*(create(i) for i in range(size)))
        total = (time.perf_counter() - began) * 1000
    return {**percentiles(list(samples)), "total_ms": total, "per_create_ms": total / size}


def burst_on(
    work: Path, database: str, database_url: str | None, sizes: list[int], concurrency: int
) -> dict[str, Any]:
    """Bursts against a Prefect server of their own on SQLite, or on a throwaway database on the
    PostgreSQL server that `database_url` names."""
    home = work / f"prefect-{database}-{concurrency}"
    with throwaway_prefect_server(
        home, free_port(), own=True, postgres_admin_url=database_url
    ) as api_url:
        asyncio.run(_apply_latency_deployment(BURST.split("/")[1]))
        secret = secrets.token_urlsafe(32)
        port = free_port()
        env = {
            **os.environ,
            "PREFECT_API_URL": api_url,
            "NUMERAI_WEBHOOK_SECRET": secret,
            "NUMERAI_DEPLOYMENT": BURST,
            "NUMERAI_WEBHOOK_CREATE_CONCURRENCY": str(concurrency),
        }
        args = ["-m", "deployments.receiver", "--port", str(port), "--log-level", "warning"]
        log = home / "receiver.log"
        with background(args, env, log) as receiver:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(f"{url}/health", receiver, log)
            # The server has just started: its first creates are slower (connections, caches)
            # than on a server that has been up for a day. The creates without the receiver
            # come first and warm it; the receiver's first burst still finds it fresh (no
            # deployment looked up, no connection), as after a restart.
            alone = {size: asyncio.run(_direct_burst(api_url, size, concurrency)) for size in sizes}
            figures = {str(size): burst(api_url, url, secret, size) for size in sizes}
        for size in sizes:
            figures[str(size)]["prefect_alone"] = alone[size]
        return figures


def bursts(
    work: Path, sizes: list[int], database_url: str | None, concurrencies: list[int]
) -> dict[str, Any]:
    """Burst figures per database and creates at once (SQLite always; the other if given)."""
    databases: dict[str, str | None] = {"sqlite": None}
    if database_url:
        databases["postgresql"] = database_url
    return {
        f"{name} creates={concurrency}": burst_on(work, name, url, sizes, concurrency)
        for name, url in databases.items()
        for concurrency in concurrencies
    }


def burst_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per server and burst size."""
    rows = []
    for server, by_size in results.items():
        for size, f in by_size.items():
            rows.append(
                (
                    f"burst of {size}, {server}",
                    f"non-2xx {f['non_2xx']} (again: {f['repeated_non_2xx']}), "
                    f"round runs {f['round_runs_created']}, "
                    f"triggers kept {f['triggers_kept']} of {f['deliveries']}, "
                    f"p50 {f['p50_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, max {f['max_ms']:.0f} ms",
                )
            )
            alone = f["prefect_alone"]
            rows.append(
                (
                    f"  the same {size} creates without the receiver",
                    f"all done in {alone['total_ms']:.0f} ms ({alone['per_create_ms']:.0f} ms "
                    f"per create), p99 {alone['p99_ms']:.0f} ms",
                )
            )
    return rows


def find_webhook_run(prefect: SyncPrefectClient, key: str, timeout: float = 60) -> FlowRun:
    """The run the receiver created under an idempotency key: its tag and deployment, newest
    first (a round's run is `numerai-round-N`, see model.triggers).

    Polled, and never the first page of every run: the latency runs alone are thousands.
    """
    from model.names import WEBHOOK_TAG

    deployment = prefect.read_deployment_by_name(ROUND)
    deadline = time.monotonic() + timeout
    while True:
        runs = prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[WEBHOOK_TAG]),
                deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
            ),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=50,
        )
        found = [r for r in runs if r.idempotency_key == key]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise SystemExit(f"no run {key} within {timeout:.0f} s")
        time.sleep(0.2)


def to_verified(sandbox: Sandbox, url: str, secret: str, rounds: int) -> list[dict[str, float]]:
    """Open rounds that fire the webhook; time each stage until the submission is verified."""
    from prefect.client.orchestration import get_client

    from blocks import NumeraiAPI

    client = NumeraiAPI(sandbox.public_id, sandbox.secret_key, api_url=sandbox.api_url)
    model_id = sandbox.models["bench_webhook"]
    client.set_submission_webhook(model_id, f"{url}/webhook/{secret}/bench-webhook")
    figures = []
    for _ in range(rounds):
        delivered = len(sandbox.webhook_deliveries)
        opened = time.time()
        current = sandbox.open_round(number=random.randint(10_000, 99_999))
        [delivery] = sandbox.wait_for_deliveries(delivered + 1, timeout=30)[delivered:]
        while not [s for s in sandbox.submissions(model_id) if s.round_number == current.number]:
            if time.time() - opened > 300:
                raise SystemExit("no verified submission within 300 s")
            time.sleep(0.05)
        with get_client(sync_client=True) as prefect:
            run = find_webhook_run(prefect, f"numerai-round-{delivery.round_number}")
            while not (run.state and run.state.is_final()):
                time.sleep(0.2)
                run = prefect.read_flow_run(run.id)
            states = {s.name: s.timestamp.timestamp() for s in prefect.read_flow_run_states(run.id)}
        verified_at = max(
            s.inserted_at.timestamp()
            for s in sandbox.submissions(model_id)
            if s.round_number == current.number
        )
        figures.append(
            {
                "webhook_to_run_created_s": run.created.timestamp() - opened,  # type: ignore[union-attr]
                "queue_wait_s": states["Pending"] - run.created.timestamp(),  # type: ignore[union-attr]
                "process_start_s": states["Running"] - states["Pending"],
                "flow_work_s": verified_at - states["Running"],
                "webhook_to_verified_s": verified_at - opened,
            }
        )
    return figures


def keep_only_models(blocks: list[str]) -> None:
    """Delete every other Numerai Model block of this (the benchmark's own) server: a round's
    run submits every saved model."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        for document in prefect.read_block_documents_by_type("numerai-model"):
            if document.name not in blocks:
                prefect.delete_block_document(document.id)


def _round_figures(
    sandbox: Sandbox, verified_after: float, downloads_before: int, run_ids: set[Any]
) -> dict[str, float]:
    """Flow runs (tasks, on ECS) that ran for the round, their seconds, live files fetched."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        runs = []
        for run_id in run_ids:
            run = prefect.read_flow_run(run_id)
            while not (run.state and run.state.is_final()):
                time.sleep(0.2)
                run = prefect.read_flow_run(run_id)
            runs.append(run)
    seconds = [
        (r.end_time - r.start_time).total_seconds() for r in runs if r.start_time and r.end_time
    ]
    live = [p for _, p, _ in sandbox.downloads[downloads_before:] if p.endswith("/live.parquet")]
    return {
        "tasks_started": len(seconds),
        "live_downloads": len(live),
        "task_seconds": sum(seconds),
        "to_all_verified_s": verified_after,
    }


def round_runs(
    sandbox: Sandbox, url: str, secret: str, predictor: Path, n: int, work: Path
) -> dict[str, Any]:
    """One round of `n` models with webhooks, two ways, on the same worker: the receiver's one
    run per round, against one run per model (numerai-cli's one task per webhook)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from blocks import NumeraiAPI, NumeraiModel

    names = [f"bench_round_{i}" for i in range(n)]
    blocks = [name.replace("_", "-") for name in names]
    for name, block in zip(names, blocks, strict=True):
        sandbox.add_model(name)
        NumeraiModel(model_name=name, predictor_path=str(predictor), feature_set="small").save(
            block, overwrite=True
        )
    keep_only_models(blocks)
    client = NumeraiAPI(sandbox.public_id, sandbox.secret_key, api_url=sandbox.api_url)
    model_ids = [sandbox.models[name] for name in names]

    def all_verified(number: int, opened: float) -> float:
        while not all(
            any(s.round_number == number for s in sandbox.submissions(m)) for m in model_ids
        ):
            if time.time() - opened > 600:
                raise SystemExit(f"round {number}: not every model verified within 600 s")
            time.sleep(0.1)
        return time.time() - opened

    results: dict[str, Any] = {"models": n}
    # Ours: every model's webhook registered; the round's webhooks start one run.
    for model_id, block in zip(model_ids, blocks, strict=True):
        client.set_submission_webhook(model_id, f"{url}/webhook/{secret}/{block}")
    delivered, downloads = len(sandbox.webhook_deliveries), len(sandbox.downloads)
    opened = time.time()
    current = sandbox.open_round(number=random.randint(10_000, 99_999))
    sandbox.wait_for_deliveries(delivered + n, timeout=60)
    after = all_verified(current.number, opened)
    with get_client(sync_client=True) as prefect:
        run = find_webhook_run(prefect, f"numerai-round-{current.number}")
    # A size group would be a run of its own, started by this one (none here: one size).
    results["one_run_per_round"] = _round_figures(sandbox, after, downloads, {run.id})
    # numerai-cli's way: each webhook starts a task of its own for its model.
    for model_id in model_ids:
        client.set_submission_webhook(model_id, None)
    downloads = len(sandbox.downloads)
    opened = time.time()
    current = sandbox.open_round(number=random.randint(10_000, 99_999))
    started = [
        cast(
            FlowRun,
            run_deployment(
                ROUND,
                # A folder each, as each container has its own disk.
                parameters={
                    "models": [block],
                    "trigger_id": f"cli-{block}-{current.number}",
                    "data_dir": str(work / f"cli-data-{block}-{current.number}"),
                },
                timeout=0,
            ),
        )
        for block in blocks
    ]
    after = all_verified(current.number, opened)
    results["one_run_per_model"] = _round_figures(
        sandbox, after, downloads, {r.id for r in started}
    )
    return results


def measure(
    work: Path, sandbox: Sandbox, env: dict[str, str], requests: int, rounds: int
) -> dict[str, Any]:
    """Both webhook figures, against the Prefect server in env, with the round deployment made
    and a process worker on its pool already running."""
    from blocks import NumeraiCredentials, NumeraiModel

    asyncio.run(_apply_latency_deployment())
    secret = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receiver_env = {**env, "NUMERAI_WEBHOOK_SECRET": secret}
    NumeraiCredentials(
        public_id=sandbox.public_id,
        secret_key=SecretStr(sandbox.secret_key),
        api_url=sandbox.api_url,
    ).save("numerai", overwrite=True)
    predictor = work / "rank.pkl"
    predictor.write_bytes(cloudpickle.dumps(rank_feature))
    sandbox.add_model("bench_webhook")
    NumeraiModel(
        model_name="bench_webhook", predictor_path=str(predictor), feature_set="small"
    ).save("bench-webhook", overwrite=True)
    receiver_cmd = ["-m", "deployments.receiver", "--port", str(port), "--log-level", "warning"]
    results: dict[str, Any] = {"requests": requests}
    log = work / "receiver-latency.log"
    latency_env = {**receiver_env, "NUMERAI_DEPLOYMENT": "submit-round/latency"}
    with background(receiver_cmd, latency_env, log) as receiver:
        wait_healthy(f"{url}/health", receiver, log)
        results["latency"] = latency(url, secret, requests)
    log = work / "receiver.log"
    with background(receiver_cmd, receiver_env, log) as receiver:
        wait_healthy(f"{url}/health", receiver, log)
        keep_only_models(["bench-webhook"])
        results["to_verified"] = to_verified(sandbox, url, secret, rounds)
        results["round_runs"] = round_runs(sandbox, url, secret, predictor, ROUND_MODELS, work)
    return results


def worker_env(api_url: str) -> dict[str, str]:
    """The environment of the worker and the flows it starts: this server, polled every second."""
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def worker_command(pool: str) -> list[str]:
    """A process worker on a pool."""
    return ["-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks on their own servers and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--burst", type=int, nargs="+", default=[20, 50], metavar="N")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(TEST_DATABASE_ENV),
        help="also burst against a Prefect server on PostgreSQL: a server's admin URL "
        "(postgresql+asyncpg://USER:PASS@127.0.0.1:PORT/DB), a throwaway database on it "
        f"[default: ${TEST_DATABASE_ENV}]",
    )
    parser.add_argument(
        "--create-concurrency",
        type=int,
        nargs="+",
        default=[2],
        metavar="N",
        help="NUMERAI_WEBHOOK_CREATE_CONCURRENCY of the receiver under a burst (several: compare)",
    )
    parser.add_argument("--burst-only", action="store_true", help="skip latency and rounds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "webhook-results.json")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="numerai-webhook-bench-") as tmp:
        work = Path(tmp)
        results["bursts"] = bursts(work, args.burst, args.database_url, args.create_concurrency)
        if not args.burst_only:
            # On PostgreSQL when a server is given (the production setup), else SQLite.
            with throwaway_prefect_server(
                work / "prefect", free_port(), postgres_admin_url=args.database_url
            ) as api_url:
                env = worker_env(api_url)
                os.environ.update(PREFECT_API_URL=api_url)
                ensure_process_pool("numerai-local")  # as `numerai-prefect setup` makes it
                _prefect(env, "--no-prompt", "deploy", "--all")
                with (
                    Sandbox(work / "sandbox", seed=2, size=args.size) as sandbox,
                    background(worker_command("numerai-local"), env, work / "worker.log"),
                ):
                    results.update(measure(work, sandbox, env, args.requests, args.rounds))
    print_table(results)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.out}")
    return 0


def print_table(results: dict[str, Any]) -> None:
    """Latency percentiles and the stages of webhook → verified, one line each."""
    rows = table_rows(results)
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def table_rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The table's rows: (what, figures)."""
    rows = burst_rows(results.get("bursts", {}))
    if "latency" not in results:
        return rows
    lat = results["latency"]
    for name, v in lat.items():
        if isinstance(v, dict):
            figures = f"p50 {v['p50_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms"
            rows.append((f"{name.replace('_', ' ')} (n={v['n']})", figures))
    added = lat["receiver_added_p50_ms"]
    rows.append(("receiver adds (p50, webhook - direct create)", f"{added:.1f} ms"))
    for key in ("webhook_to_run_created_s", "queue_wait_s", "process_start_s", "flow_work_s",
                "webhook_to_verified_s"):  # fmt: skip
        values = [r[key] for r in results["to_verified"]]
        rows.append((key.removesuffix("_s").replace("_", " "),
                     f"median {statistics.median(values):.2f} s (of {len(values)})"))  # fmt: skip
    if "round_runs" in results:
        rr = results["round_runs"]
        ours, cli = rr["one_run_per_round"], rr["one_run_per_model"]
        rows.append((f"round of {rr['models']} models: one run per round / one per model",
                     f"tasks {ours['tasks_started']} / {cli['tasks_started']}, "
                     f"live downloads {ours['live_downloads']} / {cli['live_downloads']}, "
                     f"task-seconds {ours['task_seconds']:.1f} / {cli['task_seconds']:.1f}, "
                     f"all verified after {ours['to_all_verified_s']:.1f} / "
                     f"{cli['to_all_verified_s']:.1f} s"))  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
