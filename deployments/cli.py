"""numerai-prefect: set up, test, watch and tear down Numerai round submissions on Prefect.

Wraps Prefect's client API (and `prefect deploy`) and numerapi (through the Numerai Credentials
block); it keeps no state of its own. Run `numerai-prefect COMMAND --help` for each command.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec, TypeVar, cast
from uuid import UUID

import httpx
import typer
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterName,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTimestamp,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import FlowRun, TaskRun, WorkerStatus
from prefect.client.schemas.sorting import FlowRunSort, LogSort, TaskRunSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, temporary_settings
from pydantic import SecretStr
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
    SubmissionInfo,
)
from deployments.local import ROOT, ModelEntry, example_artifact, read_models, train_example
from model.names import ROUND_FLOW, WEBHOOK_TAG, model_block_name, model_run_name

if TYPE_CHECKING:
    from prefect.client.schemas.responses import DeploymentResponse

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

app = typer.Typer(
    name="numerai-prefect",
    help="Set up, test, watch and tear down Numerai round submissions on Prefect.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
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


@app.callback()
def main(ctx: typer.Context) -> None:
    """Operate Numerai round submissions on Prefect: setup, test, status, logs, doctor, teardown."""
    if not PREFECT_API_URL.value():
        # Without this Prefect would start a throwaway ephemeral server that keeps nothing.
        ctx.with_resource(temporary_settings({PREFECT_API_URL: DEFAULT_API_URL}))


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


def _model_ids(client: NumeraiAPI, entries: list[ModelEntry]) -> dict[str, str | None]:
    """Model name -> Numerai model id (from models.toml, else looked up in the account)."""
    account: dict[str, str] = client.get_models()
    return {entry.name: entry.model_id or account.get(entry.name) for entry in entries}


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
    return f"{str(ui).rstrip('/')}/runs/flow-run/{run_id}"


def _when(moment: dt.datetime | None) -> str:
    """A moment as a short UTC time."""
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _state_label(run: FlowRun | TaskRun | None) -> str:
    """The run's state name, colored."""
    if run is None or run.state is None:
        return "-"
    color = {"COMPLETED": "green", "FAILED": "red", "CRASHED": "red", "CANCELLED": "yellow"}.get(
        run.state.type.value, "cyan"
    )
    return f"[{color}]{escape(run.state.name or run.state.type.value)}[/]"


# -- setup -------------------------------------------------------------------------------


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


def _save_credentials(name: str, results: _Results) -> NumeraiCredentials:
    """Save the credentials block from the environment (or prompts) unless it already matches."""
    existing = _load_credentials(name)
    public_id = os.environ.get("NUMERAI_PUBLIC_ID", "")
    secret_key = os.environ.get("NUMERAI_SECRET_KEY", "")
    api_url = os.environ.get("NUMERAI_API_URL") or None
    if not (public_id and secret_key):
        if existing is not None:
            results.add("credentials", name, "exists (NUMERAI_PUBLIC_ID/SECRET_KEY unset: kept)")
            return existing
        public_id = public_id or typer.prompt("Numerai public id")
        secret_key = secret_key or typer.prompt("Numerai secret key", hide_input=True)
    if existing is not None and (
        existing.public_id,
        existing.secret_key.get_secret_value(),
        existing.api_url,
    ) == (public_id, secret_key, api_url):
        results.add("credentials", name, "unchanged")
        return existing
    credentials = NumeraiCredentials(
        public_id=public_id,
        secret_key=SecretStr(secret_key),
        api_url=api_url,
        timeout_seconds=existing.timeout_seconds if existing else 30.0,
    )
    credentials.save(name, overwrite=True)
    results.add("credentials", name, "updated" if existing else "created", changed=True)
    return credentials


def _predictor_path(
    entry: ModelEntry,
    credentials: NumeraiCredentials,
    models_file: Path,
    workdir: Path,
    results: _Results,
) -> Path | None:
    """The predictor file of a model, training the example model when it is missing.

    The example model is kept in the project's artifacts/ (artifacts/sandbox/ for the sandbox's),
    which the image carries; its training data stays in WORKDIR.
    """
    if entry.predictor == "example":
        kept = ROOT / "artifacts" / ("sandbox" if credentials.api_url else "")
        path = kept / example_artifact(entry, workdir).name
        if path.exists():
            results.add("example model", entry.example_set, f"exists ({_project_path(path)})")
            return path
        with console.status(f"Training the example model on the {entry.example_set} features…"):
            trained = train_example(credentials, entry, workdir)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(trained, path)
        results.add(
            "example model", entry.example_set, f"trained ({_project_path(path)})", changed=True
        )
        return path
    path = Path(entry.predictor).expanduser()
    if not path.is_absolute():
        path = (models_file.parent / path).resolve()
    if not path.is_file():
        results.add("model", entry.name, f"predictor {path} not found", ok=False)
        return None
    return path


