"""The local process pool as `numerai-prefect setup` makes it: each run started once, by the
project's interpreter, through the worker's path for a configured command."""

from __future__ import annotations

import shlex
import sys
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.workers.process import ProcessWorker

from deployments.process_pool import command_default, engine_command, ensure_process_pool

pytestmark = pytest.mark.integration


def _template(name: str) -> dict:
    with get_client(sync_client=True) as client:
        return client.read_work_pool(name).base_job_template


def test_the_engine_command_is_this_interpreter_and_prefects_engine() -> None:
    assert shlex.split(engine_command()) == [sys.executable, "-m", "prefect.engine"]


def test_a_new_pool_starts_runs_with_the_engine_command(prefect_server: str) -> None:
    name = f"pool-{uuid.uuid4().hex[:8]}"
    assert ensure_process_pool(name) == "created"
    assert command_default(_template(name)) == engine_command()
    assert ensure_process_pool(name) == "kept"


def test_a_pool_without_a_command_gets_it_and_one_with_a_command_keeps_its_own(
    prefect_server: str,
) -> None:
    """A pool `prefect worker start` made (Prefect's template, no command) gets the command;
    a command the user set is never replaced."""
    bare, own = f"bare-{uuid.uuid4().hex[:8]}", f"own-{uuid.uuid4().hex[:8]}"
    theirs = ProcessWorker.get_default_base_job_template()
    theirs["variables"]["properties"]["command"]["default"] = "my-python -m prefect.engine"
    with get_client(sync_client=True) as client:
        for name, template in (
            (bare, ProcessWorker.get_default_base_job_template()),
            (own, theirs),
        ):
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
    assert command_default(_template(bare)) is None
    assert ensure_process_pool(bare) == "command set"
    assert command_default(_template(bare)) == engine_command()
    assert ensure_process_pool(own) == "kept"
    assert command_default(_template(own)) == "my-python -m prefect.engine"


def test_a_pool_of_another_type_is_named_not_changed(prefect_server: str) -> None:
    name = f"other-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="docker"))
    with pytest.raises(ValueError, match=f"work pool {name} exists with type docker, not process"):
        ensure_process_pool(name)
