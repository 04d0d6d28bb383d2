"""Fixtures for the receiver: a deployment of submit-round and the receiver under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun

from deployments.receiver import ReceiverSettings, create_app
from tests.support import serve_in_thread

DEPLOYMENT = "submit-round/receiver-test"


@pytest.fixture(scope="module")
def deployment_id(prefect_server: str) -> Iterator[UUID]:
    """A deployment of the real submit-round flow without a work pool: its runs stay Scheduled."""
    from flows.submit_round import submit_round

    async def apply() -> UUID:
        deployment = await submit_round.ato_deployment(name=DEPLOYMENT.split("/")[1])
        return await deployment.aapply()

    deployment_id = asyncio.run(apply())
    yield deployment_id
    with get_client(sync_client=True) as client:
        for run in runs_of(deployment_id):
            client.delete_flow_run(run.id)
        client.delete_deployment(deployment_id)


def runs_of(deployment_id: UUID, trigger_id: str | None = None) -> list[FlowRun]:
    """Flow runs of the deployment (those carrying `trigger_id`, when given)."""
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:  # every page: the module's tests create hundreds of runs
            page = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                limit=200,
                offset=len(runs),
            )
            runs += page
            if len(page) < 200:
                break
    return [r for r in runs if trigger_id is None or r.parameters.get("trigger_id") == trigger_id]


@pytest.fixture(scope="module")
def webhook_secret() -> str:
    """A fresh secret of the recommended shape."""
    return secrets.token_urlsafe(32)


@contextlib.contextmanager
def serve(settings: ReceiverSettings) -> Iterator[str]:
    """Run the receiver under uvicorn (access log on, to prove it is redacted); yield its URL."""
    with serve_in_thread(create_app(settings), log_config=None, access_log=True) as url:
        yield url


@pytest.fixture(scope="module")
def settings(prefect_server: str, deployment_id: UUID, webhook_secret: str) -> ReceiverSettings:
    """Receiver settings pointing at the test server and the test deployment."""
    return ReceiverSettings(
        secret=webhook_secret, prefect_api_url=prefect_server, deployment=DEPLOYMENT, max_bytes=4096
    )


@pytest.fixture(scope="module")
def receiver(settings: ReceiverSettings) -> Iterator[str]:
    """The receiver's base URL, served for the whole module."""
    with serve(settings) as url:
        yield url


@pytest.fixture
def serve_with() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """Serve a receiver with some settings changed: `with serve_with(settings, x=...) as url`."""

    def _serve(base: ReceiverSettings, **changes: Any) -> contextlib.AbstractContextManager[str]:
        from dataclasses import replace

        return serve(replace(base, **changes))

    return _serve