def _project_path(path: Path) -> str:
    """A path as model blocks hold it: relative to the project folder, the working directory
    of every flow run (here and at /opt/numerai in the image); absolute only outside it."""
    resolved = path.resolve()
    if resolved.is_relative_to(ROOT):
        return resolved.relative_to(ROOT).as_posix()
    return str(resolved)


def _save_model(entry: ModelEntry, predictor: Path, results: _Results, *, image: bool) -> None:
    """Save the model's block unless it already holds this configuration."""
    block = model_block_name(entry.name)
    stored = _project_path(predictor)
    if Path(stored).is_absolute():
        # An image carries the project folder only: such a block could not load in ECS.
        results.add(
            "model",
            entry.name,
            f"predictor {stored} is outside the project folder {ROOT}: it runs on this machine "
            f"only, not in an image (move its folder to models/{entry.name})",
            ok=not image,
        )
    wanted = NumeraiModel(
        model_name=entry.name,
        model_id=entry.model_id,
        predictor_path=stored,
        feature_set=entry.block_feature_set,
        size=entry.size,
        tournament=entry.tournament_number,
        data_path=entry.data_path,
    )
    fields = (
        "model_name", "model_id", "predictor_path", "feature_set", "size", "tournament",
        "data_path",
    )  # fmt: skip
    existing = _load_model_block(block)
    if existing is not None and all(getattr(existing, f) == getattr(wanted, f) for f in fields):
        results.add("model block", block, "unchanged")
        return
    wanted.save(block, overwrite=True)
    results.add("model block", block, "updated" if existing else "created", changed=True)


def _ensure_pool(pool: str, results: _Results) -> None:
    """Create the process work pool unless it exists."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with _prefect() as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    description=POOL_DESCRIPTION,
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            results.add("work pool", pool, "created (process)", changed=True)
            return
    if existing.type != "process":
        results.add("work pool", pool, f"exists with type {existing.type}, not process", ok=False)
    else:
        results.add("work pool", pool, "exists")


def _existing_deployments() -> set[str]:
    """Which of our deployments exist."""
    found = set()
    with _prefect() as client:
        for name in DEPLOYMENTS:
            try:
                client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            found.add(name)
    return found


def _deploy(pool: str, results: _Results) -> None:
    """Run `prefect deploy` for prefect.yaml in the project root."""
    before = _existing_deployments()
    # `{{ $PWD }}` in prefect.yaml's pull step must be the project root, not our cwd.
    env = {**os.environ, "PREFECT_API_URL": _api_url(), "PWD": str(ROOT)}
    base = [sys.executable, "-m", "prefect", "--no-prompt", "deploy"]
    if pool == DEFAULT_POOL:
        commands = [[*base, "--all"]]
    else:  # `deploy --all` ignores --pool: deploy each by name
        commands = [[*base, "--name", n.split("/")[1], "--pool", pool] for n in DEPLOYMENTS]
    for command in commands:
        with console.status(f"Deploying prefect.yaml ({' '.join(command[3:])})…"):
            done = subprocess.run(  # noqa: S603 - our interpreter, fixed arguments
                command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
            )
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            results.add("deploy", " ".join(command[3:]), f"failed:\n{tail}", ok=False)
            return
    for name in DEPLOYMENTS:
        outcome = "exists (re-applied)" if name in before else "created"
        results.add("deployment", name, outcome, changed=name not in before)


def _register_webhooks(
    credentials: NumeraiCredentials,
    entries: list[ModelEntry],
    base: str,
    secret: str,
    results: _Results,
) -> None:
    """Point every model's Numerai webhook at the receiver, unless it already does."""
    client = credentials.get_client()
    ids = _model_ids(client, entries)
    current = _registered_webhooks(client)
    for entry in entries:
        block = model_block_name(entry.name)
        model_id = ids[entry.name]
        url = _webhook_url(base, secret, block)
        if model_id is None:
            results.add("webhook", entry.name, "model not in this Numerai account", ok=False)
            continue
        if current is not None and current.get(model_id) == url:
            results.add("webhook", entry.name, f"unchanged {_mask(url)}")
            continue
        if not client.set_submission_webhook(model_id, url):
            results.add("webhook", entry.name, "Numerai did not confirm the change", ok=False)
            continue
        before = current.get(model_id) if current is not None else None
        results.add(
            "webhook",
            entry.name,
            f"{'updated' if before else 'registered'} {_mask(url)}",
            changed=True,
        )


