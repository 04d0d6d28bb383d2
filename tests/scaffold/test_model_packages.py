"""A model folder's requirements.txt is locked with the project's pins, or refused by name.

These resolve with uv against the package index (PyPI), as `make venv` does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from deployments.model_packages import (
    LOCK_NAME,
    ModelPackagesError,
    lock,
    main,
    model_packages,
)
from deployments.scaffold import scaffold

ROOT = Path(__file__).resolve().parents[2]


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, flags=re.MULTILINE))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with the real requirements.lock and an empty models.toml."""
    shutil.copy(ROOT / "requirements.lock", tmp_path / "requirements.lock")
    (tmp_path / "models.toml").write_text("")
    return tmp_path


def _model(project: Path, name: str, requirements: str) -> None:
    folder = project / "models" / name
    folder.mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"")
    (folder / "requirements.txt").write_text(requirements)
    with (project / "models.toml").open("a") as models:
        models.write(f'[[model]]\nname = "{name}"\npredictor = "models/{name}/model.pkl"\n\n')


def test_a_new_models_packages_are_locked_at_the_projects_versions(project: Path) -> None:
    made = scaffold("lgbm_model", "classic", project / "models", project / "models.toml")
    requirements = made.package / "requirements.txt"
    requirements.write_text(requirements.read_text() + "lightgbm\n")
    (project / "models.toml").write_text(
        (project / "models.toml").read_text() + '\n[[model]]\nname = "bundled"\n'
        'predictor = "example"\n'
    )  # the bundled example brings no requirements of its own

    assert [p.names for p in model_packages(project / "models.toml", project)] == [("lgbm_model",)]
    assert lock(project / "models.toml", project) is True
    text = (project / LOCK_NAME).read_text()
    locked, project_pins = _pins(text), _pins((ROOT / "requirements.lock").read_text())
    assert {"lightgbm", "scikit-learn", "pandas", "cloudpickle"} <= set(locked)
    assert {n: v for n, v in locked.items() if project_pins.get(n, v) != v} == {}
    assert str(project) not in text, "the lock names files relative to the project"

    assert lock(project / "models.toml", project) is False  # current: not resolved again
    assert main(["lock", "--project", str(project), "--check"]) == 0
    requirements.write_text(requirements.read_text() + "xgboost\n")
    with pytest.raises(ModelPackagesError, match="out of date"):
        lock(project / "models.toml", project, check=True)
    assert main(["lock", "--project", str(project)]) == 0
    assert "xgboost" in _pins((project / LOCK_NAME).read_text())


def test_two_models_with_conflicting_requirements_are_refused_by_name(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _model(project, "tree_old", "xgboost==3.0.5\n")
    _model(project, "tree_new", "xgboost==3.1.0\n")
    _model(project, "plain", "cloudpickle\n")
    assert main(["lock", "--project", str(project)]) == 1
    error = capsys.readouterr().err
    assert "model 'tree_new' (models/tree_new/requirements.txt)" in error
    assert "model 'tree_old' (models/tree_old/requirements.txt)" in error
    assert "xgboost==3.0.5" in error and "xgboost==3.1.0" in error
    assert "plain" not in error
    assert not (project / LOCK_NAME).exists()


def test_a_model_that_conflicts_with_the_project_is_named(project: Path) -> None:
    _model(project, "old_pandas", "pandas<2\n")
    with pytest.raises(ModelPackagesError) as raised:
        lock(project / "models.toml", project)
    assert "model 'old_pandas'" in str(raised.value)
    assert "conflicts with the project's packages (requirements.lock)" in str(raised.value)


def test_a_model_folder_outside_the_project_is_refused(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "requirements.txt").write_text("lightgbm\n")
    (project / "models.toml").write_text(
        f'[[model]]\nname = "far"\npredictor = "{elsewhere / "model.pkl"}"\n'
    )
    with pytest.raises(ModelPackagesError, match="outside the project folder"):
        lock(project / "models.toml", project)


def test_torch_resolves_to_cpu_wheels_in_the_venv_and_the_image() -> None:
    """PyTorch's CPU index is not reachable from every machine that runs the tests, so this
    checks the three places that choose it: the lock, make venv's sync and the image build."""
    from deployments import model_packages

    assert model_packages.TORCH_BACKEND == "cpu"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"\$\(UV\) pip sync [^\n]*--torch-backend cpu", makefile)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG TORCH_INDEX_URL={model_packages.TORCH_CPU_INDEX}" in dockerfile
    assert "+cpu' /src/requirements-models.lock" in dockerfile
