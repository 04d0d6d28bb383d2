"""The local process work pool: Prefect's process template, with each flow run started once,
by the interpreter of this project that made the pool.

Left blank, the command makes Prefect 3.9's process worker start every flow run twice: a
workspace supervisor interpreter prepares the run (pull steps, working directory, sys.path),
then starts the engine's interpreter. With the command given, the worker starts
`python -m prefect.engine` once and the engine runs the deployment's pull steps itself (Prefect's
path for a configured command); `make bench` measures the difference. The supervisor's extras
are not used here: it installs dependencies with uv only when asked to, and loads flow hooks,
which the round flow has none of.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

POOL_TYPE = "process"


def engine_command() -> str:
    """The flow run's command: this interpreter (the project's environment) running Prefect's
    engine."""
    return f"{shlex.quote(sys.executable)} -m prefect.engine"


def command_default(template: dict[str, Any]) -> str | None:
    """The command a pool's base job template gives flow runs that set none."""
    command = template.get("variables", {}).get("properties", {}).get("command", {})
    default = command.get("default")
    return default if isinstance(default, str) and default.strip() else None


def base_job_template(template: dict[str, Any] | None = None) -> dict[str, Any]:
    """`template` (Prefect's process template by default) with runs started by
    `engine_command()` unless they set a command of their own."""
    template = template or ProcessWorker.get_default_base_job_template()
    properties = template.setdefault("variables", {}).setdefault("properties", {})
    properties.setdefault("command", {"anyOf": [{"type": "string"}, {"type": "null"}]})
    properties["command"]["default"] = engine_command()
    return template


def ensure_process_pool(name: str, description: str | None = None) -> str:
    """Create the process pool, or give an existing one's runs a command if it has none; a
    command the pool already gives is kept. Returns what was done: "created", "command set" or
    "kept"; a ValueError when a pool of another type has the name.
    """
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type=POOL_TYPE,
                    description=description,
                    base_job_template=base_job_template(),
                )
            )
            return "created"
        if pool.type != POOL_TYPE:
            raise ValueError(f"work pool {name} exists with type {pool.type}, not {POOL_TYPE}")
        if command_default(pool.base_job_template) is not None:
            return "kept"
        client.update_work_pool(
            name, WorkPoolUpdate(base_job_template=base_job_template(pool.base_job_template))
        )
        return "command set"