@app.command()
@_friendly
def setup(
    webhook_url: WebhookUrl = None,
    deploy: Annotated[
        bool, typer.Option("--deploy", help="Also run `prefect deploy` for prefect.yaml.")
    ] = False,
    pool: PoolOption = DEFAULT_POOL,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where example models are trained (default: .numerai/MODE)."),
    ] = None,
    notify: Annotated[
        str | None,
        typer.Option(
            "--notify",
            metavar="slack|webhook|email|apprise",
            help="Save a notifier and apply the automations (failures, stuck runs, misses). "
            "Slack/webhook/apprise read NUMERAI_NOTIFY_URL (apprise: any Apprise URL); e-mail "
            "reads NUMERAI_NOTIFY_EMAIL_TO and NUMERAI_SMTP_SERVER/_PORT/_TYPE/_USERNAME/"
            "_PASSWORD/_FROM.",
        ),
    ] = None,
    summary: Annotated[
        bool, typer.Option("--summary", help="Also notify each verified submission.")
    ] = False,
    aws: Annotated[
        bool,
        typer.Option(
            "--aws",
            help="Deploy the CloudFormation stack, store the keys in its secret and create the "
            "ECS work pool (AWS credentials from the environment).",
        ),
    ] = False,
    aws_stack: AwsStack = "numerai-prefect",
    aws_prefect_api_url: Annotated[
        str | None,
        typer.Option(
            "--aws-prefect-api-url",
            metavar="URL",
            help="With --aws: the Prefect API the worker and the receiver use "
            "[default: kept; when creating, this command's unless it is on this machine].",
        ),
    ] = None,
    aws_worker: Annotated[
        bool | None,
        typer.Option(
            "--aws-worker/--no-aws-worker",
            help="With --aws: run the ECS worker as a Fargate service [default: kept; on].",
        ),
    ] = None,
    aws_receiver: Annotated[
        str | None,
        typer.Option(
            "--aws-receiver",
            metavar="IMAGE_TAG|off",
            help="With --aws: run the webhook receiver on Lambda from this tag of the stack's "
            "image (or turn it off) and register the webhooks [default: kept].",
        ),
    ] = None,
) -> None:
    """Save the blocks, create the work pool, optionally deploy and register the webhooks."""
    base = webhook_url.rstrip("/") if webhook_url else None
    secret = _webhook_secret() if base else ""  # refuse before changing anything
    notifier_settings = _notifier_settings(notify) if notify else None
    entries = _read_entries(models_file)
    results = _Results("numerai-prefect setup")
    if aws:  # ECS tasks read the keys from Secrets Manager: no block to go stale
        credentials = _aws_numerai_keys(credentials_block, results)
    else:
        credentials = _save_credentials(credentials_block, results)
    mode = "sandbox" if credentials.api_url else "numerai"
    workdir = workdir or ROOT / ".numerai" / mode
    for entry in entries:
        predictor = _predictor_path(entry, credentials, models_file, workdir, results)
        if predictor is not None:
            _save_model(entry, predictor, results, image=aws)
    _ensure_pool(pool, results)
    if deploy:
        _deploy(pool, results)
    if base:
        _register_webhooks(credentials, entries, base, secret, results)
    _apply_automations(notify, notifier_settings, summary, results)
    if aws:
        options = _AwsOptions(aws_prefect_api_url, aws_worker, aws_receiver)
        _setup_aws(aws_stack, credentials, entries, options, results)
    results.show()
    if results.failed:
        _fail(f"{results.failed} step(s) failed: see the table above")
    if results.changed:
        console.print(f"[green]Set up: {results.changed} change(s).[/]")
    else:
        console.print("[green]Nothing changed: everything was already set up.[/]")


def _notifier_settings(kind: str) -> dict[str, object]:
    """The chosen notifier's settings from the environment; refuse clearly when one is missing."""
    from deployments.notifications import NOTIFIER_KINDS

    if kind not in NOTIFIER_KINDS:
        _fail(f"--notify {kind}: choose one of {', '.join(NOTIFIER_KINDS)}")
    env = os.environ.get
    if kind in ("slack", "webhook", "apprise"):
        url = env("NUMERAI_NOTIFY_URL")
        if not url:
            _fail(
                f"--notify {kind} needs NUMERAI_NOTIFY_URL", "export NUMERAI_NOTIFY_URL=https://..."
            )
        settings: dict[str, object] = {"url": url}
        if kind == "webhook" and env("NUMERAI_NOTIFY_TOKEN"):
            settings["token"] = env("NUMERAI_NOTIFY_TOKEN")
        return settings
    to, server = env("NUMERAI_NOTIFY_EMAIL_TO"), env("NUMERAI_SMTP_SERVER")
    if not (to and server):
        _fail("--notify email needs NUMERAI_NOTIFY_EMAIL_TO and NUMERAI_SMTP_SERVER")
    port = env("NUMERAI_SMTP_PORT")
    return {
        "email_to": [address.strip() for address in to.split(",")],
        "smtp_server": server,
        "smtp_port": int(port) if port else None,
        "username": env("NUMERAI_SMTP_USERNAME"),
        "password": env("NUMERAI_SMTP_PASSWORD"),
        "email_from": env("NUMERAI_SMTP_FROM"),
        "smtp_type": env("NUMERAI_SMTP_TYPE") or "STARTTLS",
    }


