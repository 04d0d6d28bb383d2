"""The main job: submit one round for the configured models, end to end, on this machine.

Without NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY it runs against the local sandbox; with them it
talks to Numerai. It always starts a Prefect server of its own (in WORKDIR/prefect, on --port)
and saves only blocks named make-run*: an exported PREFECT_API_URL, and whatever a setup saved,
are never touched. It refuses to run on a server that holds a setup.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments.server import prefect_server

log = logging.getLogger("numerai-prefect")

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelEntry:
    """One [[model]] table of models.toml."""

    name: str
    predictor: str = "example"
    feature_set: str | None = None  # a pickle gets the whole live frame unless it says
    model_id: str | None = None
    size: str | None = None  # a task size preset: the model runs in a size group of its own
    tournament: str = "classic"
    data_path: str | None = None

    @property
    def example_set(self) -> str:
        """The feature set the example model trains on (medium unless the entry says)."""
        return self.feature_set or "medium"

    @property
    def block_feature_set(self) -> str | None:
        """What the model's block declares: the example's own set, else the entry's (or none)."""
        return self.example_set if self.predictor == "example" else self.feature_set

    @property
    def tournament_number(self) -> int:
        """The entry's tournament as Numerai numbers it (8, 11, 12)."""
        from model.tournaments import tournament

        return tournament(self.tournament).number


def read_models(path: Path) -> list[ModelEntry]:
    """Parse models.toml, naming the entry and key that is wrong."""
    entries = tomllib.loads(path.read_text()).get("model", [])
    if not entries:
        raise SystemExit(f"{path}: no [[model]] table: configure at least one model")
    models = []
    for index, entry in enumerate(entries, 1):
        unknown = set(entry) - {
            "name", "predictor", "feature_set", "model_id", "size", "tournament", "data_path"
        }  # fmt: skip
        if unknown or "name" not in entry:
            raise SystemExit(
                f"{path}: model #{index}: needs 'name'; unknown keys {sorted(unknown)}"
            )
        if "size" in entry:
            from model.sizes import SIZES

            if entry["size"] not in SIZES:
                raise SystemExit(
                    f"{path}: model {entry['name']!r}: unknown size {entry['size']!r}; "
                    f"one of {', '.join(SIZES)}"
                )
        models.append(ModelEntry(**entry))
    return models


@contextlib.contextmanager
def numerai_api(models: list[ModelEntry], workdir: Path) -> Iterator[tuple[str, str, str | None]]:
    """(public id, secret key, API URL): Numerai's with keys in the environment, else a sandbox."""
    public_id = os.environ.get("NUMERAI_PUBLIC_ID")
    secret_key = os.environ.get("NUMERAI_SECRET_KEY")
    if public_id and secret_key:
        log.info("Numerai keys found: submitting to Numerai")
        yield public_id, secret_key, None
        return
    from sandbox import Sandbox

    log.info("No Numerai keys set: submitting to the local sandbox")
    with Sandbox(workdir / "sandbox-data", seed=0, size="tiny") as sandbox:
        for entry in models:
            sandbox.add_model(entry.name, tournament=entry.tournament_number)
        for number in sorted({entry.tournament_number for entry in models}):
            sandbox.open_round(tournament=number)
        yield sandbox.public_id, sandbox.secret_key, sandbox.api_url


def example_artifact(entry: ModelEntry, workdir: Path) -> Path:
    """Where the example model for this feature set is kept."""
    return workdir / "artifacts" / f"example-{entry.example_set}.pkl"


def train_example(credentials: object, entry: ModelEntry, workdir: Path) -> Path:
    """Train the example model on Numerai's training data, once per feature set."""
    from blocks import NumeraiCredentials
    from model.example import train_from_files
    from model.progress import progress
    from model.readable import duration, size

    assert isinstance(credentials, NumeraiCredentials)
    out = example_artifact(entry, workdir)
    if out.exists():
        return out
    client = credentials.get_client()
    names = client.list_datasets()
    version = max(
        {n.split("/")[0] for n in names if n.endswith("/train.parquet")},
        key=lambda v: tuple(int(p) for p in v.lstrip("v").split(".")),
    )
    data = workdir / "data" / version
    data.mkdir(parents=True, exist_ok=True)
    for name in ("train.parquet", "features.json"):
        if not (data / name).exists():
            log.info("Downloading %s/%s for the example model", version, name)
            started = time.monotonic()
            client.download_dataset(f"{version}/{name}", str(data / name))
            log.info(
                "Downloaded %s/%s: %s in %s",
                *(version, name, size((data / name).stat().st_size)),
                duration(time.monotonic() - started),
            )
    what = f"Training the example model ({entry.example_set} features)"
    log.info(what)
    with progress(what, "trees", log) as report:
        return train_from_files(
            data / "train.parquet", data / "features.json", entry.example_set, out, progress=report
        )


DEFAULT_PORT = 4200


