"""The image for real (buildah/podman; NUMERAI_CONTAINER_TESTS=1, `make image-test`).

It installs exactly the lock, runs as non-root, holds no key, and a deployed round run executes
inside it (as an ECS task would: `prefect flow-run execute`) against the sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
from pydantic import SecretStr

from blocks import NumeraiCredentials, NumeraiModel
from sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "localhost/numerai-prefect:dev")
# Set while the image is built (see the fixture): it must not end up in any layer.
TEST_SECRET = "NUMERAI-TEST-SECRET-0f3c9a7e"

pytestmark = pytest.mark.container


def podman(*args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The image as the working tree builds it now (deployments/aws/build_image.sh).

    Always built: buildah's layer cache makes an unchanged tree a quick rebuild, and an image
    left from older sources would test those instead.
    """
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / ".numerai/image/containers.conf"))
    subprocess.run(
        [str(ROOT / "deployments/aws/build_image.sh")],
        env={**os.environ, "IMAGE": IMAGE, "NUMERAI_SECRET_KEY": TEST_SECRET},
        check=True,
        timeout=1800,
    )
    yield IMAGE


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_image_installs_exactly_the_lock(image: str) -> None:
    listing = podman(
        "run", "--rm", image, "python", "-c",
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(d.metadata['Name'] + '==' + d.version)",
    )  # fmt: skip
    installed = {
        normalized(n) + "==" + v for n, _, v in (x.partition("==") for x in listing.split())
    }
    locked = {
        normalized(n) + "==" + v
        for n, _, v in (
            line.split(";")[0].strip().partition("==")
            for line in (ROOT / "requirements-image.lock").read_text().splitlines()
            if line and not line.startswith((" ", "#"))
        )
    }
    assert installed == locked


def test_image_runs_as_non_root(image: str) -> None:
    assert podman("run", "--rm", image, "id", "-u").strip() != "0"
    assert podman("run", "--rm", image, "pwd").strip() == "/opt/numerai"


def test_no_secret_in_layers_or_history(image: str, tmp_path: Path) -> None:
    history = podman("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert not re.search(r"(SECRET_KEY|PUBLIC_ID|API_KEY)=\S", history)
    archive = tmp_path / "image.tar"
    podman("save", "-o", str(archive), image)
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
    secrets.add(TEST_SECRET)
    assert not [name for name in secrets if name.encode() in data]


def test_round_run_completes_inside_the_container(
    image: str, prefect_server: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    def rank_first(live_features: Any, live_benchmark_models: Any) -> Any:
        feature = next(c for c in live_features.columns if c.startswith("feature_"))
        return live_features[feature].rank(pct=True, method="first").to_frame("prediction")

    predictors = tmp_path / "predictors"
    predictors.mkdir()
    (predictors / "rank.pkl").write_bytes(cloudpickle.dumps(rank_first))
    predictors.chmod(0o755)
    (predictors / "rank.pkl").chmod(0o644)
    with Sandbox(tmp_path / "sandbox", seed=3, size="tiny") as sandbox:
        sandbox.add_model("alpha")
        sandbox.open_round(number=4242)
        NumeraiCredentials(
            public_id=sandbox.public_id,
            secret_key=SecretStr(sandbox.secret_key),
            api_url=sandbox.api_url,
            timeout_seconds=5,
        ).save("numerai-container", overwrite=True)
        NumeraiModel(
            model_name="alpha", predictor_path="/predictors/rank.pkl", feature_set="small"
        ).save("alpha-container", overwrite=True)
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name("submit-round")
            deployment_id = client.create_deployment(
                flow_id=flow_id,
                name="round-container-test",
                entrypoint="flows/submit_round.py:submit_round",
                parameters={
                    "models": ["alpha-container"],
                    "credentials_block": "numerai-container",
                    "data_dir": "/tmp/numerai-data",
                },
                pull_steps=[
                    {
                        "prefect.deployments.steps.set_working_directory": {
                            "directory": "/opt/numerai"
                        }
                    }
                ],
            )
            flow_run = client.create_flow_run_from_deployment(deployment_id)
        started = time.monotonic()
        podman(
            "run", "--rm", "--network", "host",
            "-e", f"PREFECT_API_URL={prefect_server}",
            "-e", f"PREFECT__FLOW_RUN_ID={flow_run.id}",
            "-v", f"{predictors}:/predictors:ro",
            image, "prefect", "flow-run", "execute",
            timeout=600,
        )  # fmt: skip
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
        assert state is not None and state.is_completed(), state
        assert sandbox.submissions(sandbox.models["alpha"])
        print(f"round run in the container: {time.monotonic() - started:.1f} s")
