"""`numerai-prefect new`: scaffold a model package and list it in models.toml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from deployments.cli._common import (
    OK,
    ModelsFile,
    _fail,
    _friendly,
    console,
)
from deployments.local import ROOT


@_friendly
def new(
    name: Annotated[str, typer.Argument(help="The model's name on Numerai (letters, digits, _).")],
    tournament: Annotated[
        str, typer.Option("--tournament", "-t", help="classic, signals or crypto.")
    ] = "classic",
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Where the model's folder is made (inside the project: the image "
            "carries the project folder).",
        ),
    ] = ROOT / "models",
    models_file: ModelsFile = ROOT / "models.toml",
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the models.toml entry instead of adding it.")
    ] = False,
) -> None:
    """Scaffold a model package (predict, train, requirements, sandbox test) and list it."""
    from deployments.scaffold import ScaffoldError, scaffold

    try:
        made = scaffold(name, tournament, directory, None if print_only else models_file)
    except ScaffoldError as exc:
        _fail(str(exc))
    for path in made.files:
        console.print(f"{OK} created {escape(str(path))}")
    if made.models_file is None:
        console.print("Add this to your models.toml:\n\n" + escape(made.entry))
    else:
        console.print(f"{OK} added [bold]{escape(name)}[/] to {escape(str(made.models_file))}")
    package = escape(str(made.package))
    console.print(
        "\nNext: "
        f"list what it needs in {package}/requirements.txt and run `make venv` (installs it "
        "here; the image installs it too), "
        f"`pytest {package}` (runs it against the sandbox), "
        f"`python {package}/train.py` (writes model.pkl), "
        "`numerai-prefect setup --deploy` (saves its block, deploys)."
    )