def _apply_automations(
    kind: str | None, settings: dict[str, object] | None, summary: bool, results: _Results
) -> None:
    """Save the notifier (when asked) and create or update the automations that use it."""
    from deployments.automations import apply_automations
    from deployments.notifications import NOTIFIER_BLOCK_NAME, save_notifier

    if kind and settings is not None:
        try:
            block_id = save_notifier(kind, **settings)  # type: ignore[arg-type]
        except ValueError as exc:
            results.add("notifier", NOTIFIER_BLOCK_NAME, str(exc), ok=False)
            return
        results.add("notifier", NOTIFIER_BLOCK_NAME, f"saved ({kind})", changed=True)
    else:
        with _prefect() as client:
            try:
                block_id = client.read_block_document_by_name(
                    NOTIFIER_BLOCK_NAME, block_type_slug=_notifier_slug(client)
                ).id
            except (ObjectNotFound, LookupError):
                results.add("automations", "-", "no notifier: run setup --notify to add them")
                return
    for name, outcome in apply_automations(block_id, summary=summary):
        results.add("automation", name, outcome, changed=outcome != "unchanged")


def _notifier_slug(client: SyncPrefectClient) -> str:
    """The block type of the saved notifier, whichever kind it is."""
    from deployments.notifications import NOTIFIER_BLOCK_NAME

    for document in client.read_block_documents():
        if document.name == NOTIFIER_BLOCK_NAME and document.block_type:
            return document.block_type.slug
    raise LookupError(NOTIFIER_BLOCK_NAME)


def _aws_numerai_keys(name: str, results: _Results) -> NumeraiCredentials:
    """The Numerai keys for the stack's secret: from the environment, else the saved block, else
    prompts. Never saved as a block: on ECS the keys come from Secrets Manager only."""
    public_id = os.environ.get("NUMERAI_PUBLIC_ID", "")
    secret_key = os.environ.get("NUMERAI_SECRET_KEY", "")
    api_url = os.environ.get("NUMERAI_API_URL") or None
    if not (public_id and secret_key):
        existing = _load_credentials(name)
        if existing is not None:
            results.add("credentials", name, "keys read from the block for the AWS secret")
            return existing
        public_id = public_id or typer.prompt("Numerai public id")
        secret_key = secret_key or typer.prompt("Numerai secret key", hide_input=True)
    return NumeraiCredentials(
        public_id=public_id, secret_key=SecretStr(secret_key), api_url=api_url
    )


@dataclass(frozen=True)
class _AwsOptions:
    """What `setup --aws` changes in the stack; None keeps the stack's current value."""

    prefect_api_url: str | None = None
    worker: bool | None = None
    receiver: str | None = None  # an image tag, or "off"


def _aws_parameters(options: _AwsOptions, creating: bool) -> dict[str, str]:
    """The stack parameters the options set; every other one keeps its value on an update."""
    params: dict[str, str] = {}
    api_url = options.prefect_api_url
    if api_url is None and creating:
        host = httpx.URL(_api_url()).host
        # A Prefect API on this machine is not one AWS can reach: no worker or receiver then.
        api_url = "" if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") else _api_url()  # noqa: S104
    if api_url is not None:
        params["PrefectApiUrl"] = api_url
    if options.worker is not None:
        params["RunWorker"] = "true" if options.worker else "false"
    if options.receiver is not None:
        on = options.receiver.lower() not in ("off", "")
        params["WebhookReceiver"] = "true" if on else "false"
        if on:
            params["ReceiverImageTag"] = options.receiver
    return params


def _setup_aws(
    stack_name: str,
    credentials: NumeraiCredentials,
    entries: list[ModelEntry],
    options: _AwsOptions,
    results: _Results,
) -> None:
    """Deploy the stack (changing only what the options say), fill its secrets, create the ECS
    pool from its outputs and point the models' webhooks at its receiver."""
    from prefect.settings import PREFECT_API_KEY

    from deployments.aws import pool as ecs_pool
    from deployments.aws import stack

    webhook_secret = _webhook_secret() if os.environ.get(SECRET_ENV) else None  # refuse first
    creating = stack.status(stack_name) is None
    params = _aws_parameters(options, creating)
    api_key = PREFECT_API_KEY.value()
    if api_key:  # Prefect Cloud: the key goes to its secret before anything reads it
        arn, version = stack.put_prefect_api_key(stack_name, api_key)
        params["PrefectApiKeySecretArn"] = arn
        if version:
            params["PrefectApiKeyVersion"] = version
        stored = "stored" if version else "unchanged"
        results.add("aws secret", "Prefect API key", stored, changed=version is not None)
    with console.status(f"Deploying CloudFormation stack {stack_name} (minutes)…"):
        before = stack.changed_at(stack_name)
        outputs = stack.deploy(stack_name, params)
        deployed = stack.changed_at(stack_name) != before
    outcome = "created" if creating else ("updated" if deployed else "unchanged")
    results.add("aws stack", stack_name, outcome, changed=deployed)
    keys_changed = stack.put_numerai_keys(
        outputs["NumeraiKeysSecretArn"],
        credentials.public_id,
        credentials.secret_key.get_secret_value(),
    )
    stored = "stored in Secrets Manager" if keys_changed else "unchanged"
    results.add("aws secret", "Numerai keys", stored, changed=keys_changed)
    webhook_arn = outputs["WebhookSecretArn"]
    if webhook_secret:
        version = stack.put_secret(webhook_arn, webhook_secret)
        if version:  # pin it: no receiver instance keeps answering with the old one
            with console.status("Pointing the receiver at the new webhook secret…"):
                outputs = stack.deploy(stack_name, {"WebhookSecretVersion": version})
        stored = f"stored from {SECRET_ENV}" if version else "unchanged"
        results.add("aws secret", "webhook secret", stored, changed=version is not None)
    pool_name = outputs.get("WorkPoolName", "numerai-ecs")
    ecs_pool.apply_work_pool(pool_name, ecs_pool.base_job_template(outputs))
    results.add("work pool", pool_name, "created or updated (ecs)")
    if outputs.get("WebhookUrl"):
        secret = stack.read_secret(webhook_arn) or ""
        base = outputs["WebhookUrl"].rstrip("/")
        _register_webhooks(credentials, entries, base, secret, results)


