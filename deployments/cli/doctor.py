"""`numerai-prefect doctor`: every prerequisite of a submitted round, with fixes."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

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
    _accounts,
    _api_url,
    _friendly,
    _load_credentials,
    _load_model_block,
    _mask,
    _model_id,
    _notifier_document,
    _prefect,
    _read_entries,
    _registered_webhooks,
    _when,
    console,
)
from deployments.local import ROOT, ModelEntry
from model.names import model_block_name
from model.readable import plural

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse
    from prefect.events.schemas.automations import Automation

HEALTH_TIMEOUT = 5.0  # seconds for each request to a receiver


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
            failed = escape(", ".join(self.failed))
            console.print(f"[red]{plural(len(self.failed), 'check')} failed: {failed}[/]")
        else:
            console.print("[green]All checks passed.[/]")


def _check_numerai(
    checks: _Checks, credentials: NumeraiCredentials | None, entries: list[ModelEntry]
) -> tuple[NumeraiAPI, dict[str, str | None]] | None:
    """Keys valid and every configured model in the account (found as the flows find it)."""
    if credentials is None:
        checks.skip("API keys valid", "no credentials block")
        return None
    try:
        accounts = _accounts(credentials, entries)
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
    count = len({model_id for account in accounts.values() for model_id in account.values()})
    checks.ok("API keys valid", f"account has {plural(count, 'model')}")
    ids: dict[str, str | None] = {}
    for entry in entries:
        account = accounts[entry.tournament_number]
        model_id = ids[entry.name] = _model_id(entry, accounts)
        if model_id and (not entry.model_id or entry.model_id in account.values()):
            checks.ok(f"model {entry.name} in account", model_id)
        else:
            checks.fail(
                f"model {entry.name} in account",
                f"not found; the account has {sorted(account)} in {entry.tournament}",
                "fix the name in models.toml (or create the model on numer.ai)",
            )
    return credentials.get_client(), ids


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
        checks.ok(name, f"{plural(len(crons), 'cron')}, all inside {ROUND_HOURS}")


@dataclass(frozen=True)
class _Hook:
    """A registered webhook URL read as the receiver's route: BASE/webhook/SECRET/BLOCK."""

    base: str  # everything before /webhook/: the receiver, whose /health is there too
    secret: str
    block: str


_HOOK_PATH = re.compile(r"(.*)/webhook/([^/]+)/([^/]+)")


def _parse_hook(url: str) -> _Hook | None:
    """The receiver, secret and model block a webhook URL names, or None if it is not ours."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return None
    found = _HOOK_PATH.fullmatch(parsed.path)
    if found is None or parsed.scheme not in ("http", "https") or parsed.query:
        return None
    origin = f"{parsed.scheme}://{parsed.netloc.decode()}"
    return _Hook(origin + found[1], found[2], found[3])


def _origin(url: str) -> str:
    """Where a URL points, without its path (which may hold a secret)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "an invalid URL"
    return f"{parsed.scheme}://{parsed.host or '?'}" + (f":{parsed.port}" if parsed.port else "")


