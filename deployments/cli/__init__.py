"""numerai-prefect: set up, test, watch and tear down Numerai round submissions on Prefect.

Wraps Prefect's client API (and `prefect deploy`) and numerapi (through the Numerai Credentials
block); it keeps no state of its own. One module per command; `_common` holds what they share.
Run `numerai-prefect COMMAND --help` for each command.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Annotated

import typer
from prefect.settings import PREFECT_API_URL, temporary_settings

from deployments.cli import doctor, fire_test, logs, new, setup, status, teardown
from deployments.cli._common import DEFAULT_API_URL, console, project_version

app = typer.Typer(
    name="numerai-prefect",
    help="Set up, test, watch and tear down Numerai round submissions on Prefect.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _version(show: bool) -> None:
    if not show:
        return
    console.print(f"numerai-prefect {project_version()} (prefect {version('prefect')})")
    raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operate Numerai round submissions on Prefect: setup, test, status, logs, doctor, teardown."""
    if not PREFECT_API_URL.value():
        # Without this Prefect would start a throwaway ephemeral server that keeps nothing.
        ctx.with_resource(temporary_settings({PREFECT_API_URL: DEFAULT_API_URL}))


app.command()(setup.setup)
app.command("test")(fire_test.fire_test)
app.command()(status.status)
app.command()(logs.logs)
app.command()(doctor.doctor)
app.command()(teardown.teardown)
app.command()(new.new)

__all__ = ["app", "main"]