# -- test --------------------------------------------------------------------------------


def _find_trigger_run(client: SyncPrefectClient, trigger_id: str) -> FlowRun | None:
    """The flow run the receiver created for this trigger, if any yet."""
    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[WEBHOOK_TAG])),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=50,
    )
    return next((r for r in runs if r.parameters.get("trigger_id") == trigger_id), None)


def _no_run_fix(pool: str) -> str:
    return (
        "is the receiver reachable at the registered URL (`numerai-prefect doctor --webhook-url "
        "BASE`)? does it use this Prefect API? is submit-round/round deployed "
        f"(`numerai-prefect setup --deploy`)? is a worker running (`prefect worker start --pool "
        f"{pool}`)?"
    )


def _follow_run(
    client: SyncPrefectClient, run: FlowRun, deadline: float, timeout: float, pool: str
) -> FlowRun:
    """Print the run's state transitions until it is final (or the deadline passes)."""
    shown = 0
    with console.status(f"Following flow run {run.name}…"):
        while True:
            states = sorted(
                client.read_flow_run_states(run.id), key=lambda s: s.timestamp or dt.datetime.min
            )
            for step in states[shown:]:
                message = f": {step.message}" if step.message else ""
                console.print(f"  {_when(step.timestamp)}  {step.name}{escape(message)}")
            shown = len(states)
            run = client.read_flow_run(run.id)
            if run.state is not None and run.state.is_final():
                return run
            if time.monotonic() > deadline:
                state = run.state_name or "unknown"
                fix = (
                    f"is a worker running? `prefect worker start --pool {pool}`"
                    if state in ("Scheduled", "Late", "Pending")
                    else f"look at its logs: `numerai-prefect logs --run {run.id}`"
                )
                _fail(f"flow run {run.name} is still {state} after {timeout:g} s", fix=fix)
            time.sleep(1)


