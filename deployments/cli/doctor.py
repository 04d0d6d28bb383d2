"""`numerai-prefect doctor`: every prerequisite of a submitted round, with fixes."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import typer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import WorkerStatus
from prefect.exceptions import ObjectNotFound
from rich.markup import escape
from rich.table import Table

from blocks import (
    NumeraiAPI,
    NumeraiAuthError,
    NumeraiCredentials,
    NumeraiError,
)
from deployments.local import ROOT, ModelEntry
from model.names import model_block_name

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse
from deployments.cli._common import (
    _KEYS_FIX,
    DEFAULT_CREDENTIALS,
    DEFAULT_POOL,
    DEPLOYMENTS,
    FAIL,
    OK,
    RECEIVER_HINT,
    RETRY_DEPLOYMENT,
    ROUND_HOURS,
    SECRET_ENV,
    SKIP,
    CredentialsBlock,
    ModelsFile,
    PoolOption,
    WebhookUrl,
    _api_url,
    _friendly,
    _load_credentials,
    _load_model_block,
    _mask,
    _prefect,
    _read_entries,
    _registered_webhooks,
    _webhook_url,
    _when,
    console,
)


@dataclass
class _Checks:
    """Doctor's rows: ✓, ✗ (with a fix) or - (skipped, with why)."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def ok(self, name: str, detail: str = "") -> None:
        """A passed check."""
        self.rows.append((OK, name, escape(detail), ""))

    def fail(self, name: str, detail: str, fix: str) -> None:
        """A failed check and its fix."""
        self.rows.append((FAIL, name, escape(detail), escape(fix)))
        self.failed.append(name)

    def skip(self, name: str, why: str) -> None:
        """A check that could not run."""
        self.rows.append((SKIP, name, escape(why), ""))

    def show(self) -> None:
        """Print the table and the verdict."""
        table = Table(title="numerai-prefect doctor", title_justify="left")
        table.add_column("")
        table.add_column("check")
        table.add_column("detail", overflow="fold")
        table.add_column("fix", overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)
        if self.failed:
            console.print(
                f"[red]{len(self.failed)} check(s) failed: {escape(', '.join(self.failed))}[/]"
            )
        else:
            console.print("[green]All checks passed.[/]")


def _check_numerai(
    checks: _Checks, credentials: NumeraiCredentials | None, entries: list[ModelEntry]
) -> tuple[NumeraiAPI, dict[str, str | None]] | None:
    """Keys valid and every configured model in the account."""
    if credentials is None:
        checks.skip("API keys valid", "no credentials block")
        return None
    client = credentials.get_client()
    try:
        account: dict[str, str] = client.get_models()
    except NumeraiAuthError as exc:
        checks.fail("API keys valid", f"rejected: {exc}", _KEYS_FIX)
        return None
    except NumeraiError as exc:
        checks.fail(
            "API keys valid",
            f"cannot ask Numerai: {exc}",
            "check the network and the api_url of the credentials block",
        )
        return None
    checks.ok("API keys valid", f"account has {len(account)} model(s)")
    ids: dict[str, str | None] = {}
    for entry in entries:
        model_id = entry.model_id or account.get(entry.name)
        ids[entry.name] = model_id
        if model_id and (not entry.model_id or entry.model_id in account.values()):
            checks.ok(f"model {entry.name} in account", model_id)
        else:
            checks.fail(
                f"model {entry.name} in account",
                f"not found; the account has {sorted(account)}",
                "fix the name in models.toml (or create the model on numer.ai)",
            )
    return client, ids


def _check_blocks(checks: _Checks, credentials_block: str, found: bool, entries: list[ModelEntry]):
    """The credentials block and one model block per configured model."""
    if found:
        checks.ok("credentials block", credentials_block)
    else:
        checks.fail(
            "credentials block", f"{credentials_block!r} not saved", "numerai-prefect setup"
        )
    for entry in entries:
        block = model_block_name(entry.name)
        saved = _load_model_block(block)
        if saved is None:
            checks.fail(f"model block {block}", "not saved", "numerai-prefect setup")
        elif not (ROOT / saved.predictor_path).is_file():
            checks.fail(
                f"model block {block}",
                f"predictor {saved.predictor_path} missing on this machine",
                "numerai-prefect setup",
            )
        else:
            checks.ok(f"model block {block}", saved.predictor_path)


def _check_pool(checks: _Checks, client: SyncPrefectClient, pool: str) -> None:
    """The work pool exists and a worker polls it."""
    try:
        work_pool = client.read_work_pool(pool)
    except ObjectNotFound:
        checks.fail("work pool", f"{pool} does not exist", f"numerai-prefect setup --pool {pool}")
        checks.skip("worker online", "no work pool")
        return
    checks.ok("work pool", f"{pool} ({work_pool.type})")
    workers = client.read_workers_for_work_pool(pool)
    online = [w for w in workers if w.status == WorkerStatus.ONLINE]
    if online:
        checks.ok("worker online", ", ".join(w.name for w in online))
        return
    beats = [w.last_heartbeat_time for w in workers if w.last_heartbeat_time]
    detail = f"last heartbeat {_when(max(beats))}" if beats else "no worker ever polled it"
    checks.fail(
        "worker online",
        f"no worker online for {pool}: {detail}",
        f"start one: prefect worker start --pool {pool}",
    )


