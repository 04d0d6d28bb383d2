"""What every command shares: the console, options, Prefect and Numerai helpers, and the
failure handling that turns API errors into one line."""

from __future__ import annotations

import datetime as dt
import functools
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar, cast
from uuid import UUID

import httpx
import typer
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import BlockDocument, FlowRun, TaskRun
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from blocks import (
    NumeraiAPI,
    NumeraiAuthError,
    NumeraiCredentials,
    NumeraiError,
    NumeraiModel,
    NumeraiQueryError,
)
from deployments.local import ROOT, ModelEntry, read_models
from flows.submission import account_models, model_id_of
from model.names import ROUND_FLOW, flow_run_url, model_block_name
from model.readable import utc_time
from model.tournaments import CLASSIC

PACKAGE = "numerai-prefect"  # the distribution name in pyproject.toml
DEFAULT_POOL = "numerai-local"
DEFAULT_CREDENTIALS = "numerai"
DEFAULT_API_URL = "http://127.0.0.1:4200/api"  # the server `make run` / `make ui` start
ROUND_DEPLOYMENT = f"{ROUND_FLOW}/round"
RETRY_DEPLOYMENT = f"{ROUND_FLOW}/round-retry"
DEPLOYMENTS = (ROUND_DEPLOYMENT, RETRY_DEPLOYMENT)
SECRET_ENV = "NUMERAI_WEBHOOK_SECRET"  # noqa: S105 - the name of the variable
MIN_SECRET_LENGTH = 32  # the receiver refuses to start with a shorter one
SECRET_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105
POOL_DESCRIPTION = "Numerai round submissions (created by `numerai-prefect setup`)."
RECEIVER_HINT = (
    f"start it where Numerai can reach it: {SECRET_ENV}=... PREFECT_API_URL=... "
    "python -m deployments.receiver --host 0.0.0.0 --port 8080"
)
ROUND_HOURS = "Tuesday-Friday 12:00-13:00 UTC, Saturday 12:00 to Sunday 14:00 UTC"

TRIGGER_MUTATION = "mutation($modelId: String!) { triggerModelWebhook(modelId: $modelId) }"
WEBHOOKS_QUERY = "query { account { models { id name submissionWebhook } } }"

OK, FAIL, SKIP = "[green]✓[/]", "[red]✗[/]", "[yellow]-[/]"

console = Console(highlight=False)

ModelsFile = Annotated[
    Path, typer.Option("--models-file", help="The models.toml listing your models.")
]
CredentialsBlock = Annotated[
    str, typer.Option("--credentials-block", help="Name of the Numerai Credentials block.")
]
PoolOption = Annotated[str, typer.Option("--pool", help="The process work pool the runs use.")]
AwsStack = Annotated[
    str, typer.Option("--aws-stack", help="Name of the CloudFormation stack (with --aws).")
]
WebhookUrl = Annotated[
    str | None,
    typer.Option(
        "--webhook-url",
        metavar="BASE",
        help="Public base URL of the webhook receiver, e.g. https://numerai.example.com.",
    ),
]

P = ParamSpec("P")
R = TypeVar("R")


def project_version() -> str:
    """This project's version: the installed package's, else pyproject.toml's in a checkout."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a checkout (`python -m deployments.cli`, the image)
        pyproject = ROOT / "pyproject.toml"
        if pyproject.is_file():
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        return "unknown"


# -- plumbing ----------------------------------------------------------------------------


def _fail(message: str, fix: str | None = None) -> NoReturn:
    """Print a failure (and how to fix it) and exit with status 1."""
    console.print(f"[red]✗ {escape(message)}[/]")
    if fix:
        console.print(f"  fix: {escape(fix)}")
    raise typer.Exit(1)


def _api_url() -> str:
    """The Prefect API this command talks to."""
    return str(PREFECT_API_URL.value() or DEFAULT_API_URL)


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors of Numerai's and Prefect's APIs into one clear line, exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except NumeraiAuthError as exc:
            _fail(f"Numerai rejected the API keys: {exc}", fix=_KEYS_FIX)
        except NumeraiError as exc:
            _fail(f"Numerai API: {exc}")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            _fail(
                f"cannot reach the Prefect API at {_api_url()}: {exc}",
                fix="start it (`make ui`) or point PREFECT_API_URL at yours",
            )
        except PrefectHTTPStatusError as exc:
            _fail(f"Prefect API: {exc}")

    return wrapper


_KEYS_FIX = (
    "export NUMERAI_PUBLIC_ID/NUMERAI_SECRET_KEY of a key with the upload scope "
    "(numer.ai > account > API keys), then run `numerai-prefect setup`"
)


def _prefect() -> SyncPrefectClient:
    """A synchronous Prefect client for the configured API."""
    return cast(SyncPrefectClient, get_client(sync_client=True))


def _read_entries(path: Path) -> list[ModelEntry]:
    """The models of models.toml, or a clear failure."""
    if not path.is_file():
        _fail(f"{path} not found", fix="write a models.toml (see the README) or pass --models-file")
    try:
        return read_models(path)
    except SystemExit as exc:
        _fail(str(exc.code))
    except (tomllib.TOMLDecodeError, TypeError) as exc:
        _fail(f"{path}: {exc}")


def _pick_entry(entries: list[ModelEntry], name: str | None) -> ModelEntry:
    """The entry named (by model or block name), or the first one."""
    if name is None:
        return entries[0]
    for entry in entries:
        if name in (entry.name, model_block_name(entry.name)):
            return entry
    _fail(f"model {name!r} is not in models.toml; configured: {[e.name for e in entries]}")


def _load_credentials(name: str) -> NumeraiCredentials | None:
    """The saved credentials block, or None."""
    try:
        return cast(NumeraiCredentials, NumeraiCredentials.load(name))
    except ValueError:
        return None


def _credentials(name: str) -> NumeraiCredentials:
    """The saved credentials block, or a failure saying how to save it."""
    credentials = _load_credentials(name)
    if credentials is None:
        _fail(f"no Numerai Credentials block named {name!r}", fix="run `numerai-prefect setup`")
    return credentials


def _load_model_block(name: str) -> NumeraiModel | None:
    """A saved Numerai Model block, or None."""
    try:
        return cast(NumeraiModel, NumeraiModel.load(name))
    except ValueError:
        return None


def _model_config(entry: ModelEntry, predictor_path: str | None = None) -> NumeraiModel:
    """The Numerai Model block a models.toml entry stands for, as `setup` saves it."""
    return NumeraiModel(
        model_name=entry.name,
        model_id=entry.model_id,
        predictor_path=predictor_path or entry.predictor,
        feature_set=entry.block_feature_set,
        size=entry.size,
        tournament=entry.tournament_number,
        data_path=entry.data_path,
    )


def _accounts(
    credentials: NumeraiCredentials, entries: list[ModelEntry]
) -> dict[int, dict[str, str]]:
    """Tournament -> the account's models in it (by lowercase name), as the flows read them."""
    numbers = sorted({CLASSIC, *(entry.tournament_number for entry in entries)})
    return {number: account_models.fn(credentials, number) for number in numbers}