@app.command("test")
@_friendly
def fire_test(
    model: Annotated[
        str | None, typer.Option(help="Model (name or block name) [default: the first].")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for the run and its submission.")
    ] = 300,
    pool: PoolOption = DEFAULT_POOL,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Fire a model's webhook and follow the run until its submission carries the trigger id."""
    entry = _pick_entry(_read_entries(models_file), model)
    credentials = _credentials(credentials_block)
    client = credentials.get_client()
    round_info = client.current_round()
    if round_info is None:
        _fail("no round is open: the run would submit nothing", fix=f"retry during {ROUND_HOURS}")
    model_id = entry.model_id or client.get_models().get(entry.name)
    if model_id is None:
        _fail(f"model {entry.name!r} is not in this Numerai account", fix=_KEYS_FIX)
    hooks = _registered_webhooks(client)
    if hooks is not None and not hooks.get(model_id):
        _fail(
            f"model {entry.name!r} has no webhook registered on Numerai",
            fix="numerai-prefect setup --webhook-url BASE",
        )
    deadline = time.monotonic() + timeout
    answer = client.raw_query(TRIGGER_MUTATION, {"modelId": model_id}, authorization=True)
    trigger_id = str(answer["data"]["triggerModelWebhook"])
    console.print(
        f"Numerai fired the webhook of {escape(entry.name)} for round {round_info.number}: "
        f"trigger id {trigger_id}"
    )
    with _prefect() as prefect:
        run: FlowRun | None = None
        with console.status("Waiting for the receiver to start a flow run…"):
            while (run := _find_trigger_run(prefect, trigger_id)) is None:
                if time.monotonic() > deadline:
                    _fail(f"no run appeared within {timeout:g} s", fix=_no_run_fix(pool))
                time.sleep(1)
        console.print(f"Flow run {run.name}: {_ui_url(run.id)}")
        run = _follow_run(prefect, run, deadline, timeout, pool)
    if run.state is None or not run.state.is_completed():
        _fail(
            f"flow run {run.name} ended {run.state_name}: {run.state.message if run.state else ''}",
            fix=f"numerai-prefect logs --run {run.id}",
        )
    submissions = client.model_submissions(model_id)
    this_round = [s for s in submissions if s.round_number == round_info.number]
    match = next((s for s in this_round if s.trigger_id == trigger_id), None)
    if match is None:
        if this_round:
            _fail(
                f"round {round_info.number} has a submission of {entry.name} from before "
                f"(trigger {this_round[-1].trigger_id or 'none'}); the run skipped the model, "
                "so none carries this trigger id",
                fix="the webhook path works; test again in a round without a submission",
            )
        _fail(
            f"no submission of {entry.name} for round {round_info.number} carries trigger "
            f"{trigger_id}",
            fix=f"numerai-prefect logs --run {run.id}",
        )
    console.print(
        f"[green]✓ {escape(entry.name)}: submission {match.id} for round {round_info.number} "
        f"carries trigger {trigger_id}[/]"
    )


# -- status ------------------------------------------------------------------------------


def _latest_model_runs(client: SyncPrefectClient, names: list[str]) -> dict[str, TaskRun]:
    """Run name -> the latest submit-model task run of that name (round-N-model)."""
    runs = client.read_task_runs(
        task_run_filter=TaskRunFilter(name=TaskRunFilterName(any_=names)),
        sort=TaskRunSort.EXPECTED_START_TIME_DESC,
        limit=200,
    )
    latest: dict[str, TaskRun] = {}
    for run in runs:
        latest.setdefault(run.name, run)
    return latest


def _latest_submission(submissions: list[SubmissionInfo], number: int) -> SubmissionInfo | None:
    """The model's last submission in a round (the one Numerai counts)."""
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    in_round = [s for s in submissions if s.round_number == number]
    return max(in_round, key=lambda s: s.inserted_at or earliest, default=None)


@app.command()
@_friendly
def status(
    rounds: Annotated[int, typer.Option(min=1, help="How many rounds to show, newest first.")] = 5,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
) -> None:
    """Per model and round: submitted or not, trigger id, the last flow run and its UI link."""
    entries = _read_entries(models_file)
    client = _credentials(credentials_block).get_client()
    with console.status("Reading rounds and submissions…"):
        current = client.current_round()
        account: dict[str, str] | None = None
        submissions: dict[str, list[SubmissionInfo]] = {}
        for entry in entries:
            block = _load_model_block(model_block_name(entry.name))
            model_id = entry.model_id or (block.model_id if block else None)
            if model_id is None:
                account = account if account is not None else client.get_models()
                model_id = account.get(entry.name)
            submissions[entry.name] = client.model_submissions(model_id) if model_id else []
    if current is not None:
        console.print(
            f"Round {current.number} is open until {_when(current.close_time)}", style="bold"
        )
    else:
        console.print(f"No round is open now ({ROUND_HOURS}).", style="bold")
    seen = [s.round_number for subs in submissions.values() for s in subs if s.round_number]
    latest = current.number if current else max(seen, default=None)
    if latest is None:
        console.print("No rounds to show yet: no round is open and nothing was submitted.")
        return
    numbers = list(range(latest, max(latest - rounds, 0), -1))
    names = [model_run_name(n, e.name) for e in entries for n in numbers]
    with _prefect() as prefect:
        runs = _latest_model_runs(prefect, names)
    table = Table(title="Submissions by model and round", title_justify="left")
    for column in ("model", "round", "submitted", "trigger id", "last run"):
        table.add_column(column)
    table.add_column("link", overflow="fold")
    for entry in entries:
        for number in numbers:
            last = _latest_submission(submissions[entry.name], number)
            run = runs.get(model_run_name(number, entry.name))
            table.add_row(
                escape(entry.name),
                f"{number}{' (open)' if current and current.number == number else ''}",
                f"[green]yes[/] {_when(last.inserted_at)}" if last else "[red]no[/]",
                escape(last.trigger_id or "-") if last else "-",
                _state_label(run),
                _ui_url(run.flow_run_id) if run and run.flow_run_id else "-",
            )
        table.add_section()
    console.print(table)


# -- logs --------------------------------------------------------------------------------


def _root_run(client: SyncPrefectClient, run: str | None) -> FlowRun:
    """The flow run asked for (id or name), or the latest submit-round run."""
    if run:
        try:
            return client.read_flow_run(UUID(run))
        except ValueError:
            pass
        except ObjectNotFound:
            _fail(f"no flow run with id {run}")
        found = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
        if not found:
            _fail(f"no flow run named {run!r}")
        return found[0]
    found = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[ROUND_FLOW])),
        # Not the future runs the retry schedule has already created.
        flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime.model_validate(
                {"before_": dt.datetime.now(dt.UTC)}
            )
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_DESC,
        limit=1,
    )
    if not found:
        _fail(
            f"no {ROUND_FLOW} run yet on {_api_url()}",
            fix="`make run`, or `numerai-prefect test` with the receiver and a worker running",
        )
    return found[0]


