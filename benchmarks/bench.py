"""Benchmarks on the sandbox: prints a table (figures and ratios side by side) and writes JSON.

    make bench                     # v5.3-size data (about 6,700 live rows, 2,748 + 807 features)
    python -m benchmarks.bench --size tiny --repeats 1 --models 1,5

Timings vary with the machine's load; compare the ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from uuid import UUID

import cloudpickle
from pydantic import SecretStr

from deployments.process_pool import ensure_process_pool
from deployments.processes import background, free_port
from deployments.server import TEST_DATABASE_ENV, throwaway_prefect_server
from sandbox import SIZES, Sandbox
from sandbox.data import resolve_size

ROOT = Path(__file__).resolve().parents[1]
POOL = "numerai-local"
ROUND_DEPLOYMENT = "submit-round/round"
WORKER_QUERY_SECONDS = 1  # benchmarks.webhook.worker_env
SEED = 2  # one seed everywhere: the example model needs the same feature names


def rank_feature(live_features: Any, live_benchmark_models: Any) -> Any:
    """A light model: the rank of one feature (what 20 light models each do)."""
    feature = next(c for c in live_features.columns if c.startswith("feature_"))
    return live_features[feature].rank(pct=True, method="first").to_frame("prediction")


def child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measured command in a fresh process; its last stdout line is JSON figures.

    Adds process_s: the whole process as the parent saw it, interpreter start and imports
    included.
    """
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-m", "benchmarks.children", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    process_s = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"benchmark child {args[0]} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["process_s"] = process_s
    return figures


def deploy_round(workdir: Path, env: dict[str, str]) -> None:
    """The submit-round/round deployment on a process pool, as `prefect deploy` makes it.

    A file of its own rather than the project's prefect.yaml: the same flow, entrypoint and
    pull step, without the retry schedules, so no scheduled run lands on the worker mid-bench.
    """
    spec = workdir / "bench-prefect.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            name: numerai-prefect-bench
            prefect-version: 3.9.1
            build: null
            push: null
            pull:
              - prefect.deployments.steps.set_working_directory:
                  directory: "{ROOT}"
            deployments:
              - name: round
                entrypoint: flows/submit_round.py:submit_round
                parameters: {{credentials_block: numerai, data_dir: "{workdir / "data"}"}}
                work_pool: {{name: {POOL}, work_queue_name: default}}
            """
        )
    )
    ensure_process_pool(POOL)  # as `numerai-prefect setup` makes it
    subprocess.run(  # noqa: S603 - our interpreter
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", spec],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


class Bench:
    """One sandbox, one Prefect server, and the blocks the flow runs need."""

    def __init__(self, sandbox: Sandbox, workdir: Path) -> None:
        self.sandbox = sandbox
        self.workdir = workdir
        self.results: dict[str, Any] = {}

    def save_blocks(self, names: list[str], predictor: Path, feature_set: str) -> list[str]:
        """Credentials and one model block per name; returns the block names."""
        from blocks import NumeraiCredentials, NumeraiModel, model_block_name

        NumeraiCredentials(
            public_id=self.sandbox.public_id,
            secret_key=SecretStr(self.sandbox.secret_key),
            api_url=self.sandbox.api_url,
        ).save("bench", overwrite=True)
        blocks = []
        for name in names:
            self.sandbox.add_model(name)
            NumeraiModel(
                model_name=name, predictor_path=str(predictor), feature_set=feature_set
            ).save(model_block_name(name), overwrite=True)
            blocks.append(model_block_name(name))
        return blocks

    def flow_run(self, blocks: list[str], *limits: str) -> dict[str, Any]:
        """One submit-round flow called in a fresh process, on a freshly opened round."""
        self.sandbox.open_round()
        return child(
            "flow",
            "--models", ",".join(blocks),
            "--credentials-block", "bench",
            "--data-dir", str(self.workdir / "data"),
            *limits,
        )  # fmt: skip

    def worker_run(self, blocks: list[str]) -> dict[str, Any]:
        """One run of the deployment on the process pool, from its creation to a final state."""
        from prefect.client.orchestration import get_client

        self.sandbox.open_round()
        parameters = {
            "models": blocks,
            "credentials_block": "bench",
            "data_dir": str(self.workdir / "data"),
        }
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(ROUND_DEPLOYMENT)
            created = time.time()
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
            while not (run.state and run.state.is_final()):
                if time.time() - created > 600:
                    raise SystemExit(f"flow run {run.id} not final within 600 s")
                time.sleep(0.1)
                run = client.read_flow_run(run.id)
            if not run.state.is_completed():
                raise SystemExit(f"flow run ended {run.state.name}: {run.state.message}")
            states = {
                s.type.value: s.timestamp.timestamp() for s in client.read_flow_run_states(run.id)
            }
            work = flow_work(client, run.id)
        final = run.state.timestamp.timestamp()
        running = final - states["RUNNING"]
        return {
            "seconds": final - created,
            "to_pending_s": states["PENDING"] - created,
            "pending_to_running_s": states["RUNNING"] - states["PENDING"],
            "running_to_final_s": running,
            **work,
            # numerai-tools' import runs beside the download, so it is not part of the sum.
            "prefect_own_s": running - sum(v for k, v in work.items() if k != "import_s"),
        }

    def bare_run(self, model: str, predictor: Path, feature_set: str) -> dict[str, Any]:
        """The same round done by a bare numerapi script, on a freshly opened round."""
        self.sandbox.open_round()
        return child(
            "bare",
            "--api-url", self.sandbox.api_url,
            "--model", model,
            "--predictor", str(predictor),
            "--feature-set", feature_set,
            "--data-version", self.sandbox.data_version,
            env={
                "NUMERAI_PUBLIC_ID": self.sandbox.public_id,
                "NUMERAI_SECRET_KEY": self.sandbox.secret_key,
            },
        )  # fmt: skip


CPU_KEYS = ("cpu_flow_s", "cpu_sandbox_s", "cpu_server_and_rest_s")

# The flow's tasks, by what they do (the rest of a run's time is Prefect's own bookkeeping). A
# model's task does its prediction, validation, upload and verification, under its lease.
WORK_OF_TASK = {
    "download_live_data": "download_s",
    "read_live_frames": "download_s",
    "submit_model": "model_s",
    "publish_round_report": "reports_s",
    "import_numerai_tools": "import_s",
}


def flow_work(client: Any, run_id: Any) -> dict[str, float]:
    """Seconds the run spent in its tasks, by kind; the round's other Numerai calls (round,
    data version, account) as api_s; numerai-tools' import, beside the download, as import_s."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    tasks = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id])),
        limit=200,
    )
    work = dict.fromkeys(["download_s", "model_s", "api_s", "reports_s", "import_s"], 0.0)
    for task in tasks:
        kind_of = task.task_key.rsplit("-", 1)[0]
        if not (task.start_time and task.end_time):
            continue
        kind = WORK_OF_TASK.get(kind_of, "api_s")
        work[kind] += (task.end_time - task.start_time).total_seconds()
    return work


