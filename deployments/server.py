"""A Prefect server of our own: SQLite for `make run`, PostgreSQL for production and the tests.

SQLite takes one writer at a time (a burst of webhooks meets "database is locked"); Prefect's
documentation keeps it to light, single-server use. Production runs on PostgreSQL:

    export PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB
    export PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE=20
    prefect server database upgrade -y     # migrations (the server also runs them at start)
    prefect server start --host 0.0.0.0

`fresh_database` makes a throwaway database on a PostgreSQL server for the tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from deployments.processes import background, wait_healthy

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "PREFECT_API_DATABASE_CONNECTION_URL"
# A PostgreSQL server the tests and benchmarks may make throwaway databases on (an admin URL,
# postgresql+asyncpg://USER:PASSWORD@HOST:PORT/postgres); unset: SQLite.
TEST_DATABASE_ENV = "NUMERAI_TEST_DATABASE_URL"
# Connections the server keeps open to PostgreSQL. At Prefect's default of 5, a round's models
# (8 at once) and the server's own services need more, and each connection beyond the pool is
# opened (a TLS handshake) and closed for one request: a fifth of the server's CPU in a round
# of 20 light models, measured.
POOL_SIZE_ENV, POOL_SIZE = "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE", "20"


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    plain = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(plain, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "numerai_prefect") -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `admin_url`; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin_url, name)
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def prefect_server(
    home: Path,
    port: int,
    settings: Mapping[str, str] | None = None,
    *,
    own: bool = False,
    database_url: str | None = None,
) -> Iterator[str]:
    """A local Prefect server for this run, or the one PREFECT_API_URL names (unless `own`).

    `database_url`: a PostgreSQL database (postgresql+asyncpg://...); else SQLite in `home`.
    """
    if os.environ.get("PREFECT_API_URL") and not own:
        yield os.environ["PREFECT_API_URL"]
        return
    home.mkdir(parents=True, exist_ok=True)
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", DATABASE_URL_ENV)},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **(settings or {}),
    }
    if database_url:
        env[DATABASE_URL_ENV] = database_url
        env.setdefault(POOL_SIZE_ENV, POOL_SIZE)
    log_path = home / "server.log"
    args = ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with background(args, env, log_path) as server:
        try:
            wait_healthy(f"{api_url}/health", server, log_path, timeout=120)
        except RuntimeError as error:
            raise SystemExit(f"Prefect server did not start: {error}") from None
        log.info("Prefect server ready; UI at %s", api_url.removesuffix("/api"))
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: api_url}):
            try:
                yield api_url
            finally:
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=10)  # the run's last logs, before the server goes


@contextlib.contextmanager
def throwaway_prefect_server(
    home: Path,
    port: int,
    settings: Mapping[str, str] | None = None,
    *,
    own: bool = False,
    postgres_admin_url: str | None = None,
) -> Iterator[str]:
    """`prefect_server` on a new database of the PostgreSQL server `postgres_admin_url` names
    (dropped once the server has stopped), or on SQLite in `home` without one."""
    with contextlib.ExitStack() as stack:
        database = (
            stack.enter_context(fresh_database(postgres_admin_url)) if postgres_admin_url else None
        )
        yield stack.enter_context(
            prefect_server(home, port, settings, own=own, database_url=database)
        )