def _run_family(client: SyncPrefectClient, root: FlowRun) -> dict[UUID, str]:
    """Run id -> name, for the run, its submit-model subflows and their task runs."""
    children = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[root.id])
        ),
        limit=200,
    )
    names = {root.id: root.name, **{child.id: child.name for child in children}}
    tasks = client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=list(names))),
        limit=200,
    )
    return {**names, **{task.id: task.name for task in tasks}}


def _print_new_logs(
    client: SyncPrefectClient, family: dict[UUID, str], seen: set[UUID], since: dt.datetime | None
) -> dt.datetime | None:
    """Print logs not printed yet, oldest first; return the newest timestamp."""
    page, offset = 200, 0
    while True:
        logs = client.read_logs(
            LogFilter(
                flow_run_id=LogFilterFlowRunId(any_=list(family)),
                timestamp=LogFilterTimestamp.model_validate({"after_": since}) if since else None,
            ),
            limit=page,
            offset=offset,
            sort=LogSort.TIMESTAMP_ASC,
        )
        for log in logs:
            if log.id in seen:
                continue
            seen.add(log.id)
            since = max(since, log.timestamp) if since else log.timestamp
            run_id = log.task_run_id or log.flow_run_id
            name = family.get(run_id, "?") if run_id else "?"
            level = logging.getLevelName(log.level)
            console.print(
                f"{log.timestamp.astimezone(dt.UTC):%H:%M:%S} {level:<7} {name:<28} {log.message}",
                markup=False,
                soft_wrap=True,
            )
        if len(logs) < page:
            return since
        offset += page


@app.command()
@_friendly
def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the run ends.")
    ] = False,
    run: Annotated[
        str | None,
        typer.Option("--run", help="Flow run id or name [default: the latest submit-round run]."),
    ] = None,
) -> None:
    """The logs of the latest submit-round run and of its submit-model subflows."""
    with _prefect() as client:
        root = _root_run(client, run)
        console.print(
            f"Flow run {escape(root.name)} ({_state_label(root)}): {_ui_url(root.id)}",
            soft_wrap=True,
        )
        seen: set[UUID] = set()
        since: dt.datetime | None = None
        while True:
            family = _run_family(client, root)
            since = _print_new_logs(client, family, seen, since)
            root = client.read_flow_run(root.id)
            final = root.state is not None and root.state.is_final()
            if not follow or final:
                break
            time.sleep(1)
        if follow:
            time.sleep(1)  # the last lines are shipped in batches after the state changes
            _print_new_logs(client, _run_family(client, root), seen, since)
            console.print(f"Flow run {escape(root.name)} ended {_state_label(root)}")


# -- doctor ------------------------------------------------------------------------------


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


@app.command()
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


# -- teardown ----------------------------------------------------------------------------


def _delete_block(client: SyncPrefectClient, name: str, type_slug: str) -> bool:
    """Delete a block document; False if it did not exist."""
    try:
        document = client.read_block_document_by_name(name, block_type_slug=type_slug)
    except ObjectNotFound:
        return False
    client.delete_block_document(document.id)
    return True


def _remove_webhooks(credentials: NumeraiCredentials, entries: list[ModelEntry], results: _Results):
    """Unset the Numerai webhook of every configured model."""
    client = credentials.get_client()
    ids = _model_ids(client, entries)
    hooks = _registered_webhooks(client)
    for entry in entries:
        model_id = ids[entry.name]
        if model_id is None:
            results.add("webhook", entry.name, "model not in the account: left alone")
        elif hooks is not None and not hooks.get(model_id):
            results.add("webhook", entry.name, "absent")
        else:
            client.set_submission_webhook(model_id, None)
            results.add("webhook", entry.name, "removed", changed=True)


def _remove_automations(client: SyncPrefectClient, results: _Results) -> None:
    """Delete the automations and the notifier that setup --notify created."""
    from deployments.automations import PREFIX
    from deployments.notifications import NOTIFIER_BLOCK_NAME

    for automation in client.read_automations():
        if automation.name.startswith(PREFIX):
            client.delete_automation(automation.id)
            results.add("automation", automation.name, "removed", changed=True)
    for document in client.read_block_documents():
        if document.name == NOTIFIER_BLOCK_NAME:
            client.delete_block_document(document.id)
            results.add("notifier", NOTIFIER_BLOCK_NAME, "removed", changed=True)


def _teardown_aws(stack_name: str, results: _Results) -> None:
    """Delete the ECS pool, the CloudFormation stack and the Prefect API key secret."""
    from deployments.aws import stack

    if stack.delete_prefect_api_key(stack_name):
        results.add("aws secret", "Prefect API key", "deleted", changed=True)
    if stack.status(stack_name) is None:
        results.add("aws stack", stack_name, "absent")
        return
    pool_name = stack.outputs(stack_name).get("WorkPoolName", "numerai-ecs")
    with _prefect() as client:
        try:
            client.delete_work_pool(pool_name)
            results.add("work pool", pool_name, "removed", changed=True)
        except ObjectNotFound:
            pass
    with console.status(f"Deleting CloudFormation stack {stack_name} (minutes)…"):
        stack.delete(stack_name)
    results.add("aws stack", stack_name, "deleted", changed=True)


