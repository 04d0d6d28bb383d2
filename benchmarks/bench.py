"""Benchmarks on the sandbox: prints a table (figures and ratios side by side) and writes JSON.

    make bench                     # v5.3-size data (about 6,700 live rows, 2,748 + 807 features)
    python -m benchmarks.bench --size tiny --repeats 1 --models 1,5

Timings vary with the machine's load; compare the ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import cloudpickle
from pydantic import SecretStr

from deployments.local import prefect_server
from sandbox import SIZES, Sandbox
from sandbox.data import resolve_size

ROOT = Path(__file__).resolve().parents[1]
SEED = 2  # one seed everywhere: the example model needs the same feature names


def rank_feature(live_features: Any, live_benchmark_models: Any) -> Any:
    """A light model: the rank of one feature (what 20 light models each do)."""
    feature = next(c for c in live_features.columns if c.startswith("feature_"))
    return live_features[feature].rank(pct=True, method="first").to_frame("prediction")


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measured command in a fresh process; its last stdout line is JSON figures."""
    result = subprocess.run(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-m", "benchmarks.children", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child {args[0]} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


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

    def flow_run(self, blocks: list[str]) -> dict[str, Any]:
        """One submit-round flow in a fresh process, on a freshly opened round."""
        self.sandbox.open_round()
        return child(
            "flow",
            "--models", ",".join(blocks),
            "--credentials-block", "bench",
            "--data-dir", str(self.workdir / "data"),
        )  # fmt: skip

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


def train_example(sandbox: Sandbox, workdir: Path, feature_set: str) -> Path:
    """The example model trained on the sandbox's training data."""
    from model.example import train_from_files

    version = sandbox.data_version
    train = sandbox.store.path(version, "train.parquet", 0)
    features = sandbox.store.path(version, "features.json", 0)
    return train_from_files(train, features, feature_set, workdir / f"example-{feature_set}.pkl")


def orchestration(bench: Bench, example: Path, feature_set: str, repeats: int) -> None:
    """1. the same round by a bare numerapi script and by the flow: wall time, ratio."""
    [block] = bench.save_blocks(["bench_example"], example, feature_set)
    bare = [bench.bare_run("bench_example", example, feature_set) for _ in range(repeats)]
    flow = [bench.flow_run([block]) for _ in range(repeats)]
    best_bare = min(r["seconds"] for r in bare)
    best_flow = min(r["seconds"] for r in flow)
    bench.results["orchestration"] = {
        "bare_numerapi_s": best_bare,
        "flow_s": best_flow,
        "ratio_flow_over_bare": best_flow / best_bare,
        "repeats": repeats,
        "note": "best of repeats; each in a fresh process (imports included in both)",
    }


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
            figures[label] = {
                "live_rows": size.live_rows,
                "flow_peak_rss_mb": run["peak_rss_mb"],
                "needed_columns_mb": needed["frame_mb"],
                "model_file_mb": example.stat().st_size / 2**20,
            }
    bench.results["memory"] = figures


def scale(bench: Bench, feature_set: str, counts: list[int]) -> None:
    """3. 1, 5, 20 light models in one round: total and per-model time; downloads."""
    predictor = bench.workdir / "rank_feature.pkl"
    predictor.write_bytes(cloudpickle.dumps(rank_feature))
    figures = {}
    for n in counts:
        blocks = bench.save_blocks([f"scale_{n}_{i}" for i in range(n)], predictor, feature_set)
        downloads_before = len(bench.sandbox.downloads)
        run = bench.flow_run(blocks)
        figures[str(n)] = {
            "seconds": run["seconds"],
            "per_model_s": run["seconds"] / n,
            "live_files_downloaded": len(bench.sandbox.downloads) - downloads_before,
        }
    first = figures[str(counts[0])]["seconds"]
    for n in counts:
        figures[str(n)]["ratio_to_1"] = figures[str(n)]["seconds"] / first
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


def print_table(results: dict[str, Any]) -> None:
    """The figures, one line each."""
    o = results.get("orchestration")
    rows = []
    if o:
        rows += [
            ("round, bare numerapi script", f"{o['bare_numerapi_s']:.2f} s"),
            ("round, submit-round flow", f"{o['flow_s']:.2f} s"),
            ("  ratio flow / bare (goal <= 1.3)", f"{o['ratio_flow_over_bare']:.2f}"),
        ]
    for label, m in results.get("memory", {}).items():
        rows.append(
            (f"peak RSS, 1 model, {label} live ({m['live_rows']} rows)",
             f"{m['flow_peak_rss_mb']:.0f} MB (needed columns {m['needed_columns_mb']:.1f} MB,"
             f" model {m['model_file_mb']:.1f} MB)")
        )  # fmt: skip
    for n, s in results.get("scale", {}).items():
        rows.append(
            (f"{n} light models, one round",
             f"{s['seconds']:.2f} s ({s['per_model_s']:.2f} s/model, x{s['ratio_to_1']:.2f} of 1;"
             f" {s['live_files_downloaded']} live files downloaded)")
        )  # fmt: skip
    load = results.get("loading")
    if load:
        n, w = load["needed_int8"], load["whole_pandas"]
        rows += [
            ("load live, needed columns int8",
             f"{n['seconds']:.3f} s, {n['frame_mb']:.1f} MB, peak {n['peak_rss_mb']:.0f} MB"),
            ("load live, whole file, pandas defaults",
             f"{w['seconds']:.3f} s, {w['frame_mb']:.1f} MB, peak {w['peak_rss_mb']:.0f} MB"),
            ("  ratio whole / needed (time, memory)",
             f"{load['time_ratio_whole_over_needed']:.1f}x, "
             f"{load['memory_ratio_whole_over_needed']:.1f}x"),
        ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="v5.3", choices=sorted(SIZES))
    parser.add_argument("--feature-set", default="medium")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="1,5,20")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory(prefix="numerai-bench-") as tmp:
        workdir = Path(tmp)
        with (
            prefect_server(workdir / "prefect", free_port()) as api_url,
            Sandbox(workdir / "sandbox", seed=SEED, size=args.size) as sandbox,
        ):
            os.environ["PREFECT_API_URL"] = api_url  # for the measured child processes
            bench = Bench(sandbox, workdir)
            started = time.perf_counter()
            example = train_example(sandbox, workdir, args.feature_set)
            bench.results["example_training_s"] = time.perf_counter() - started
            orchestration(bench, example, args.feature_set, args.repeats)
            scale(bench, args.feature_set, [int(n) for n in args.models.split(",")])
            loading(bench, args.feature_set)
            memory(bench, example, args.feature_set, args.size)
    bench.results["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "size": args.size,
        "feature_set": args.feature_set,
    }
    print_table(bench.results)
    args.out.write_text(json.dumps(bench.results, indent=2))
    print(f"\nwritten to {args.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
