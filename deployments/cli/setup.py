"""`numerai-prefect setup`: blocks, work pool, deployments, webhooks, notifier, AWS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from uuid import UUID

import httpx
import typer
from prefect.exceptions import ObjectNotFound
from pydantic import SecretStr

from blocks import NumeraiCredentials
from deployments.cli._common import (
    DEFAULT_CREDENTIALS,
    DEFAULT_POOL,
    DEPLOYMENTS,
    POOL_DESCRIPTION,
    SECRET_ENV,
    AwsStack,
    CredentialsBlock,
    ModelsFile,
    PoolOption,
    WebhookUrl,
    _api_url,
    _fail,
    _friendly,
    _load_credentials,
    _load_model_block,
    _mask,
    _model_config,
    _model_ids,
    _notifier_document,
    _prefect,
    _read_entries,
    _registered_webhooks,
    _Results,
    _webhook_secret,
    _webhook_url,
    console,
)
from deployments.local import ROOT, ModelEntry, example_artifact, train_example
from model.names import model_block_name
from model.readable import plural


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
    wanted = _model_config(entry, stored)
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
    """Create the process work pool unless it exists; its runs start once, by this interpreter."""
    from deployments.process_pool import ensure_process_pool

    try:
        done = ensure_process_pool(pool, POOL_DESCRIPTION)
    except ValueError as wrong_type:
        results.add("work pool", pool, str(wrong_type), ok=False)
        return
    outcome = {
        "created": "created (process; each run started once, by this project's Python)",
        "command set": "exists; each run now started once, by this project's Python",
        "kept": "exists",
    }[done]
    results.add("work pool", pool, outcome, changed=done != "kept")


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
    ids = _model_ids(credentials, entries)
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
        _fail(f"{plural(results.failed, 'step')} failed: see the table above")
    if results.changed:
        console.print(f"[green]Set up: {plural(results.changed, 'change')}.[/]")
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

    block_id: UUID
    if kind and settings is not None:
        try:
            block_id = save_notifier(kind, **settings)  # type: ignore[arg-type]
        except ValueError as exc:
            results.add("notifier", NOTIFIER_BLOCK_NAME, str(exc), ok=False)
            return
        results.add("notifier", NOTIFIER_BLOCK_NAME, f"saved ({kind})", changed=True)
    else:
        with _prefect() as client:
            document = _notifier_document(client)
        if document is None:
            results.add("automations", "-", "no notifier: run setup --notify to add them")
            return
        block_id = document.id
    for name, outcome in apply_automations(block_id, summary=summary):
        results.add("automation", name, outcome, changed=outcome != "unchanged")


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
