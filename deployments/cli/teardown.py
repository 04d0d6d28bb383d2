"""`numerai-prefect teardown`: remove what setup created, and only that."""

from __future__ import annotations

from typing import Annotated

import typer
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
)
from prefect.exceptions import ObjectNotFound

from blocks import (
    NumeraiCredentials,
    NumeraiError,
)
from deployments.cli._common import (
    DEFAULT_CREDENTIALS,
    DEFAULT_POOL,
    POOL_DESCRIPTION,
    AwsStack,
    CredentialsBlock,
    ModelsFile,
    PoolOption,
    _friendly,
    _load_credentials,
    _model_ids,
    _prefect,
    _read_entries,
    _registered_webhooks,
    _Results,
    console,
)
from deployments.local import ROOT, ModelEntry
from model.names import ROUND_FLOW, model_block_name, trigger_variable_name
from model.readable import plural


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
    ids = _model_ids(credentials, entries)
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
            # The model's last webhook trigger, kept by the receiver (absent: never called).
            if client.read_variable_by_name(trigger_variable_name(block)) is not None:
                client.delete_variable_by_name(trigger_variable_name(block))
                results.add("webhook trigger", block, "removed", changed=True)
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
    count = plural(results.changed, "item")
    console.print(f"[green]Removed {count}.[/]" if results.changed else "Nothing to remove.")
