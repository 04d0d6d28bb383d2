"""AWS tests: a moto server on loopback stands in for AWS; nothing leaves the machine."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deployments.processes import free_port

AWS_REGION = "us-east-1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "container: builds and runs the image with buildah/podman (NUMERAI_CONTAINER_TESTS=1)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Container builds take minutes and root tools: only on request (make image-test), where a
    # missing tool fails the tests with the command that installs it (test_container.py).
    if os.environ.get("NUMERAI_CONTAINER_TESTS") == "1":
        return
    for item in items:
        if item.get_closest_marker("container") is not None:
            item.add_marker(pytest.mark.skip(reason="set NUMERAI_CONTAINER_TESTS=1 to build"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (all services) on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def aws_environment(endpoint: str, access_key: str = "testing") -> dict[str, str]:
    """boto3's environment for the moto server (fake keys; no profile, no real account)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": AWS_REGION,
        "AWS_REGION": AWS_REGION,
    }


@pytest.fixture(scope="module")
def aws(moto_endpoint: str) -> Iterator[str]:
    """This module's boto3 calls go to moto; the environment is restored afterwards."""
    saved = dict(os.environ)
    os.environ.update(aws_environment(moto_endpoint))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    try:
        yield moto_endpoint
    finally:
        os.environ.clear()
        os.environ.update(saved)