def port_in_use(port: int) -> bool:
    """Whether something already listens on the loopback port."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def foreign_setup() -> list[str]:
    """What the Prefect server holds that `make run` did not make: a setup it must not touch.

    `make run` writes only blocks named make-run*; anything else of this project's kinds
    (credentials, models, submit-round deployments, the notifier and automations) is a user's.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.exceptions import PrefectHTTPStatusError

    from model.names import LOCAL_RUN_PREFIX, ROUND_FLOW

    found: list[str] = []
    with get_client(sync_client=True) as client:
        for slug, what in (("numerai-credentials", "credentials"), ("numerai-model", "model")):
            try:
                documents = client.read_block_documents_by_type(slug)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:  # 404: the type was never registered
                    raise
                continue
            found += [
                f"{what} block {doc.name}"
                for doc in documents
                if doc.name and not doc.name.startswith(LOCAL_RUN_PREFIX)
            ]
        deployments = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[ROUND_FLOW]))
        )
        found += [f"deployment {ROUND_FLOW}/{d.name}" for d in deployments]
        found += [
            f"automation {a.name}"
            for a in client.read_automations()
            if a.name.startswith("numerai-")
        ]
    return found


@contextlib.contextmanager
def own_api_url(port: int) -> Iterator[str]:
    """PREFECT_API_URL set to `make run`'s own server for this process, restored afterwards.

    Set in the environment as well as in Prefect's settings: the flow's threads and Prefect's
    log and event workers read it, and none of them may reach a server the user exported.
    """
    url = f"http://127.0.0.1:{port}/api"
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        yield url
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


def main(argv: list[str] | None = None) -> int:
    """Run one round end to end on a Prefect server of its own and print each model's outcome."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=ROOT / "models.toml")
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / ".numerai", help="data, models and the server"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port of make run's own Prefect server"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    models = read_models(args.models)
    mode = "numerai" if os.environ.get("NUMERAI_PUBLIC_ID") else "sandbox"
    workdir: Path = args.workdir / mode
    if port_in_use(args.port):
        raise SystemExit(
            f"port {args.port} is in use (`make ui` or another Prefect server?): make run starts "
            f"a server of its own; stop that one or choose another port: make run PORT=4300"
        )
    exported = os.environ.get("PREFECT_API_URL")
    if exported:
        log.info(
            "PREFECT_API_URL (%s) is left alone: make run uses a Prefect server of its own",
            exported,
        )

    with (
        own_api_url(args.port),
        prefect_server(args.workdir / "prefect", args.port, own=True),
    ):
        if found := foreign_setup():
            raise SystemExit(
                f"the Prefect server in {args.workdir / 'prefect'} holds a setup "
                f"({', '.join(found[:5])}{', ...' if len(found) > 5 else ''}): make run changes "
                "nothing on it. Run it in a folder of its own: make run WORKDIR=.numerai-demo"
            )
        with numerai_api(models, workdir) as api:
            return _run_round(models, api, workdir)


def _run_round(models: list[ModelEntry], api: tuple[str, str, str | None], workdir: Path) -> int:
    """Save make run's own blocks, submit the round, print each model's outcome."""
    from pydantic import SecretStr

    from blocks import NumeraiCredentials, NumeraiModel
    from flows import submit_round
    from model.names import local_run_block_name

    public_id, secret_key, api_url = api
    credentials = NumeraiCredentials(
        public_id=public_id, secret_key=SecretStr(secret_key), api_url=api_url
    )
    credentials.save(local_run_block_name(), overwrite=True)
    names = []
    for entry in models:
        predictor = (
            train_example(credentials, entry, workdir)
            if entry.predictor == "example"
            else Path(entry.predictor)
        )
        block = NumeraiModel(
            model_name=entry.name,
            model_id=entry.model_id,
            predictor_path=str(predictor),
            feature_set=entry.block_feature_set,
            size=entry.size,
            tournament=entry.tournament_number,
            data_path=entry.data_path,
        )
        block.save(local_run_block_name(entry.name), overwrite=True)
        names.append(local_run_block_name(entry.name))
    state = submit_round(
        models=names,
        credentials_block=local_run_block_name(),
        data_dir=str(workdir / "data"),
        return_state=True,
    )
    print(f"\n{state.name}: {state.message}")
    for report in _reports(state):
        print(
            f"  {report.model:<20} round {report.round}  {report.status:<18}"
            f" submission {report.submission_id or '-'}"
            + (f"  ({report.error})" if report.error else "")
        )
    return 0 if state.is_completed() else 1


def _reports(state: Any) -> list[Any]:
    """Every model's report of the finished round, failed or not."""
    outcome = state.result(raise_on_failure=False)
    reports = getattr(outcome, "reports", outcome)  # a failed round carries them on RoundFailed
    return reports if isinstance(reports, list) else []


if __name__ == "__main__":
    sys.exit(main())
