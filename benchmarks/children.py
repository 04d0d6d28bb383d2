"""Measured work, each run in its own process so that its peak memory is its own.

Every command prints one JSON line: the figures of that run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numerapi
import pandas as pd
from numerapi import base_api


def _status_mb(field: str) -> float:
    """A VmHWM/VmRSS line of /proc/self/status, in MiB.

    Not getrusage's ru_maxrss: Linux carries that over fork and exec, so a child of a large
    parent (the bench, after training the model) would report the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (its own, not its parent's)."""
    return _status_mb("VmHWM")


def _rss_mb() -> float:
    """Resident memory of this process now."""
    return _status_mb("VmRSS")


def _limit(args: argparse.Namespace) -> None:
    """Run on one CPU and/or within a data-segment limit, when asked (the 1 GiB budget)."""
    if getattr(args, "cpus", None):
        os.sched_setaffinity(0, set(range(int(args.cpus))))
    if getattr(args, "data_limit_mb", None):
        limit = int(args.data_limit_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def bare(args: argparse.Namespace) -> dict[str, Any]:
    """A round the way a plain numerapi script does it: download, predict, upload, verify."""
    from model.data import feature_names, read_live
    from model.predictor import load_predictor

    base_api.API_TOURNAMENT_URL = args.api_url
    after_imports = _rss_mb()
    started = time.perf_counter()
    napi = numerapi.NumerAPI(show_progress_bars=False)  # keys from NUMERAI_* variables
    with tempfile.TemporaryDirectory() as tmp:
        version = args.data_version
        napi.download_dataset(f"{version}/features.json", f"{tmp}/features.json")
        napi.download_dataset(f"{version}/live.parquet", f"{tmp}/live.parquet")
        features = feature_names(f"{tmp}/features.json", args.feature_set)
        live = read_live(f"{tmp}/live.parquet", features)
        predictions = load_predictor(args.predictor)(live, None)
        model_id = napi.get_models()[args.model]
        submission_id = napi.upload_predictions(
            f"{args.model}.csv", model_id=model_id, df=predictions
        )
        assert any(s["id"] == submission_id for s in napi.submission_ids(model_id))
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "after_imports_rss_mb": after_imports,
    }


def flow(args: argparse.Namespace) -> dict[str, Any]:
    """The submit-round flow, in this process, against the Prefect server in PREFECT_API_URL."""
    from flows import submit_round

    _limit(args)
    after_imports = _rss_mb()
    import model.example  # noqa: F401 - scikit-learn, which loading the example model imports

    after_libraries = _rss_mb()
    started = time.perf_counter()
    state = submit_round(
        models=args.models.split(","),
        credentials_block=args.credentials_block,
        data_dir=args.data_dir,
        return_state=True,
    )
    seconds = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"flow ended {state.name}: {state.message}")
    return {
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "after_imports_rss_mb": after_imports,
        "after_libraries_rss_mb": after_libraries,
        "flow_run_id": str(state.state_details.flow_run_id),
    }


def load(args: argparse.Namespace) -> dict[str, Any]:
    """Read live data: only the needed columns as int8, or the whole file with pandas defaults."""
    from model.data import feature_names, read_live

    after_imports = _rss_mb()
    started = time.perf_counter()
    if args.how == "needed-int8":
        frame = read_live(args.live, feature_names(args.features_json, args.feature_set))
    else:
        frame = pd.read_parquet(args.live)
    return {
        "seconds": time.perf_counter() - started,
        "peak_rss_mb": _peak_rss_mb(),
        "after_imports_rss_mb": after_imports,
        "frame_mb": frame.memory_usage(deep=True).sum() / 2**20,
        "columns": frame.shape[1],
    }


def main() -> None:
    """Dispatch to one measured command and print its figures as JSON."""
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("bare")
    for option in ("--api-url", "--model", "--predictor", "--feature-set", "--data-version"):
        p.add_argument(option, required=True)
    p = commands.add_parser("flow")
    for option in ("--models", "--credentials-block", "--data-dir"):
        p.add_argument(option, required=True)
    p.add_argument("--cpus", type=int, help="pin the process to this many CPUs")
    p.add_argument("--data-limit-mb", type=int, help="RLIMIT_DATA for the process, in MiB")
    p = commands.add_parser("load")
    for option in ("--live", "--features-json", "--feature-set", "--how"):
        p.add_argument(option, required=True)
    args = parser.parse_args()
    result = {"bare": bare, "flow": flow, "load": load}[args.command](args)
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown of Prefect's background threads


if __name__ == "__main__":
    main()
