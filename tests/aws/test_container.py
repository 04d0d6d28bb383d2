"""The image for real, on a local stand-in for ECS (NUMERAI_CONTAINER_TESTS=1, `make image-test`).

A user's project folder (a copy of this one) holds two LightGBM model folders: model.pkl pickled
the way Numerai's example scripts do it, and a requirements.txt naming lightgbm; one model has its
own size (`size = "mem-lg"` in models.toml). The path a user takes from there is followed with the
real tools: the models' lock, `numerai-prefect setup` writing the blocks, `prefect deploy` of
deployments/docker/prefect.yaml building the Dockerfile through podman's Docker-compatible socket
and pushing it to a local registry (docker-registry), the webhook receiver, and prefect-docker's
worker pulling the image and running the round in containers, no volume mounted, against the
sandbox on loopback. The round opens, Numerai's webhooks (the sandbox's) reach the receiver, and
both submissions must be verified with their trigger ids, the sized model from a container of its
own size, and hold what each model predicts on the whole live frame.

What the stand-in does not check: Fargate's own limits (CPU, memory, the task role), ECR's
authentication and the network between a task and the Prefect API; the ECS job template is
tested against moto in test_ecs_worker.py.
"""

from __future__ import annotations

import contextlib
import os
import random
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
from prefect.client.schemas.objects import FlowRun

from blocks import NumeraiModel, model_block_name
from deployments.processes import free_port, stop
from sandbox import Sandbox
from tests.scaffold.lightgbm_model import (
    uploaded_predictions,
    whole_frame_predictions,
    write_lightgbm_model,
)
from tests.support import background, prefect_worker, wait_healthy

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
    model: str  # the sized model
    model_block: str
    other: str  # a model of the default size
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
    name, other = "lgbm_whole", "lgbm_second"
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
            sandbox.add_model(other)

            # The user's model folders and their models.toml entries (no feature set: the
            # whole frame); one model has a size of its own.
            for model in (name, other):
                write_lightgbm_model(
                    project / "models" / model,
                    sandbox.store.path(sandbox.data_version, "train.parquet", 0),
                )
            (project / "models.toml").write_text(
                f'[[model]]\nname = "{name}"\npredictor = "models/{name}/model.pkl"\n'
                'size = "mem-lg"\n\n'
                f'[[model]]\nname = "{other}"\npredictor = "models/{other}/model.pkl"\n'
            )
            python = [sys.executable, "-m"]
            run([*python, "deployments.model_packages", "lock"], project, env)
            credentials_block = "numerai"  # the deployment's default, as setup saves it
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
                other=other,
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


def final_runs(number: int) -> tuple[FlowRun | None, FlowRun | None]:
    """The round's webhook run and its mem-lg size run, each once in a final state."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[f"round-{number}", f"round-{number}-mem-lg"])
            )
        )
    final = {r.name: r for r in runs if r.state is not None and r.state.is_final()}
    return final.get(f"round-{number}"), final.get(f"round-{number}-mem-lg")


def test_webhooks_start_the_round_in_the_pushed_image_each_size_in_its_container(
    local_ecs: LocalEcs, tmp_path: Path
) -> None:
    import secrets

    from blocks import NumeraiAPI

    sandbox = local_ecs.sandbox
    secret = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    receiver_env = {
        **local_ecs.env,
        "NUMERAI_WEBHOOK_SECRET": secret,
        "NUMERAI_DEPLOYMENT": "submit-round/round-docker",
        "NUMERAI_WEBHOOK_GATHER_SECONDS": "2",
    }
    numerai = NumeraiAPI(sandbox.public_id, sandbox.secret_key, api_url=sandbox.api_url)
    models = {m: sandbox.models[m] for m in (local_ecs.model, local_ecs.other)}
    for model, model_id in models.items():
        assert numerai.set_submission_webhook(
            model_id, f"{url}/webhook/{secret}/{model_block_name(model)}"
        )
    receiver = ["-m", "deployments.receiver", "--port", str(port)]
    started = time.monotonic()
    with (
        background(receiver, receiver_env, tmp_path / "receiver.log") as process,
        prefect_worker(POOL, local_ecs.env, tmp_path / "worker.log", worker_type="docker"),
    ):
        wait_healthy(f"{url}/health", process, tmp_path / "receiver.log")
        number = sandbox.open_round(number=random.randint(100_000, 999_999)).number
        deliveries = sandbox.wait_for_deliveries(2, timeout=60)
        assert [d.status for d in deliveries] == [200, 200], deliveries
        trigger_of = {d.model_id: d.trigger_id for d in deliveries}
        deadline = started + 900  # a bound on waiting, not a claim about speed
        while True:
            round_run, size_run = final_runs(number)
            finished = round_run is not None and round_run.state is not None
            # A completed round run has started its size run: wait for that one too.
            if finished and (size_run is not None or not round_run.state.is_completed()):  # type: ignore[union-attr]
                break
            assert time.monotonic() < deadline, f"no final states; see {tmp_path / 'worker.log'}"
            time.sleep(2)
    print(
        f"prefect deploy (lock check, build, push): {local_ecs.deploy_seconds:.0f} s; "
        f"round opened to final states on the docker worker: {time.monotonic() - started:.0f} s"
    )
    worker_log = (tmp_path / "worker.log").read_text()
    assert round_run is not None and round_run.state is not None
    assert round_run.state.is_completed(), f"{round_run.state}\n{worker_log[-4000:]}"
    assert round_run.idempotency_key == f"numerai-round-{number}"
    assert size_run is not None and size_run.state is not None
    assert size_run.state.is_completed(), f"{size_run.state}\n{worker_log[-4000:]}"
    # The sized model ran in a container of its size; the other in the round run's own.
    assert size_run.job_variables == {"mem_limit": "30720m"}
    assert size_run.parameters["models"] == [local_ecs.model_block]
    # The worker pulled (image_pull_policy: Always) what `prefect deploy` pushed.
    repository, _, image_tag = local_ecs.image.removeprefix(local_ecs.registry + "/").partition(":")
    tags = httpx.get(f"http://{local_ecs.registry}/v2/{repository}/tags/list", timeout=10).json()
    assert image_tag in tags["tags"]

    for model, model_id in models.items():
        [submission] = [s for s in sandbox.submissions(model_id) if s.round_number == number]
        assert submission.trigger_id == trigger_of[model_id]
        expected = whole_frame_predictions(
            local_ecs.project / f"models/{model}/model.pkl",
            sandbox.store.path(sandbox.data_version, "live.parquet", number),
        )
        sent = uploaded_predictions(submission.data)
        assert list(sent.index) == list(expected.index)
        assert (sent - expected).abs().max() < 1e-9
