"""`numerai-prefect new`: scaffold a user's model package from a template per tournament.

A model is a folder (models/NAME by default): a predict function (predict.py), a training
script that saves it with cloudpickle beside them (train.py -> model.pkl), its requirements.txt
and a test that runs it against the local sandbox. Its [[model]] entry goes into models.toml,
from which `setup` makes the model's block; the folder's requirements.txt is locked and
installed by deployments.model_packages (make venv, the image). Nothing that exists is ever
overwritten.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from string import Template

from model.tournaments import CLASSIC, SIGNALS, Tournament, tournament

TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_API_CLASS = {CLASSIC: "NumerAPI", SIGNALS: "SignalsAPI"}


class ScaffoldError(ValueError):
    """The package cannot be made as asked; nothing was written."""


@dataclass(frozen=True)
class Scaffold:
    """What `new` made: the package's files and its models.toml entry."""

    package: Path
    files: list[Path]
    entry: str
    models_file: Path | None


def _variables(name: str, rules: Tournament, feature_set: str) -> dict[str, str]:
    return {
        "name": name,
        "package": name.lower(),
        "tournament": rules.name,
        "title": rules.name.title(),
        "id_column": rules.default_id_column,
        "api_class": _API_CLASS.get(rules.number, "CryptoAPI"),
        "feature_set": feature_set,
    }


def model_entry(name: str, rules: Tournament, predictor: str, feature_set: str) -> str:
    """The [[model]] table for models.toml."""
    lines = [
        "[[model]]",
        f'name = "{name}"',
        f'tournament = "{rules.name}"',
        f'predictor = "{predictor}"',
    ]
    if rules.number == CLASSIC:
        lines.append(f'feature_set = "{feature_set}"')
    return "\n".join(lines) + "\n"


def _render(rules: Tournament, variables: dict[str, str]) -> dict[str, str]:
    """File name -> content of a tournament's package."""
    folder = TEMPLATES / ("classic" if rules.number == CLASSIC else "tickers")
    sources = {
        "predict.py": folder / "predict.py.tmpl",
        "train.py": folder / "train.py.tmpl",
        f"test_{variables['package']}.py": folder / "test_model.py.tmpl",
        "requirements.txt": TEMPLATES / "requirements.txt.tmpl",
    }
    return {
        name: Template(path.read_text()).substitute(variables) for name, path in sources.items()
    }


def _listed_names(models_file: Path) -> set[str]:
    if not models_file.exists():
        return set()
    entries = tomllib.loads(models_file.read_text()).get("model", [])
    return {str(e.get("name", "")).lower() for e in entries}


def scaffold(
    name: str,
    tournament_name: str,
    directory: Path,
    models_file: Path | None = None,
    feature_set: str = "small",
) -> Scaffold:
    """Write the package DIRECTORY/NAME and add its entry to ``models_file`` (None: print only)."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"model name {name!r}: use letters, digits and underscores, starting with a letter"
        )
    try:
        rules = tournament(tournament_name)
    except ValueError as exc:
        raise ScaffoldError(str(exc)) from None
    package = directory / name
    contents = _render(rules, _variables(name, rules, feature_set))
    targets = {package / file: text for file, text in contents.items()}
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ScaffoldError(f"refusing to overwrite: {', '.join(existing)}")
    if models_file is not None and name.lower() in _listed_names(models_file):
        raise ScaffoldError(f"{models_file} already has a model named {name!r}")
    pickle = package.resolve() / "model.pkl"
    # Relative to models.toml, as setup reads it; absolute when it lies elsewhere.
    base = models_file.parent.resolve() if models_file else Path.cwd()
    predictor = pickle.relative_to(base) if pickle.is_relative_to(base) else pickle
    entry = model_entry(name, rules, predictor.as_posix(), feature_set)
    package.mkdir(parents=True, exist_ok=True)
    for path, text in targets.items():
        with path.open("x") as handle:  # "x": fails rather than overwrite a file made meanwhile
            handle.write(text)
    if models_file is not None:
        current = models_file.read_text().rstrip("\n") if models_file.exists() else ""
        models_file.write_text(f"{current}\n\n{entry}" if current else entry)
    return Scaffold(package=package, files=list(targets), entry=entry, models_file=models_file)
