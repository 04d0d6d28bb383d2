"""The packages of the models in models.toml, locked together against the project's lock.

A model is a folder: its predictor (model.pkl, or whatever models.toml names) and, beside it,
a ``requirements.txt`` listing what the predictor needs to load and run (lightgbm, xgboost,
torch, ...). ``lock`` resolves every listed model's requirements together, pinned to the
versions of ``requirements.lock``, into ``requirements-models.lock``. ``make venv`` installs it
beside the project's lock (so a lock sync never removes a model's packages) and the image
installs it beside ``requirements-image.lock``: the worker on this machine and the image run
the same versions.

One environment serves every model, so models whose requirements conflict are refused here,
before anything is installed or built, naming both models. (Giving such models images of their
own would hide the conflict until a round runs; a second project folder, with its own
models.toml and image, does that explicitly.)

PyTorch resolves to CPU wheels (uv's ``--torch-backend cpu``, PyTorch's CPU index): PyPI's
Linux wheels of torch pull in gigabytes of CUDA libraries that no Fargate task can use.

    python -m deployments.model_packages lock [--models-file models.toml] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_NAME = "requirements-models.lock"
PROJECT_LOCK = "requirements.lock"
PYTHON_VERSION = "3.11"
# uv picks torch, torchvision, torchaudio, ... from PyTorch's index for this backend; the image
# build reads pins carrying "+cpu" from TORCH_CPU_INDEX (pip has no backend option).
TORCH_BACKEND = "cpu"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_DIGEST = "# inputs: "


class ModelPackagesError(RuntimeError):
    """The models' packages cannot be locked; the message names the models and the cause."""


@dataclass(frozen=True)
class ModelPackage:
    """A model folder's requirements: the models.toml names it serves and its file."""

    names: tuple[str, ...]
    requirements: Path  # relative to the project folder

    @property
    def label(self) -> str:
        """How messages name it: the model(s) and the file."""
        models = " and ".join(repr(n) for n in self.names)
        return f"{'model' if len(self.names) == 1 else 'models'} {models} ({self.requirements})"


def model_packages(models_file: Path, project: Path = ROOT) -> list[ModelPackage]:
    """The requirements.txt beside each listed model's predictor, one entry per folder."""
    entries = tomllib.loads(models_file.read_text()).get("model", [])
    by_file: dict[Path, list[str]] = {}
    for entry in entries:
        predictor = str(entry.get("predictor", "example"))
        if predictor == "example":
            continue  # the bundled example needs only the project's own packages
        path = Path(predictor).expanduser()
        if not path.is_absolute():
            path = models_file.parent / path
        requirements = path.resolve().parent / "requirements.txt"
        if requirements.is_file():
            by_file.setdefault(requirements, []).append(str(entry.get("name", "?")))
    packages = []
    for requirements, names in by_file.items():
        if not requirements.is_relative_to(project.resolve()):
            raise ModelPackagesError(
                f"{', '.join(names)}: {requirements} is outside the project folder {project}; "
                "keep model folders in the project (models/NAME) so the image carries them"
            )
        packages.append(ModelPackage(tuple(names), requirements.relative_to(project.resolve())))
    return sorted(packages, key=lambda p: p.requirements)


def inputs_digest(packages: Sequence[ModelPackage], project: Path = ROOT) -> str:
    """What the lock was made from: the project's lock, each model's file, the settings."""
    digest = hashlib.sha256()
    digest.update(f"{PYTHON_VERSION} {TORCH_BACKEND}\n".encode())
    digest.update((project / PROJECT_LOCK).read_bytes())
    for package in packages:
        digest.update(f"\n{package.names} {package.requirements.as_posix()}\n".encode())
        digest.update((project / package.requirements).read_bytes())
    return digest.hexdigest()


def _uv() -> str:
    """The uv next to this interpreter (make venv installs it), else the one on PATH."""
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise ModelPackagesError("uv is not installed: run `make venv` (or pip install uv)")
    return found