def _model_id(entry: ModelEntry, accounts: dict[int, dict[str, str]]) -> str | None:
    """The entry's Numerai model id as the flows find it, or None when the account lacks it."""
    try:
        return model_id_of(_model_config(entry), accounts[entry.tournament_number])
    except ValueError:
        return None


def _model_ids(credentials: NumeraiCredentials, entries: list[ModelEntry]) -> dict[str, str | None]:
    """Model name -> Numerai model id (configured, else found by name in its tournament)."""
    accounts = _accounts(credentials, entries)
    return {entry.name: _model_id(entry, accounts) for entry in entries}


def _registered_webhooks(client: NumeraiAPI) -> dict[str, str | None] | None:
    """Model id -> webhook URL, or None when the API does not let us read it back."""
    try:
        data = client.raw_query(WEBHOOKS_QUERY, authorization=True)
    except NumeraiAuthError:
        raise
    except NumeraiQueryError:
        return None
    models = data["data"]["account"]["models"]
    return {str(m["id"]): m.get("submissionWebhook") for m in models}


def _notifier_document(client: SyncPrefectClient) -> BlockDocument | None:
    """The saved notifier, whichever of Prefect's notification block types holds it."""
    from deployments.notifications import NOTIFIER_BLOCK_NAME

    for document in client.read_block_documents(include_secrets=False):
        if document.name == NOTIFIER_BLOCK_NAME and document.block_type:
            return document
    return None


def _webhook_secret() -> str:
    """NUMERAI_WEBHOOK_SECRET, or a refusal saying how to make one."""
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        _fail(
            f"{SECRET_ENV} is not set: the webhook URL carries it and the receiver checks it",
            fix=f"export {SECRET_ENV}=$({SECRET_HINT}) here and for the receiver",
        )
    if len(secret) < MIN_SECRET_LENGTH:
        _fail(
            f"{SECRET_ENV} is shorter than {MIN_SECRET_LENGTH} characters",
            fix=f"export {SECRET_ENV}=$({SECRET_HINT})",
        )
    return secret


def _webhook_url(base: str, secret: str, block: str) -> str:
    """The URL Numerai POSTs to for one model."""
    return f"{base}/webhook/{secret}/{block}"


def _mask(url: str | None) -> str:
    """A webhook URL with its secret path segment hidden."""
    if not url:
        return "-"
    head, sep, rest = url.partition("/webhook/")
    if not sep:
        return url
    _, slash, tail = rest.partition("/")
    return f"{head}/webhook/***{slash}{tail}"


def _ui_url(run_id: UUID) -> str:
    """The flow run's page in the Prefect UI."""
    ui = PREFECT_UI_URL.value() or _api_url().rstrip("/").removesuffix("/api")
    return flow_run_url(str(ui), run_id)


def _when(moment: dt.datetime | None, *, seconds: bool = False) -> str:
    """A moment as '2026-12-01 13:00 UTC' (seconds on request), or '-'."""
    return "-" if moment is None else utc_time(moment, seconds=seconds)


def _state_label(run: FlowRun | TaskRun | None) -> str:
    """The run's state name, colored."""
    if run is None or run.state is None:
        return "-"
    color = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "red", "CANCELLED": "yellow"}.get(
        run.state.type.value, "cyan"
    )
    return f"[{color}]{escape(run.state.name or run.state.type.value)}[/]"


@dataclass
class _Results:
    """Rows of what a command did, printed as one table."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    failed: int = 0
    changed: int = 0

    def add(self, what: str, name: str, result: str, *, ok: bool = True, changed: bool = False):
        """Record one outcome."""
        self.rows.append((OK if ok else FAIL, what, escape(name), escape(result)))
        self.failed += not ok
        self.changed += changed

    def show(self) -> None:
        """Print the table."""
        table = Table(title=self.title, title_justify="left")
        for column in ("", "what", "name", "result"):
            table.add_column(column, overflow="fold")
        for row in self.rows:
            table.add_row(*row)
        console.print(table)