def train_example(sandbox: Sandbox, workdir: Path, feature_set: str) -> Path:
    """The example model trained on the sandbox's training data."""
    from model.example import train_from_files

    version = sandbox.data_version
    train = sandbox.store.path(version, "train.parquet", 0)
    features = sandbox.store.path(version, "features.json", 0)
    return train_from_files(train, features, feature_set, workdir / f"example-{feature_set}.pkl")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


# Fixed costs of a flow run's process, each timed in a fresh process: the interpreter alone, the
# interpreter loading the flow (ours, Prefect, pandas, numerapi), which the start cannot go
# below, and that with numerai-tools (scipy and scikit-learn), which a task of the flow imports
# while the live data downloads.
START_FLOORS = {
    "interpreter": "pass",
    "flow_imports": "import flows",
    "flow_and_numerai_tools_imports": "import flows, numerai_tools.submissions",
}


def process_seconds(code: str) -> float:
    """Wall time of a fresh `python -c code`, from start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)  # noqa: S603 - our own code
    return time.perf_counter() - started


def orchestration(bench: Bench, example: Path, feature_set: str, repeats: int) -> None:
    """1. the same round by a bare numerapi script and by the flow: wall time, ratio.

    Rounds alternate bare / deployment on the worker / flow in a fresh process, so that a
    change in the machine's load falls on all three; medians of the repeats are compared.
    """
    [block] = bench.save_blocks(["bench_example"], example, feature_set)
    bare, worker, direct = [], [], []
    floors: dict[str, list[float]] = {name: [] for name in START_FLOORS}
    for _ in range(repeats):
        bare.append(bench.bare_run("bench_example", example, feature_set))
        worker.append(bench.worker_run([block]))
        direct.append(bench.flow_run([block]))
        for name, code in START_FLOORS.items():
            floors[name].append(process_seconds(code))
    figures: dict[str, Any] = {
        "bare_process_s": _median(bare, "process_s"),
        "bare_in_script_s": _median(bare, "seconds"),
        "flow_worker_s": _median(worker, "seconds"),
        "flow_worker_stages_s": {
            key: _median(worker, key)
            for key in ("to_pending_s", "pending_to_running_s", "running_to_final_s")
        },
        "flow_worker_work_s": {
            key: _median(worker, key)
            for key in ("download_s", "model_s", "api_s", "reports_s", "prefect_own_s", "import_s")
        },
        "start_floors_s": {name: statistics.median(times) for name, times in floors.items()},
        "flow_process_s": _median(direct, "process_s"),
        "flow_in_process_s": _median(direct, "seconds"),
        "repeats": repeats,
        "runs": {"bare": bare, "worker": worker, "flow_process": direct},
        "worker_query_seconds": WORKER_QUERY_SECONDS,
        "note": (
            "medians. bare_process_s: a fresh python process doing the round with numerapi "
            "(interpreter start, imports, download, predict, upload, verify), timed by its "
            "parent. flow_worker_s: from creating a run of the submit-round deployment (server "
            "and process worker already up, worker polling every second) to the run's final "
            "state; includes the worker's poll, the new flow process (interpreter start, "
            "imports, loading the flow) and the flow. in-script/in-process: after imports."
        ),
    }
    figures["ratio_worker_over_bare_process"] = figures["flow_worker_s"] / figures["bare_process_s"]
    figures["ratio_flow_process_over_bare_process"] = (
        figures["flow_process_s"] / figures["bare_process_s"]
    )
    figures["ratio_in_process"] = figures["flow_in_process_s"] / figures["bare_in_script_s"]
    bench.results["orchestration"] = figures


def memory(bench: Bench, example: Path, feature_set: str, size_name: str) -> None:
    """2. peak RSS of the flow process for one model on live data of this size and 10x."""
    figures: dict[str, Any] = {}
    base = resolve_size(size_name)
    for label, size in (("1x", base), ("10x", replace(base, live_rows=base.live_rows * 10))):
        with Sandbox(bench.workdir / f"sandbox-{label}", seed=SEED, size=size) as sandbox:
            sub = Bench(sandbox, bench.workdir / label)
            [block] = sub.save_blocks([f"mem_{label}"], example, feature_set)
            run = sub.flow_run([block])
            assert sandbox.current_round is not None
            live = sandbox.store.path(
                sandbox.data_version, "live.parquet", sandbox.current_round.number
            )
            features = sandbox.store.path(sandbox.data_version, "features.json", 0)
            needed = child("load", "--live", str(live), "--features-json", str(features),
                           "--feature-set", feature_set, "--how", "needed-int8")  # fmt: skip
            model_mb = example.stat().st_size / 2**20
            goal = 2 * (needed["frame_mb"] + model_mb)
            increment = run["peak_rss_mb"] - run["after_libraries_rss_mb"]
            figures[label] = {
                "live_rows": size.live_rows,
                "flow_peak_rss_mb": run["peak_rss_mb"],
                "after_imports_rss_mb": run["after_imports_rss_mb"],
                "after_libraries_rss_mb": run["after_libraries_rss_mb"],
                "increment_mb": increment,
                "needed_columns_mb": needed["frame_mb"],
                "model_file_mb": model_mb,
                "goal_increment_mb": goal,
                "goal_met": increment <= goal,
            }
            if label == "1x":
                # The budget: one CPU, and a 1 GiB limit on the process's data segment
                # (RLIMIT_DATA: heap and private mappings; an allocation past it fails).
                try:
                    budget = sub.flow_run([block], "--cpus", "1", "--data-limit-mb", "1024")
                    figures["budget_1cpu_1gib"] = {
                        "completed": True,
                        "peak_rss_mb": budget["peak_rss_mb"],
                        "seconds": budget["seconds"],
                    }
                except SystemExit as failed:
                    figures["budget_1cpu_1gib"] = {"completed": False, "error": str(failed)[-500:]}
    one, ten = figures["1x"], figures["10x"]
    figures["slope"] = {
        "peak_growth_mb": ten["flow_peak_rss_mb"] - one["flow_peak_rss_mb"],
        "columns_growth_mb": ten["needed_columns_mb"] - one["needed_columns_mb"],
    }
    figures["slope"]["ratio"] = (
        figures["slope"]["peak_growth_mb"] / figures["slope"]["columns_growth_mb"]
    )
    figures["note"] = (
        "peak: VmHWM of the fresh flow process. increment: peak minus RSS after importing the "
        "flow and scikit-learn (the libraries; Prefect's client, threads and the first API "
        "calls still count in it). slope: how the peak grows from 1x to 10x live rows, against "
        "how the model's columns grow."
    )
    bench.results["memory"] = figures


def machine_busy_s() -> float:
    """CPU seconds every process of this machine has used since boot (/proc/stat: all but idle
    and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_split(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()`'s figures with the CPU seconds it cost, by process: the flow's own (the measured
    child), the sandbox's (Numerai's stand-in, threads of this process), and the rest of the
    machine (the Prefect server and its database, mostly; anything else running adds to it)."""
    busy, children, own = (
        machine_busy_s(),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        time.process_time(),
    )
    figures = run()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    flow = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    sandbox = time.process_time() - own
    total = machine_busy_s() - busy
    return {
        **figures,
        "cpu_flow_s": flow,
        "cpu_sandbox_s": sandbox,
        "cpu_server_and_rest_s": max(0.0, total - flow - sandbox),
    }


def flow_run_span(run_id: str) -> float:
    """Seconds between the flow run's start and end times on the server: the call's time less
    Prefect's engine setup before the run starts and its teardown after it ends (there Prefect
    3.9 joins its heartbeat thread, which sleeps in whole seconds: up to 1 s per run)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    if run.start_time is None or run.end_time is None:
        raise SystemExit(f"flow run {run_id} has no start or end time")
    return (run.end_time - run.start_time).total_seconds()


def scale(bench: Bench, feature_set: str, counts: list[int], repeats: int) -> None:
    """3. 1, 5, 20 light models in one round: total and per-model time; downloads.

    The counts alternate within each repeat (1, 5, 20, 1, 5, 20, ...); medians are compared.
    """
    from flows.settings import flow_settings

    predictor = bench.workdir / "rank_feature.pkl"
    predictor.write_bytes(cloudpickle.dumps(rank_feature))
    blocks = {
        n: bench.save_blocks([f"scale_{n}_{i}" for i in range(n)], predictor, feature_set)
        for n in counts
    }
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for _ in range(repeats):
        for n in counts:
            downloads_before = len(bench.sandbox.downloads)
            run = cpu_split(functools.partial(bench.flow_run, blocks[n]))
            run["live_files_downloaded"] = len(bench.sandbox.downloads) - downloads_before
            run["span_s"] = flow_run_span(run["flow_run_id"])
            runs[n].append(run)
    figures: dict[str, Any] = {}
    for n in counts:
        seconds = _median(runs[n], "seconds")
        figures[str(n)] = {
            "seconds": seconds,
            "process_s": _median(runs[n], "process_s"),
            "per_model_s": seconds / n,
            "live_files_downloaded": max(r["live_files_downloaded"] for r in runs[n]),
            **{key: _median(runs[n], key) for key in CPU_KEYS},
            "runs_s": [r["seconds"] for r in runs[n]],
            "span_s": _median(runs[n], "span_s"),
        }
    first, first_span = (figures[str(counts[0])][key] for key in ("seconds", "span_s"))
    for n in counts:
        figures[str(n)]["ratio_to_1"] = figures[str(n)]["seconds"] / first
        figures[str(n)]["span_ratio_to_1"] = figures[str(n)]["span_s"] / first_span
    if len(counts) > 1:  # what each model beyond the first costs, by process
        low, high = figures[str(counts[0])], figures[str(counts[-1])]
        figures["cpu_per_added_model_s"] = {
            key: (high[key] - low[key]) / (counts[-1] - counts[0]) for key in CPU_KEYS
        }
    figures["model_concurrency"] = flow_settings().model_concurrency
    figures["note"] = (
        "medians of the repeats; the flow call in a fresh process, imports excluded "
        "(process_s includes them); span_s: the flow run's start to end on the server; "
        "live files downloaded: the most in one run; cpu_*: CPU "
        "seconds of the whole run (imports included) by process: the flow's, the sandbox's, "
        "the rest of the machine (the Prefect server and its database)"
    )
    bench.results["scale"] = figures


def loading(bench: Bench, feature_set: str) -> None:
    """4. needed feature columns as int8 (pyarrow) against the whole file with pandas defaults."""
    sandbox = bench.sandbox
    current = sandbox.current_round or sandbox.open_round()
    live = sandbox.store.path(sandbox.data_version, "live.parquet", current.number)
    features = sandbox.store.path(sandbox.data_version, "features.json", 0)
    common = ["--live", str(live), "--features-json", str(features), "--feature-set", feature_set]
    needed = child("load", *common, "--how", "needed-int8")
    whole = child("load", *common, "--how", "whole-pandas")
    bench.results["loading"] = {
        "needed_int8": needed,
        "whole_pandas": whole,
        "time_ratio_whole_over_needed": whole["seconds"] / needed["seconds"],
        "memory_ratio_whole_over_needed": whole["frame_mb"] / needed["frame_mb"],
    }


def webhook(bench: Bench, env: dict[str, str], requests: int, rounds: int) -> None:
    """5. webhook → 200 latency and webhook → verified time (benchmarks/webhook.py)."""
    from benchmarks import webhook as hook

    work = bench.workdir / "webhook"
    work.mkdir(exist_ok=True)
    bench.results["webhook"] = hook.measure(work, bench.sandbox, env, requests, rounds)


def print_table(results: dict[str, Any]) -> None:
    """The figures, one line each."""
    o = results.get("orchestration")
    rows: list[tuple[str, str]] = []
    if o:
        st, floor = o["flow_worker_stages_s"], o["start_floors_s"]
        rows += [
            ("round, bare numerapi script, whole process", f"{o['bare_process_s']:.2f} s"
             f" (after imports {o['bare_in_script_s']:.2f} s)"),
            ("round, submit-round on the process worker", f"{o['flow_worker_s']:.2f} s"
             f" (pickup {st['to_pending_s']:.2f} + start {st['pending_to_running_s']:.2f}"
             f" + flow {st['running_to_final_s']:.2f})"),
            ("  flow: download+read / model task / other API calls / reports / Prefect",
             " / ".join(f"{v:.2f}" for k, v in o["flow_worker_work_s"].items()
                        if k != "import_s") + " s"),
            ("  flow: numerai-tools' import (scipy, scikit-learn), beside the download",
             f"{o['flow_worker_work_s']['import_s']:.2f} s"),
            ("  its floor: numerai-tools' import beyond the flow's, in a fresh process",
             f"{floor['flow_and_numerai_tools_imports'] - floor['flow_imports']:.2f} s"),
            ("  start, against its floor: a fresh python loading the flow's modules",
             f"{st['pending_to_running_s']:.2f} s against {floor['flow_imports']:.2f} s"
             f" (the interpreter alone {floor['interpreter']:.2f} s)"),
            ("  ratio worker / bare process (goal <= 1.3)",
             f"{o['ratio_worker_over_bare_process']:.2f}"),
            ("round, submit-round called in a fresh process", f"{o['flow_process_s']:.2f} s"
             f" (after imports {o['flow_in_process_s']:.2f} s)"),
            ("  ratio fresh process / bare process",
             f"{o['ratio_flow_process_over_bare_process']:.2f}"),
            ("  ratio after imports, flow / bare", f"{o['ratio_in_process']:.2f}"),
        ]  # fmt: skip
    for label, m in results.get("memory", {}).items():
        if label == "note":
            continue
        if label == "slope":
            rows.append(("  peak growth 1x -> 10x / columns growth",
                         f"{m['peak_growth_mb']:.0f} MB / {m['columns_growth_mb']:.0f} MB"
                         f" = {m['ratio']:.1f}x (goal <= 2)"))  # fmt: skip
            continue
        if label == "budget_1cpu_1gib":
            verdict = (f"completed, peak {m['peak_rss_mb']:.0f} MB, {m['seconds']:.2f} s"
                       if m["completed"] else f"FAILED: {m['error'][-120:]}")  # fmt: skip
            rows.append(("example model, 1 CPU, 1 GiB data limit, 1x live", verdict))
            continue
        rows.append(
            (f"peak RSS, 1 model, {label} live ({m['live_rows']} rows)",
             f"{m['flow_peak_rss_mb']:.0f} MB = {m['after_libraries_rss_mb']:.0f} after imports"
             f" ({m['after_imports_rss_mb']:.0f} before scikit-learn) + {m['increment_mb']:.0f}"
             f" (goal <= {m['goal_increment_mb']:.0f}: 2 x (columns"
             f" {m['needed_columns_mb']:.1f} + model {m['model_file_mb']:.1f}))")
        )  # fmt: skip
    scale_figures = results.get("scale", {})
    for n, s in scale_figures.items():
        if not n.isdigit():
            continue
        rows.append(
            (f"{n} light models, one round",
             f"{s['seconds']:.2f} s ({s['per_model_s']:.2f} s/model, x{s['ratio_to_1']:.2f} of 1;"
             f" the run's span {s['span_s']:.2f} s, x{s['span_ratio_to_1']:.2f};"
             f" {s['live_files_downloaded']} live files downloaded)")
        )  # fmt: skip
    if scale_figures:
        rows.append(("  models at once (NUMERAI_MODEL_CONCURRENCY)",
                     str(scale_figures["model_concurrency"])))  # fmt: skip
    added = scale_figures.get("cpu_per_added_model_s")
    if added:
        rows.append(("  CPU per added model: flow / sandbox / Prefect server+db",
                     " / ".join(f"{v:.3f}" for v in added.values())
                     + f" s on {os.cpu_count()} CPUs"))  # fmt: skip
    load = results.get("loading")
    if load:
        n, w = load["needed_int8"], load["whole_pandas"]
        rows += [
            ("load live, needed columns int8",
             f"{n['seconds']:.3f} s, {n['frame_mb']:.1f} MB, peak {n['peak_rss_mb']:.0f} MB"
             f" ({n['after_imports_rss_mb']:.0f} after imports)"),
            ("load live, whole file, pandas defaults",
             f"{w['seconds']:.3f} s, {w['frame_mb']:.1f} MB, peak {w['peak_rss_mb']:.0f} MB"
             f" ({w['after_imports_rss_mb']:.0f} after imports)"),
            ("  ratio whole / needed (time, memory)",
             f"{load['time_ratio_whole_over_needed']:.1f}x, "
             f"{load['memory_ratio_whole_over_needed']:.1f}x"),
        ]  # fmt: skip
    if "webhook" in results:
        from benchmarks import webhook as hook

        rows += [(f"webhook: {name}", value) for name, value in hook.table_rows(results["webhook"])]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


SECTIONS = ("orchestration", "scale", "loading", "webhook", "memory")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table."""
    from benchmarks import webhook as hook

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="v5.3", choices=sorted(SIZES))
    parser.add_argument("--feature-set", default="medium")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="1,5,20")
    parser.add_argument("--webhook-requests", type=int, default=500)
    parser.add_argument("--webhook-rounds", type=int, default=3)
    parser.add_argument(
        "--out",
        type=Path,
        help="where the figures go as JSON [default: benchmarks/results.json for every part; "
        "nowhere with --only]",
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="these parts only"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get(TEST_DATABASE_ENV),
        help="a PostgreSQL server's admin URL (postgresql+asyncpg://...) to run Prefect on, in a "
        f"throwaway database [default: ${TEST_DATABASE_ENV}; unset: SQLite]",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="numerai-bench-") as tmp:
        workdir = Path(tmp)
        with contextlib.ExitStack() as stack:
            api_url = stack.enter_context(
                throwaway_prefect_server(
                    workdir / "prefect", free_port(), own=True, postgres_admin_url=args.database_url
                )
            )
            sandbox = stack.enter_context(Sandbox(workdir / "sandbox", seed=SEED, size=args.size))
            os.environ["PREFECT_API_URL"] = api_url  # for the measured child processes
            env = hook.worker_env(api_url)
            deploy_round(workdir, env)
            bench = Bench(sandbox, workdir)
            only = set(args.only)
            example = workdir / "no-example"
            if only & {"orchestration", "memory"}:
                started = time.perf_counter()
                example = train_example(sandbox, workdir, args.feature_set)
                bench.results["example_training_s"] = time.perf_counter() - started
            with background(hook.worker_command(POOL), env, workdir / "worker.log"):
                if "orchestration" in only:
                    orchestration(bench, example, args.feature_set, args.repeats)
                if "scale" in only:
                    counts = [int(n) for n in args.models.split(",")]
                    scale(bench, args.feature_set, counts, args.repeats)
                if "loading" in only:
                    loading(bench, args.feature_set)
                if "webhook" in only:
                    webhook(bench, env, args.webhook_requests, args.webhook_rounds)
            if "memory" in only:
                memory(bench, example, args.feature_set, args.size)
    bench.results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "size": args.size,
        "feature_set": args.feature_set,
        "database": "postgresql" if args.database_url else "sqlite",
    }
    print_table(bench.results)
    out = args.out or (ROOT / "benchmarks" / "results.json" if only == set(SECTIONS) else None)
    if out is not None:
        out.write_text(json.dumps(bench.results, indent=2))
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