def _compile(packages: Sequence[ModelPackage], project: Path) -> subprocess.CompletedProcess[str]:
    command = [
        _uv(), "pip", "compile", "--quiet", "--no-header",
        "--python-version", PYTHON_VERSION, "--torch-backend", TORCH_BACKEND,
        "--constraint", PROJECT_LOCK,
        *(p.requirements.as_posix() for p in packages),
    ]  # fmt: skip
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    # Relative paths: the lock's "# via" notes name files, never this machine's folders.
    return subprocess.run(  # noqa: S603 - uv with fixed options and the models' files
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )


def _reason(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(f"    {line}" for line in result.stderr.strip().splitlines())


def _explain(packages: Sequence[ModelPackage], project: Path, joint: str) -> ModelPackagesError:
    """Which model clashes with the project, or which two models clash with each other."""
    alone = [(p, _compile([p], project)) for p in packages]
    broken = [f"{p.label} conflicts with the project's packages ({PROJECT_LOCK}):\n{_reason(r)}"
              for p, r in alone if r.returncode != 0]  # fmt: skip
    if broken:
        return ModelPackagesError("\n".join(broken))
    for first, second in itertools.combinations(packages, 2):
        result = _compile([first, second], project)
        if result.returncode != 0:
            return ModelPackagesError(
                f"{first.label} and {second.label} need packages that conflict; one "
                f"environment (and image) serves every model, so make them agree or give one "
                f"of them a project folder of its own:\n{_reason(result)}"
            )
    labels = ", ".join(p.label for p in packages)
    return ModelPackagesError(f"the requirements of {labels} conflict together:\n{joint}")


def render(packages: Sequence[ModelPackage], project: Path = ROOT) -> str:
    """The lock file's text (resolving with uv; raises ModelPackagesError on a conflict)."""
    header = [
        f"# The packages of the models in models.toml, pinned to {PROJECT_LOCK}: written by",
        "# `python -m deployments.model_packages lock` (make venv, make image); do not edit.",
        "# make venv installs it beside requirements.lock, the image beside",
        "# requirements-image.lock.",
        f"{_DIGEST}{inputs_digest(packages, project)}",
    ]
    if not packages:
        return "\n".join([*header, "# (no model folder with a requirements.txt)"]) + "\n"
    result = _compile(packages, project)
    if result.returncode != 0:
        raise _explain(packages, project, _reason(result))
    return "\n".join(header) + "\n" + result.stdout


def recorded_digest(lock: Path) -> str | None:
    """The inputs digest a lock file was written from (None: no lock or no digest)."""
    if not lock.is_file():
        return None
    for line in lock.read_text().splitlines():
        if line.startswith(_DIGEST):
            return line.removeprefix(_DIGEST).strip()
    return None


def lock(models_file: Path, project: Path = ROOT, *, check: bool = False) -> bool:
    """Write the lock unless it is current; return whether it changed (check: only say so)."""
    packages = model_packages(models_file, project)
    out = project / LOCK_NAME
    if recorded_digest(out) == inputs_digest(packages, project):
        return False
    if check:
        raise ModelPackagesError(
            f"{LOCK_NAME} is out of date with the models' requirements: "
            "run `python -m deployments.model_packages lock` (or make venv)"
        )
    text = render(packages, project)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return True


def main(argv: list[str] | None = None) -> int:
    """Command line: lock (or --check) the models' packages."""
    parser = argparse.ArgumentParser(prog="python -m deployments.model_packages")
    parser.add_argument("command", choices=["lock"])
    parser.add_argument("--models-file", type=Path, default=None)
    parser.add_argument("--project", type=Path, default=ROOT, help="the project folder")
    parser.add_argument("--check", action="store_true", help="fail if the lock is out of date")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    models_file = args.models_file or project / "models.toml"
    try:
        changed = lock(models_file, project, check=args.check)
    except ModelPackagesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{LOCK_NAME}: {'written' if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
