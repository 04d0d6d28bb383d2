"""The environment our Prefect servers start with.

Stand-in: `background` records the server's environment instead of starting it, so these tests
do not check that Prefect's server honours the pool size (measured with py-spy: without it, a
round of 20 models spent a fifth of the server's CPU opening PostgreSQL connections).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import deployments.server
from deployments.server import DATABASE_URL_ENV, POOL_SIZE_ENV, prefect_server


class Started(Exception):
    """Raised where the server would have started."""


def _environment_of_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> Mapping[str, str]:
    seen: dict[str, str] = {}

    @contextlib.contextmanager
    def recorded(args: list[str], env: Mapping[str, str], log: Path) -> Iterator[Any]:
        seen.update(env)
        raise Started
        yield  # unreachable: a generator for contextmanager

    monkeypatch.setattr(deployments.server, "background", recorded)
    with (
        pytest.raises(Started),
        prefect_server(tmp_path, 4999, own=True, database_url=database_url),
    ):
        pass
    return seen


POSTGRES = "postgresql+asyncpg://user:password@127.0.0.1:5432/prefect"


def test_a_postgresql_server_keeps_20_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POOL_SIZE_ENV, raising=False)
    env = _environment_of_server(tmp_path, monkeypatch, POSTGRES)
    assert env[DATABASE_URL_ENV] == POSTGRES
    assert env[POOL_SIZE_ENV] == "20"


def test_a_pool_size_set_in_the_environment_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(POOL_SIZE_ENV, "7")
    assert _environment_of_server(tmp_path, monkeypatch, POSTGRES)[POOL_SIZE_ENV] == "7"


def test_an_sqlite_server_is_left_to_its_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(POOL_SIZE_ENV, raising=False)
    env = _environment_of_server(tmp_path, monkeypatch, None)
    assert POOL_SIZE_ENV not in env and DATABASE_URL_ENV not in env