@contextlib.contextmanager
def _quiet_http() -> Iterator[None]:
    """No HTTP client log line while a URL holding the secret is requested."""
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _receiver_problem(base: str) -> str | None:
    """What is wrong with the receiver at `base` (GET /health), or None when it answers."""
    try:
        response = httpx.get(f"{base}/health", timeout=HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        return f"receiver at {base} unreachable: {exc or type(exc).__name__}"
    if response.status_code != 200:
        return f"receiver at {base}: GET /health answered HTTP {response.status_code}"
    try:
        healthy = response.json() == {"status": "ok"}
    except ValueError:
        healthy = False
    if not healthy:
        return f"{base} answers GET /health, but not as the receiver does"
    return None


def _secret_problem(url: str) -> str | None:
    """Whether the receiver takes the secret in `url`: a GET there (which starts nothing) is
    answered 405 with its own secret and 404 with any other."""
    with _quiet_http():
        try:
            status = httpx.get(url, timeout=HEALTH_TIMEOUT).status_code
        except httpx.HTTPError as exc:  # its text may hold the URL: only its kind is said
            return f"no answer on the webhook path ({type(exc).__name__})"
    if status == 405:
        return None
    if status == 404:
        return "the receiver refuses the secret in the registered URL (it has another)"
    return f"the webhook path answered HTTP {status}, not the receiver's 405 to a GET"


@dataclass
class _Probes:
    """Each receiver and each registered URL asked once, however many models share them."""

    receivers: dict[str, str | None] = field(default_factory=dict)
    secrets: dict[str, str | None] = field(default_factory=dict)

    def receiver(self, base: str) -> str | None:
        if base not in self.receivers:
            self.receivers[base] = _receiver_problem(base)
        return self.receivers[base]

    def secret(self, url: str) -> str | None:
        if url not in self.secrets:
            self.secrets[url] = _secret_problem(url)
        return self.secrets[url]


def _check_webhooks(
    checks: _Checks,
    numerai: tuple[NumeraiAPI, dict[str, str | None]] | None,
    entries: list[ModelEntry],
    base: str | None,
    probes: _Probes,
) -> None:
    """Each model's webhook as registered on Numerai: ours, for this model, and its receiver
    answers there (when Numerai lets us read it)."""
    if numerai is None:
        checks.skip("webhooks registered", "Numerai not reachable with these keys")
        return
    client, ids = numerai
    hooks = _registered_webhooks(client)
    if hooks is None:
        checks.skip("webhooks registered", "cannot be read back from Numerai's API")
        return
    secret = os.environ.get(SECRET_ENV)
    for entry in entries:
        name, block = f"webhook {entry.name}", model_block_name(entry.name)
        model_id = ids.get(entry.name)
        if model_id is None:
            checks.skip(name, "model not in the account")
            continue
        url = hooks.get(model_id)
        hook = _parse_hook(url) if url else None
        fix = f"numerai-prefect setup --webhook-url {base or (hook and hook.base) or 'BASE'}"
        if not url:
            checks.fail(name, "not registered on Numerai: a new round starts no run", fix)
        elif hook is None:
            checks.fail(
                name, f"points at {_origin(url)}, not at a receiver's /webhook/SECRET/{block}", fix
            )
        elif hook.block != block:
            checks.fail(name, f"points at {_mask(url)}: another model's path, not {block}", fix)
        elif base and hook.base != base:
            checks.fail(name, f"wrong host: points at {_mask(url)}, not at {base}", fix)
        elif secret and hook.secret != secret:
            checks.fail(
                name,
                f"points at {_mask(url)} with another secret than {SECRET_ENV}",
                f"the receiver's {SECRET_ENV} here, then {fix}",
            )
        elif problem := probes.receiver(hook.base):
            checks.fail(name, f"points at {_mask(url)}; {problem}", RECEIVER_HINT)
        elif problem := probes.secret(url):
            checks.fail(
                name,
                f"points at {_mask(url)}; {problem}",
                f"export the receiver's {SECRET_ENV}, then {fix}",
            )
        else:
            checks.ok(name, f"{_mask(url)}: the receiver answers and takes its secret")


def _check_receiver(checks: _Checks, base: str | None, probes: _Probes) -> None:
    """GET {base}/health answers as the receiver does (when --webhook-url names one)."""
    if not base:
        return
    problem = probes.receiver(base)
    if problem:
        checks.fail("receiver reachable", problem, RECEIVER_HINT)
    else:
        checks.ok("receiver reachable", f"GET {base}/health: 200")


def _check_notifier(checks: _Checks, client: SyncPrefectClient) -> UUID | None:
    """The notification block the automations send through exists and loads; its id."""
    from prefect.blocks.abstract import NotificationBlock
    from prefect.blocks.core import Block

    from deployments.notifications import NOTIFIER_BLOCK_NAME, NOTIFIER_KINDS

    fix = f"numerai-prefect setup --notify {'|'.join(NOTIFIER_KINDS)}"
    document = _notifier_document(client)
    if document is None or document.block_type is None:
        checks.fail(
            "notifier",
            f"no {NOTIFIER_BLOCK_NAME} block: a failed or missed round tells no one",
            fix,
        )
        return None
    slug = document.block_type.slug
    try:
        block = Block.load(f"{slug}/{NOTIFIER_BLOCK_NAME}")
    except Exception as exc:  # its text may carry the block's secret URL: only its kind is said
        checks.fail(
            "notifier", f"{NOTIFIER_BLOCK_NAME} ({slug}) does not load: {type(exc).__name__}", fix
        )
        return document.id
    if not isinstance(block, NotificationBlock):
        checks.fail("notifier", f"{NOTIFIER_BLOCK_NAME} is a {slug}, which cannot notify", fix)
    else:
        checks.ok("notifier", f"{NOTIFIER_BLOCK_NAME} ({slug}) loads")
    return document.id


def _check_automations(checks: _Checks, client: SyncPrefectClient, notifier: UUID | None) -> None:
    """Every automation of deployments/automations.py is on the server, enabled, and sends
    through the notifier."""
    from deployments.automations import PREFIX, render

    stored: dict[str, Automation] = {}
    offset = 0
    while page := client.read_automations(limit=200, offset=offset):
        stored |= {a.name: a for a in page if a.name.startswith(PREFIX)}
        offset += len(page)
    wanted = render(notifier or UUID(int=0))  # names and default on/off do not depend on it
    fix = "numerai-prefect setup" + ("" if notifier else " --notify slack|webhook|email|apprise")
    if not stored:
        checks.fail("automations", f"none of the {len(wanted)} is on the Prefect server", fix)
        return
    for automation in wanted:
        name, found = f"automation {automation.name}", stored.get(automation.name)
        if found is None:
            checks.fail(name, "not on the Prefect server", fix)
            continue
        targets = {getattr(a, "block_document_id", None) for a in found.actions} - {None}
        if automation.enabled and not found.enabled:
            checks.fail(name, "disabled: it never fires", fix)
        elif notifier is None or targets - {notifier}:
            checks.fail(name, "sends through a notifier block that is not numerai-notify", fix)
        elif found.enabled:
            checks.ok(name, "enabled")
        else:
            checks.ok(name, "off (setup --notify KIND --summary turns it on)")


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
        probes = _Probes()
        _check_webhooks(checks, numerai, entries, base, probes)
        _check_receiver(checks, base, probes)
        _check_automations(checks, client, _check_notifier(checks, client))
    checks.show()
    if checks.failed:
        raise typer.Exit(1)
