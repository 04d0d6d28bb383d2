"""A sandbox account, a models.toml and CLI options of its own per test, on the session server."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any, cast

import cloudpickle
import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.flows import Flow
from typer.testing import CliRunner, Result

from blocks import model_block_name
from deployments.automations import PREFIX as AUTOMATION_PREFIX
from deployments.cli import app
from deployments.notifications import NOTIFIER_BLOCK_NAME
from sandbox import Sandbox
from tests.flows.conftest import rank_first_feature
from tests.support import prefect_worker, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
# Commands that take these options.
_MODEL_COMMANDS = {"setup", "test", "status", "doctor", "teardown"}
_POOL_COMMANDS = {"setup", "test", "doctor", "teardown"}


@dataclass
class Project:
    """One user's setup: sandbox account, models.toml, credentials block and pool names."""

    sandbox: Sandbox
    tmp: Path
    models_file: Path
    names: list[str]
    credentials_block: str
    pool: str
    secret: str

    @property
    def blocks(self) -> list[str]:
        """The model block names setup saves."""
        return [model_block_name(name) for name in self.names]

    def cli(self, *args: str, input: str | None = None) -> Result:
        """Run the CLI in-process with this project's options; print its output for failures."""
        options: list[str] = []
        if args[0] in _MODEL_COMMANDS:
            options += ["--models-file", str(self.models_file)]
            options += ["--credentials-block", self.credentials_block]
        if args[0] in _POOL_COMMANDS:
            options += ["--pool", self.pool]
        result = CliRunner().invoke(app, [*args, *options], input=input)
        print(f"$ numerai-prefect {' '.join(args)}\n{result.output}")
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    def deploy(self, *, retry: bool = True) -> None:
        """Deploy submit-round as "round" (and a paused "round-retry") on this project's pool."""
        from prefect.schedules import Cron

        from model.schedule import retry_crons

        flow = cast(
            Flow[..., Any],
            Flow.from_source(source=str(ROOT), entrypoint="flows/submit_round.py:submit_round"),
        )
        parameters = {
            "credentials_block": self.credentials_block,
            "data_dir": str(self.tmp / "data"),
        }
        flow.deploy(
            name="round",
            work_pool_name=self.pool,
            parameters=parameters,
            print_next_steps=False,
            ignore_warnings=True,
        )
        if retry:
            flow.deploy(
                name="round-retry",
                work_pool_name=self.pool,
                parameters=parameters,
                schedules=[Cron(cron, timezone="UTC") for cron in retry_crons()],
                paused=True,  # no scheduled run may start during the tests
                print_next_steps=False,
                ignore_warnings=True,
            )


def _cleanup(project: Project) -> None:
    """Remove the blocks and the pool a test left on the shared server."""
    with get_client(sync_client=True) as client:
        for name, slug in [
            *((block, "numerai-model") for block in project.blocks),
            (project.credentials_block, "numerai-credentials"),
        ]:
            with contextlib.suppress(ObjectNotFound):
                client.delete_block_document(
                    client.read_block_document_by_name(name, block_type_slug=slug).id
                )
        with contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(project.pool)
        # The notifier and the automations have fixed names: one test's must not reach the next.
        for automation in client.read_automations():
            if automation.name.startswith(AUTOMATION_PREFIX):
                client.delete_automation(automation.id)
        for document in client.read_block_documents(include_secrets=False):
            if document.name == NOTIFIER_BLOCK_NAME:
                client.delete_block_document(document.id)


@pytest.fixture
def project(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """Two models in a sandbox with round 1000 open; Numerai keys in the environment."""
    tag = uuid.uuid4().hex[:6]
    names = [f"cli_{tag}_a", f"cli_{tag}_b"]
    predictor = tmp_path / "predict.pkl"
    predictor.write_bytes(cloudpickle.dumps(rank_first_feature))
    models_file = tmp_path / "models.toml"
    models_file.write_text(
        "".join(
            f'[[model]]\nname = "{name}"\npredictor = "{predictor.name}"\nfeature_set = "small"\n\n'
            for name in names
        )
    )
    with Sandbox(tmp_path / "sandbox", seed=3, size="tiny") as sandbox:
        for name in names:
            sandbox.add_model(name)
        sandbox.open_round()
        monkeypatch.setenv("NUMERAI_PUBLIC_ID", sandbox.public_id)
        monkeypatch.setenv("NUMERAI_SECRET_KEY", sandbox.secret_key)
        monkeypatch.setenv("NUMERAI_API_URL", sandbox.api_url)
        monkeypatch.delenv("NUMERAI_WEBHOOK_SECRET", raising=False)
        monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped
        project = Project(
            sandbox=sandbox,
            tmp=tmp_path,
            models_file=models_file,
            names=names,
            credentials_block=f"numerai-{tag}",
            pool=f"numerai-cli-{tag}",
            secret=secrets.token_urlsafe(32),
        )
        try:
            yield project
        finally:
            _cleanup(project)


@contextlib.contextmanager
def receiver(secret: str, prefect_api_url: str) -> Iterator[str]:
    """The webhook receiver under uvicorn in a thread; yields its base URL."""
    from deployments.receiver import ReceiverSettings, create_app

    app = create_app(ReceiverSettings(secret=secret, prefect_api_url=prefect_api_url))
    with serve_in_thread(app, log_level="warning", access_log=False) as url:
        yield url


def worker(pool: str, prefect_api_url: str, log: Path) -> AbstractContextManager[Popen[bytes]]:
    """A real process worker polling the pool every second; stopped on exit."""
    return prefect_worker(pool, {"PREFECT_API_URL": prefect_api_url}, log)
