"""The round-webhook receiver as an AWS Lambda behind a function URL: the project's receiver.

The stack's Lambda runs the project's own image (the one the rounds run in, from the stack's ECR
repository) as `python -m awslambdaric deployments.aws.lambda_handler.handler`. Mangum adapts
function-URL events to `deployments.receiver.create_app`, so the Lambda checks the same secret
path, routes the same models, applies the same limits and gives the same answers as
`python -m deployments.receiver`.

Only ARNs are in the function's configuration: at a cold start the handler reads the webhook
secret (NUMERAI_WEBHOOK_SECRET_ARN) and, for Prefect Cloud, the Prefect API key
(PREFECT_API_KEY_SECRET_ARN) from Secrets Manager, each at the version its *_VERSION variable
pins when set (`setup --aws` pins a new one when it stores it, which replaces every running
instance). The other settings are the local receiver's variables (PREFECT_API_URL,
NUMERAI_DEPLOYMENT, NUMERAI_WEBHOOK_MAX_BYTES, ...).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mangum import Mangum

from deployments.receiver import ReceiverSettings, create_app

logger = logging.getLogger("deployments.aws.lambda_handler")

WEBHOOK_SECRET_ARN = "NUMERAI_WEBHOOK_SECRET_ARN"  # noqa: S105 - the name of the variable
PREFECT_API_KEY_ARN = "PREFECT_API_KEY_SECRET_ARN"
VERSION_SUFFIX = "_VERSION"  # NUMERAI_WEBHOOK_SECRET_VERSION, PREFECT_API_KEY_SECRET_VERSION
EVENTS_FLUSH_SECONDS = 5.0  # a frozen Lambda sends nothing: emitted events go before returning

SecretReader = Callable[[str, str | None], str]


def read_secret(arn: str, version_id: str | None = None) -> str:
    """A Secrets Manager secret's string value (the current one, or the version given)."""
    import boto3

    request = {"SecretId": arn} | ({"VersionId": version_id} if version_id else {})
    value = boto3.client("secretsmanager").get_secret_value(**request)["SecretString"]
    return str(value)


@dataclass(frozen=True)
class Receiver:
    """The receiver of one Lambda execution environment, built at its cold start."""

    adapter: Mangum
    prefect_api_url: str
    prefect_api_key: str | None = field(default=None, repr=False)

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """Answer one function-URL event with the receiver's app, then flush emitted events."""
        from prefect.events.worker import EventsWorker
        from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL, temporary_settings

        # The receiver's Prefect client and event emitter read these settings; a context per
        # invocation (Mangum runs the app on a task made inside it) keeps the key out of
        # os.environ and so out of anything that copies the environment.
        updates: dict[Any, Any] = {PREFECT_API_URL: self.prefect_api_url}
        if self.prefect_api_key:
            updates[PREFECT_API_KEY] = self.prefect_api_key
        with temporary_settings(updates=updates):
            try:
                return dict(self.adapter(dict(event), context))
            finally:
                EventsWorker.drain_all(timeout=EVENTS_FLUSH_SECONDS)


def build(env: Mapping[str, str] | None = None, secrets: SecretReader = read_secret) -> Receiver:
    """The receiver from the environment and the secrets its ARNs name.

    Raises ValueError (the receiver's own ConfigError among them) or KeyError when the
    configuration is incomplete or unsafe, and botocore's errors when a secret cannot be read.
    """
    env = os.environ if env is None else env

    def secret_of(variable: str) -> str | None:
        arn = env.get(variable, "")
        if not arn:
            return None
        return secrets(arn, env.get(variable.removesuffix("_ARN") + VERSION_SUFFIX) or None).strip()

    secret = secret_of(WEBHOOK_SECRET_ARN)
    if secret is None:
        raise KeyError(f"{WEBHOOK_SECRET_ARN} is not set")
    settings = ReceiverSettings.from_env({**env, "NUMERAI_WEBHOOK_SECRET": secret})
    key = secret_of(PREFECT_API_KEY_ARN)
    app = create_app(settings)
    return Receiver(Mangum(app, lifespan="off"), settings.prefect_api_url, key or None)


_receiver: Receiver | None = None


def _unavailable() -> dict[str, Any]:
    return {
        "statusCode": 503,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"detail": "receiver not configured; see its logs"}),
        "isBase64Encoded": False,
    }


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (function URL, payload format 2.0)."""
    global _receiver
    if _receiver is None:
        try:
            _receiver = build()
        except Exception as exc:  # any start failure answers 503; the next call tries again
            # The message names settings, never a secret's value (ReceiverSettings hides it).
            logger.error("receiver not started: %s: %s", type(exc).__name__, exc)
            return _unavailable()
    return _receiver(event, context)