def _check_deployments(
    checks: _Checks, client: SyncPrefectClient, pool: str
) -> DeploymentResponse | None:
    """Both deployments exist on the pool; returns the retry deployment."""
    retry = None
    for name in DEPLOYMENTS:
        try:
            deployment = client.read_deployment_by_name(name)
        except ObjectNotFound:
            checks.fail(f"deployment {name}", "missing", "numerai-prefect setup --deploy")
            continue
        if deployment.work_pool_name != pool:
            checks.fail(
                f"deployment {name}",
                f"runs on pool {deployment.work_pool_name}, not {pool}",
                f"numerai-prefect setup --deploy --pool {pool}",
            )
        else:
            checks.ok(f"deployment {name}", f"pool {pool}")
        if name == RETRY_DEPLOYMENT:
            retry = deployment
    return retry


def _check_schedules(checks: _Checks, retry: DeploymentResponse | None) -> None:
    """Every cron of the retry deployment fires inside a round window (model/schedule.py)."""
    name = "retry schedules in round windows"
    try:
        from model.schedule import is_inside_window
    except ImportError:
        checks.skip(name, "model/schedule.py (ROUND_WINDOWS) not available: not checked")
        return
    if retry is None:
        checks.skip(name, f"no {RETRY_DEPLOYMENT} deployment")
        return
    from zoneinfo import ZoneInfo

    from cronsim import CronSim
    from prefect.client.schemas.schedules import CronSchedule

    crons = [s.schedule for s in retry.schedules if isinstance(s.schedule, CronSchedule)]
    if not crons:
        checks.fail(name, "the retry deployment has no cron schedule", "prefect deploy --all")
        return
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    outside = []
    for cron in crons:
        fires = CronSim(cron.cron, start.astimezone(ZoneInfo(cron.timezone or "UTC")))
        for moment in fires:
            if moment - start > dt.timedelta(days=7):
                break
            if not is_inside_window(moment.astimezone(dt.UTC)):
                outside.append(f"'{cron.cron}' at {moment.astimezone(dt.UTC):%a %H:%M} UTC")
                break
    if outside:
        checks.fail(
            name,
            "fires outside every round window: " + "; ".join(outside),
            "derive the crons from model/schedule.py (`python -m model.schedule`), "
            "then prefect deploy --all",
        )
    else:
        checks.ok(name, f"{len(crons)} cron(s), all inside {ROUND_HOURS}")


def _check_webhooks(
    checks: _Checks,
    numerai: tuple[NumeraiAPI, dict[str, str | None]] | None,
    entries: list[ModelEntry],
    base: str | None,
) -> None:
    """Each model's webhook points at the receiver (when Numerai lets us read it)."""
    if numerai is None:
        checks.skip("webhooks registered", "Numerai not reachable with these keys")
        return
    client, ids = numerai
    hooks = _registered_webhooks(client)
    if hooks is None:
        checks.skip("webhooks registered", "cannot be read back from Numerai's API")
        return
    secret = os.environ.get(SECRET_ENV)
    fix = f"numerai-prefect setup --webhook-url {base or 'BASE'}"
    for entry in entries:
        name, block = f"webhook {entry.name}", model_block_name(entry.name)
        model_id = ids.get(entry.name)
        if model_id is None:
            checks.skip(name, "model not in the account")
            continue
        url = hooks.get(model_id)
        if not url:
            checks.fail(name, "none registered", fix)
        elif base and not _points_at(url, base, block, secret):
            checks.fail(name, f"points at {_mask(url)}", fix)
        else:
            checks.ok(name, _mask(url))


def _points_at(url: str, base: str, block: str, secret: str | None) -> bool:
    """Whether a registered webhook URL is the receiver's URL for this model."""
    if secret:
        return url == _webhook_url(base, secret, block)
    return url.startswith(f"{base}/webhook/") and url.endswith(f"/{block}")


def _check_receiver(checks: _Checks, base: str | None) -> None:
    """GET {base}/health answers 200."""
    if not base:
        checks.skip("receiver reachable", "pass --webhook-url BASE to check")
        return
    try:
        response = httpx.get(f"{base}/health", timeout=5)
    except httpx.HTTPError as exc:
        checks.fail("receiver reachable", f"GET {base}/health: {exc}", RECEIVER_HINT)
        return
    if response.status_code == 200:
        checks.ok("receiver reachable", f"GET {base}/health: 200")
    else:
        checks.fail(
            "receiver reachable", f"GET {base}/health: HTTP {response.status_code}", RECEIVER_HINT
        )


@_friendly
def doctor(
    webhook_url: WebhookUrl = None,
    pool: PoolOption = DEFAULT_POOL,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Check every prerequisite of a submitted round; exit 1 if any check fails."""
    base = webhook_url.rstrip("/") if webhook_url else None
    entries = _read_entries(models_file)
    checks = _Checks()
    with console.status("Checking…"), _prefect() as client:
        problem = client.api_healthcheck()
        if problem is not None:
            checks.fail(
                "Prefect API",
                f"{_api_url()}: {problem}",
                "start it (`make ui`) or point PREFECT_API_URL at yours",
            )
            checks.show()
            raise typer.Exit(1)
        checks.ok("Prefect API", _api_url())
        credentials = _load_credentials(credentials_block)
        _check_blocks(checks, credentials_block, credentials is not None, entries)
        numerai = _check_numerai(checks, credentials, entries)
        _check_pool(checks, client, pool)
        retry = _check_deployments(checks, client, pool)
        _check_schedules(checks, retry)
        _check_webhooks(checks, numerai, entries, base)
        _check_receiver(checks, base)
    checks.show()
    if checks.failed:
        raise typer.Exit(1)
