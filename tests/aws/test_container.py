"""The image for real, on a local stand-in for ECS (NUMERAI_CONTAINER_TESTS=1, `make image-test`).

A user's project folder (a copy of this one) holds a LightGBM model folder: model.pkl pickled the
way Numerai's example scripts do it, and a requirements.txt naming lightgbm. The path a user takes
from there is followed with the real tools: the models' lock, `numerai-prefect setup` writing the
blocks, `prefect deploy` of deployments/docker/prefect.yaml building the Dockerfile through
podman's Docker-compatible socket and pushing it to a local registry (docker-registry), and
prefect-docker's worker pulling it and running the round in a container, no volume mounted,
against the sandbox on loopback. The round's submission must be verified and hold what the
model predicts on the whole live frame.

What the stand-in does not check: Fargate's own limits (CPU, memory, the task role), ECR's
authentication and the network between a task and the Prefect API; the ECS job template is
tested against moto in test_ecs_worker.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import pytest

from blocks import NumeraiModel, model_block_name
from deployments.processes import free_port, stop
from sandbox import Sandbox
from tests.scaffold.lightgbm_model import (
    uploaded_predictions,
    whole_frame_predictions,
    write_lightgbm_model,
)
from tests.support import prefect_worker

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("BASE_IMAGE", "localhost/numerai-python:bookworm")
POOL = "numerai-docker"  # deployments/docker/prefect.yaml's pool
# Set while the image is built (see the fixture): it must not end up in any layer.
TEST_SECRET = "NUMERAI-TEST-SECRET-0f3c9a7e"
# What these tests run, and the Debian packages that provide it.
TOOLS = ("buildah", "podman", "runc", "debootstrap", "docker-registry")
INSTALL = "apt-get install -y buildah podman runc debootstrap docker-registry"

# The first test builds the image (minutes on a shared machine); the bound is for hangs.
pytestmark = [pytest.mark.container, pytest.mark.timeout(2400)]


def podman(*args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def run(command: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 1800) -> str:
    """Run a command to completion; fail the test with its output if it fails."""
    result = subprocess.run(
        command, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"$ {' '.join(command)}\n{output[-6000:]}"
    return output


@contextlib.contextmanager
def service(command: list[str], env: Mapping[str, str], log: Path) -> Iterator[None]:
    """A long-running tool (registry, podman's API), stopped on exit."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
        try:
            yield
        finally:
            stop(process)


def wait_for_url(url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        assert time.monotonic() < deadline, f"{url} did not answer; see {log}"
        time.sleep(0.2)


def wait_for_socket(path: Path, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear; see {log}"
        time.sleep(0.2)


def copy_project(target: Path) -> None:
    """The project's files as git sees them (committed or not), without local state."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith(("models/", "artifacts/")):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@dataclass
class LocalEcs:
    """The user's project, its deployment on the docker pool, and the sandbox it plays."""

    project: Path
    sandbox: Sandbox
    model: str
    model_block: str
    credentials_block: str
    image: str
    registry: str
    env: dict[str, str]
    deploy_seconds: float


@pytest.fixture(scope="module")
def tools() -> None:
    """Every tool is installed: a missing one fails the run with the command that installs it."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: {INSTALL}", pytrace=False)


@pytest.fixture(scope="module")
def local_ecs(
    tools: None, prefect_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalEcs]:
    work = tmp_path_factory.mktemp("local-ecs")
    project = work / "project"
    copy_project(project)
    tag = uuid.uuid4().hex[:6]
    # A fixed name keeps the models' lock, and so the image's package layer, the same from run
    # to run (a cached layer); the server and the sandbox are this session's own.
    name = "lgbm_whole"
    registry_port = free_port()

    containers_conf = work / "containers.conf"
    containers_conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n'
    )
    registries_conf = work / "registries.conf"
    registries_conf.write_text(
        "unqualified-search-registries = []\n\n[[registry]]\n"
        f'location = "127.0.0.1:{registry_port}"\ninsecure = true\n'
    )
    registry_conf = work / "registry.yml"
    registry_conf.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'registry'}\n"
        f"http:\n  addr: 127.0.0.1:{registry_port}\n"
    )
    socket = work / "podman.sock"
    saved = dict(os.environ)
    os.environ["CONTAINERS_CONF"] = str(containers_conf)
    os.environ["CONTAINERS_REGISTRIES_CONF"] = str(registries_conf)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_API_URL": prefect_server,
        "DOCKER_HOST": f"unix://{socket}",
    }
    try:
        # The base image, made with debootstrap where it is missing (Docker Hub is not needed).
        run(
            [str(project / "deployments/aws/build_image.sh")], project,
            {**env, "BASE_ONLY": "1", "PYTHON": sys.executable, "BASE_IMAGE": BASE_IMAGE},
        )  # fmt: skip
        with (
            contextlib.ExitStack() as stack,
            Sandbox(work / "sandbox", seed=11, size="tiny") as sandbox,
            service(["docker-registry", "serve", str(registry_conf)], env, work / "registry.log"),
            service(
                ["podman", "system", "service", "--time=0", f"unix://{socket}"],
                env, work / "podman.log",
            ),
        ):  # fmt: skip
            wait_for_url(f"http://127.0.0.1:{registry_port}/v2/", work / "registry.log")
            wait_for_socket(socket, work / "podman.log")
            sandbox.add_model(name)
            sandbox.open_round()

            # The user's model folder and its models.toml entry (no feature set: whole frame).
            write_lightgbm_model(
                project / "models" / name,
                sandbox.store.path(sandbox.data_version, "train.parquet", 0),
            )
            (project / "models.toml").write_text(
                f'[[model]]\nname = "{name}"\npredictor = "models/{name}/model.pkl"\n'
            )
            python = [sys.executable, "-m"]
            run([*python, "deployments.model_packages", "lock"], project, env)
            credentials_block = f"numerai-{tag}"
            run(
                [*python, "deployments.cli", "setup", "--credentials-block", credentials_block,
                 "--pool", f"numerai-process-{tag}"],
                project,
                {**env, "NUMERAI_PUBLIC_ID": sandbox.public_id,
                 "NUMERAI_SECRET_KEY": sandbox.secret_key, "NUMERAI_API_URL": sandbox.api_url},
            )  # fmt: skip
            run([*python, "prefect", "work-pool", "create", POOL, "--type", "docker"], project, env)
            started = time.monotonic()
            run(
                [*python, "prefect", "--no-prompt", "deploy",
                 "--prefect-file", "deployments/docker/prefect.yaml", "--all"],
                project,
                {**env, "NUMERAI_IMAGE": f"127.0.0.1:{registry_port}/numerai-prefect",
                 "BASE_IMAGE": BASE_IMAGE, "NUMERAI_SECRET_KEY": TEST_SECRET},
            )  # fmt: skip
            deploy_seconds = time.monotonic() - started
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name("submit-round/round-docker")
            image = str(deployment.job_variables["image"])
            stack.callback(subprocess.run, ["podman", "rmi", image], capture_output=True)
            yield LocalEcs(
                project=project,
                sandbox=sandbox,
                model=name,
                model_block=model_block_name(name),
                credentials_block=credentials_block,
                image=image,
                registry=f"127.0.0.1:{registry_port}",
                env=env,
                deploy_seconds=deploy_seconds,
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _lock_pins(path: Path) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", name).lower() + "==" + version
        for name, _, version in (
            line.split(";")[0].strip().partition("==")
            for line in path.read_text().splitlines()
            if line and not line.startswith((" ", "#", "-"))
        )
    }


def test_setup_writes_blocks_with_paths_inside_the_project(local_ecs: LocalEcs) -> None:
    block = cast(NumeraiModel, NumeraiModel.load(local_ecs.model_block))
    assert block.predictor_path == f"models/{local_ecs.model}/model.pkl"
    assert "lightgbm==" in (local_ecs.project / "requirements-models.lock").read_text()


def test_image_installs_exactly_the_two_locks(local_ecs: LocalEcs) -> None:
    listing = podman(
        "run", "--rm", local_ecs.image, "python", "-c",
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(d.metadata['Name'] + '==' + d.version)",
    )  # fmt: skip
    installed = {
        re.sub(r"[-_.]+", "-", n).lower() + "==" + v
        for n, _, v in (x.partition("==") for x in listing.split())
    }
    locked = _lock_pins(ROOT / "requirements-image.lock") | _lock_pins(
        local_ecs.project / "requirements-models.lock"
    )
    assert installed == locked


def test_model_packages_load_in_the_image(local_ecs: LocalEcs) -> None:
    """lightgbm's wheel needs libgomp.so.1 from the system."""
    out = podman("run", "--rm", local_ecs.image, "python", "-c", "import lightgbm; print('ok')")
    assert out.strip() == "ok"


def test_image_runs_as_non_root_in_the_project_folder(local_ecs: LocalEcs) -> None:
    assert podman("run", "--rm", local_ecs.image, "id", "-u").strip() != "0"
    assert podman("run", "--rm", local_ecs.image, "pwd").strip() == "/opt/numerai"
    listed = podman("run", "--rm", local_ecs.image, "ls", f"models/{local_ecs.model}")
    assert set(listed.split()) == {"model.pkl", "requirements.txt"}


def test_no_secret_in_layers_or_history(local_ecs: LocalEcs, tmp_path: Path) -> None:
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", local_ecs.image)
    assert not re.search(r"(SECRET_KEY|PUBLIC_ID|API_KEY)=\S", history)
    archive = tmp_path / "image.tar"
    podman("save", "-o", str(archive), local_ecs.image)
    with tarfile.open(archive) as outer:
        names = outer.getnames()
    assert not [n for n in names if n.endswith((".env", ".numerai"))]
    data = archive.read_bytes()
    # Whatever secret-looking values the build machine holds (its env, the test keys) are absent.
    secrets = {
        value
        for name, value in os.environ.items()
        if re.search(r"SECRET|PASSWORD|TOKEN|API_KEY|PUBLIC_ID", name) and len(value) >= 8
    }
    secrets |= {TEST_SECRET, local_ecs.sandbox.secret_key}
    assert not [name for name in secrets if name.encode() in data]


def test_docker_worker_runs_the_round_in_the_pushed_image(
    local_ecs: LocalEcs, prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    sandbox = local_ecs.sandbox
    model_id = sandbox.models[local_ecs.model]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("submit-round/round-docker")
        flow_run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={
                "models": [local_ecs.model_block],
                "credentials_block": local_ecs.credentials_block,
            },
        )
    started = time.monotonic()
    with prefect_worker(POOL, local_ecs.env, tmp_path / "worker.log", worker_type="docker"):
        deadline = started + 900  # a bound on waiting, not a claim about speed
        while True:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(flow_run.id).state
            if state is not None and state.is_final():
                break
            assert time.monotonic() < deadline, f"no final state; see {tmp_path / 'worker.log'}"
            time.sleep(2)
    print(
        f"prefect deploy (lock check, build, push): {local_ecs.deploy_seconds:.0f} s; "
        f"flow run created to final state on the docker worker: {time.monotonic() - started:.0f} s"
    )
    log = (tmp_path / "worker.log").read_text()
    assert state.is_completed(), f"{state}\n{log[-4000:]}"
    # The worker pulled (image_pull_policy: Always) what `prefect deploy` pushed.
    repository, _, image_tag = local_ecs.image.removeprefix(local_ecs.registry + "/").partition(":")
    tags = httpx.get(f"http://{local_ecs.registry}/v2/{repository}/tags/list", timeout=10).json()
    assert image_tag in tags["tags"]

    (submission,) = sandbox.submissions(model_id)
    round_number = submission.round_number
    expected = whole_frame_predictions(
        local_ecs.project / f"models/{local_ecs.model}/model.pkl",
        sandbox.store.path(sandbox.data_version, "live.parquet", round_number),
    )
    sent = uploaded_predictions(submission.data)
    assert list(sent.index) == list(expected.index)
    assert (sent - expected).abs().max() < 1e-9