@app.command()
@_friendly
def teardown(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    pool: PoolOption = DEFAULT_POOL,
    models_file: ModelsFile = ROOT / "models.toml",
    credentials_block: CredentialsBlock = DEFAULT_CREDENTIALS,
    aws: Annotated[
        bool, typer.Option("--aws", help="Also delete the CloudFormation stack and its pool.")
    ] = False,
    aws_stack: AwsStack = "numerai-prefect",
) -> None:
    """Remove what setup created: webhooks, submit-round deployments, blocks, the work pool."""
    entries = _read_entries(models_file)
    blocks = [model_block_name(e.name) for e in entries]
    console.print("This removes:")
    console.print(f"  • the Numerai webhooks of {', '.join(e.name for e in entries)}")
    console.print(f"  • every deployment of flow {ROUND_FLOW}")
    console.print(f"  • the Numerai Model blocks {', '.join(blocks)}")
    console.print(f"  • the Numerai Credentials block {credentials_block}")
    console.print(f"  • the work pool {pool} (only if setup created it)")
    console.print("  • the numerai-* automations and the numerai-notify notifier")
    if aws:
        console.print(f"  • the CloudFormation stack {aws_stack} (ECR images, logs, secret)")
    if not yes:
        typer.confirm("Remove all of this?", abort=True)
    results = _Results("numerai-prefect teardown")
    credentials = _load_credentials(credentials_block)
    if credentials is None:
        results.add("webhooks", "-", "no credentials block: webhooks left alone")
    else:
        try:
            _remove_webhooks(credentials, entries, results)
        except NumeraiError as exc:
            results.add("webhooks", "-", f"not removed: {exc}", ok=False)
    with _prefect() as client:
        deployments = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[ROUND_FLOW]))
        )
        for deployment in deployments:
            client.delete_deployment(deployment.id)
            results.add("deployment", f"{ROUND_FLOW}/{deployment.name}", "removed", changed=True)
        if not deployments:
            results.add("deployments", ROUND_FLOW, "absent")
        for block in blocks:
            removed = _delete_block(client, block, "numerai-model")
            results.add("model block", block, "removed" if removed else "absent", changed=removed)
        removed = _delete_block(client, credentials_block, "numerai-credentials")
        results.add(
            "credentials", credentials_block, "removed" if removed else "absent", changed=removed
        )
        try:
            work_pool = client.read_work_pool(pool)
        except ObjectNotFound:
            results.add("work pool", pool, "absent")
        else:
            if pool == DEFAULT_POOL or work_pool.description == POOL_DESCRIPTION:
                client.delete_work_pool(pool)
                results.add("work pool", pool, "removed", changed=True)
            else:
                results.add("work pool", pool, "kept: not created by setup")
        _remove_automations(client, results)
    if aws:
        _teardown_aws(aws_stack, results)
    results.show()
    if results.failed:
        raise typer.Exit(1)
    console.print(
        f"[green]Removed {results.changed} item(s).[/]" if results.changed else "Nothing to remove."
    )


@app.command()
@_friendly
def new(
    name: Annotated[str, typer.Argument(help="The model's name on Numerai (letters, digits, _).")],
    tournament: Annotated[
        str, typer.Option("--tournament", "-t", help="classic, signals or crypto.")
    ] = "classic",
    directory: Annotated[
        Path,
        typer.Option(
            "--dir",
            help="Where the model's folder is made (inside the project: the image "
            "carries the project folder).",
        ),
    ] = ROOT / "models",
    models_file: ModelsFile = ROOT / "models.toml",
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the models.toml entry instead of adding it.")
    ] = False,
) -> None:
    """Scaffold a model package (predict, train, requirements, sandbox test) and list it."""
    from deployments.scaffold import ScaffoldError, scaffold

    try:
        made = scaffold(name, tournament, directory, None if print_only else models_file)
    except ScaffoldError as exc:
        _fail(str(exc))
    for path in made.files:
        console.print(f"{OK} created {escape(str(path))}")
    if made.models_file is None:
        console.print("Add this to your models.toml:\n\n" + escape(made.entry))
    else:
        console.print(f"{OK} added [bold]{escape(name)}[/] to {escape(str(made.models_file))}")
    package = escape(str(made.package))
    console.print(
        "\nNext: "
        f"list what it needs in {package}/requirements.txt and run `make venv` (installs it "
        "here; the image installs it too), "
        f"`pytest {package}` (runs it against the sandbox), "
        f"`python {package}/train.py` (writes model.pkl), "
        "`numerai-prefect setup --deploy` (saves its block, deploys)."
    )


if __name__ == "__main__":
    app()
