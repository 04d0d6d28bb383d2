"""Numerai's round webhook -> one Prefect flow run of submit-round per model and trigger id.

Run it:  `python -m deployments.receiver --host 127.0.0.1 --port 8080`
     or  `uvicorn deployments.receiver:app --no-access-log` (settings read at startup).

Register `https://HOST/webhook/SECRET/MODEL_BLOCK` as each model's webhook on Numerai
(`setSubmissionWebhook`); `https://HOST/webhook/SECRET` starts one run for every model.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hmac
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import httpx
import uvicorn
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model.schedule import window_at

logger = logging.getLogger("deployments.receiver")  # also under `python -m`
access_logger = logging.getLogger("deployments.receiver.access")

MIN_SECRET_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_SECRET_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved URL characters: one path segment
BLOCK_NAME = re.compile(r"[a-z0-9-]{1,100}")  # Prefect block names
WEBHOOK_TAG = "numerai-webhook"
_WEBHOOK_PATH = re.compile(r"(/webhook/)[^/\s\"?]+")
_NOT_FOUND = "Not Found"  # the body of any unknown path: a wrong secret looks the same


class ConfigError(ValueError):
    """The receiver's environment is incomplete or unsafe."""


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver needs; `from_env` reads it from the environment."""

    secret: str = field(repr=False)
    prefect_api_url: str
    deployment: str = "submit-round/round"
    max_bytes: int = 16384
    prefect_timeout: float = 5.0

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"NUMERAI_WEBHOOK_SECRET must be at least {MIN_SECRET_LENGTH} characters "
                f"(got {len(self.secret)}); make one with: {GENERATE_HINT}"
            )
        if not _SECRET_CHARS.fullmatch(self.secret):
            raise ConfigError(
                "NUMERAI_WEBHOOK_SECRET must be URL-safe (letters, digits, '-', '_', '.', '~'); "
                f"make one with: {GENERATE_HINT}"
            )
        if self.deployment.count("/") != 1:
            raise ConfigError(f"NUMERAI_DEPLOYMENT must be FLOW/NAME, got {self.deployment!r}")
        if self.max_bytes <= 0 or self.prefect_timeout <= 0:
            raise ConfigError("NUMERAI_WEBHOOK_MAX_BYTES and the Prefect timeout must be positive")
        if not self.prefect_api_url.startswith(("http://", "https://")):
            raise ConfigError(
                "PREFECT_API_URL must be the URL of a running Prefect API, "
                f"e.g. http://127.0.0.1:4200/api (got {self.prefect_api_url!r})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReceiverSettings:
        """Read NUMERAI_WEBHOOK_SECRET, NUMERAI_DEPLOYMENT, NUMERAI_WEBHOOK_MAX_BYTES, ..."""
        env = os.environ if env is None else env
        secret = env.get("NUMERAI_WEBHOOK_SECRET", "")
        if not secret:
            raise ConfigError(f"NUMERAI_WEBHOOK_SECRET is not set; make one with: {GENERATE_HINT}")
        try:
            max_bytes = int(env.get("NUMERAI_WEBHOOK_MAX_BYTES", "16384"))
            timeout = float(env.get("NUMERAI_WEBHOOK_PREFECT_TIMEOUT", "5"))
        except ValueError as exc:
            raise ConfigError(f"invalid number in the receiver's environment: {exc}") from exc
        return cls(
            secret=secret,
            prefect_api_url=env.get("PREFECT_API_URL") or str(PREFECT_API_URL.value() or ""),
            deployment=env.get("NUMERAI_DEPLOYMENT", "submit-round/round"),
            max_bytes=max_bytes,
            prefect_timeout=timeout,
        )


class RoundWebhook(BaseModel):
    """The JSON body Numerai POSTs when a round opens (only triggerId is documented)."""

    model_config = ConfigDict(extra="ignore")

    triggerId: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)]
    roundNumber: int | None = None
    dataVersion: str | None = None
    isTest: bool | None = None


class RedactWebhookSecret(logging.Filter):
    """Replace the secret path segment of /webhook/... in a log record with ***."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message if it contains a webhook path; never drops a record."""
        message = record.getMessage()
        redacted = _WEBHOOK_PATH.sub(r"\1***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactWebhookSecret()


def install_redaction() -> None:
    """Redact webhook secrets in uvicorn's own log lines (access log included)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        log = logging.getLogger(name)
        if _REDACT not in log.filters:
            log.addFilter(_REDACT)


def redact_path(path: str) -> str:
    """The request path with the webhook secret replaced by ***."""
    return _WEBHOOK_PATH.sub(r"\1***", path)


class PrefectUnavailable(RuntimeError):
    """Prefect's API could not create the run now; the caller should retry."""


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def announce_round(model: str, hook: RoundWebhook) -> None:
    """Emit numerai.round.opened for the model, which the "about to be missed" automations await.

    Only inside a round window: the label names the window, whose length sets the deadline.
    """
    window = window_at(dt.datetime.now(dt.UTC))
    if window is None:
        return
    resource = {
        "prefect.resource.id": f"numerai.model.{model}",
        "prefect.resource.name": model,
        "numerai.window": window.name,
    }
    related = []
    if hook.roundNumber is not None:
        resource["numerai.round"] = str(hook.roundNumber)
        related.append(
            {
                "prefect.resource.id": f"numerai.round.{hook.roundNumber}",
                "prefect.resource.role": "round",
            }
        )
    emit_event(
        event="numerai.round.opened",
        resource=resource,
        related=related,
        payload={"model": model, "round": hook.roundNumber, "trigger_id": hook.triggerId},
    )


RECENT_TRIGGERS = 1024  # runs remembered per receiver process, by idempotency key


class Receiver:
    """The request handlers; holds the settings and the cached deployment id."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self._deployment_id: UUID | None = None
        self._secret = settings.secret.encode()
        # Repeated deliveries of one trigger wait for the first and reuse its run, instead of
        # racing to Prefect (its SQLite answers concurrent writes of one key with 503s).
        self._pending: dict[str, asyncio.Lock] = {}
        self._recent: OrderedDict[str, FlowRun] = OrderedDict()

    async def health(self, request: Request) -> Response:
        """Liveness: no secret, no Prefect call."""
        return JSONResponse({"status": "ok"})

    async def webhook(self, request: Request) -> Response:
        """Check secret, model and body, then create (or find) the trigger's flow run."""
        given = str(request.path_params["secret"]).encode()
        if not hmac.compare_digest(given, self._secret):
            return PlainTextResponse(_NOT_FOUND, status_code=404)
        model: str | None = request.path_params.get("model")
        if model is not None and not BLOCK_NAME.fullmatch(model):
            return _error(
                422, "model: must be a Prefect block name (lowercase letters, digits, dashes)"
            )
        try:
            body = await _read_body(request, self.settings.max_bytes)
        except _BodyTooLarge:
            return _error(413, f"body: larger than {self.settings.max_bytes} bytes")
        try:
            hook = RoundWebhook.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, _describe(exc))
        try:
            run, duplicate = await self.create_run(hook, model)
        except PrefectUnavailable as exc:
            logger.warning("trigger %s for %s: %s", hook.triggerId, model or "all models", exc)
            return _error(503, str(exc))
        if model is not None and not duplicate:
            announce_round(model, hook)
        logger.info(
            "trigger %s (round %s, %s%s): flow run %s %s%s",
            *(hook.triggerId, hook.roundNumber, model or "all models"),
            " test" if hook.isTest else "",
            *(run.name, run.id, " (repeated delivery)" if duplicate else ""),
        )
        return JSONResponse(
            {"flow_run_id": str(run.id), "flow_run_name": run.name, "duplicate": duplicate}
        )

    def _client(self, hook: Callable[[httpx.Response], Awaitable[None]]) -> PrefectClient:
        # Same as get_client() but pinned to the URL the receiver started with: get_client()
        # reads PREFECT_API_URL from a context-local settings object and would silently start an
        # ephemeral server when it is unset.
        return PrefectClient(
            self.settings.prefect_api_url,
            api_key=PREFECT_API_KEY.value(),
            auth_string=PREFECT_API_AUTH_STRING.value(),
            httpx_settings={
                "timeout": httpx.Timeout(self.settings.prefect_timeout),
                "event_hooks": {"response": [hook]},
            },
        )

    async def _resolve_deployment(self, client: PrefectClient) -> UUID:
        if self._deployment_id is None:
            deployment = await client.read_deployment_by_name(self.settings.deployment)
            self._deployment_id = deployment.id
        return self._deployment_id

    async def create_run(self, hook: RoundWebhook, model: str | None) -> tuple[FlowRun, bool]:
        """The trigger's run: remembered, or created once (Prefect dedupes a repeated key too)."""
        key = f"numerai-trigger-{model or 'all'}-{hook.triggerId}"
        lock = self._pending.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self._recent:
                    self._recent.move_to_end(key)
                    return self._recent[key], True
                run, duplicate = await self._create_run(hook, model, key)
                self._recent[key] = run
                while len(self._recent) > RECENT_TRIGGERS:
                    self._recent.popitem(last=False)
                return run, duplicate
        finally:
            if not lock.locked() and self._pending.get(key) is lock:
                del self._pending[key]

    async def _create_run(
        self, hook: RoundWebhook, model: str | None, key: str
    ) -> tuple[FlowRun, bool]:
        parameters: dict[str, Any] = {"trigger_id": hook.triggerId}
        if model is not None:
            parameters["models"] = [model]
        statuses: list[int] = []

        async def remember(response: httpx.Response) -> None:
            # The server answers 201 for a new run and 200 for an existing idempotency key.
            if response.request.url.path.endswith("/create_flow_run"):
                statuses.append(response.status_code)

        async def create(client: PrefectClient) -> FlowRun:
            deployment_id = await self._resolve_deployment(client)
            return await client.create_flow_run_from_deployment(
                deployment_id, parameters=parameters, idempotency_key=key, tags=[WEBHOOK_TAG]
            )

        name = self.settings.deployment
        try:
            # One deadline for everything: Prefect's client retries timeouts and 5xx with
            # backoff for far longer than a webhook caller waits.
            async with asyncio.timeout(self.settings.prefect_timeout):
                async with self._client(remember) as client:
                    try:
                        run = await create(client)
                    except PrefectHTTPStatusError as exc:
                        if exc.response.status_code != 404:
                            raise
                        self._deployment_id = None  # deleted and re-created: look it up again
                        run = await create(client)
        except ObjectNotFound as exc:
            raise PrefectUnavailable(
                f"deployment {name!r} not found on the Prefect API: run `prefect deploy`, "
                "then retry"
            ) from exc
        except PrefectHTTPStatusError as exc:
            raise PrefectUnavailable(
                f"Prefect API answered HTTP {exc.response.status_code}, retry later"
            ) from exc
        except TimeoutError as exc:  # before OSError, its base class
            raise PrefectUnavailable(
                f"Prefect API did not answer within {self.settings.prefect_timeout:g} s, "
                "retry later"
            ) from exc
        except (httpx.HTTPError, OSError) as exc:
            raise PrefectUnavailable(
                f"Prefect API unreachable ({type(exc).__name__}), retry later"
            ) from exc
        return run, statuses[-1:] == [200]


class AccessLog:
    """ASGI middleware: one log line per request, the webhook secret redacted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through and log method, redacted path, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            access_logger.info(
                '%s "%s %s" %s %.0f ms',
                *(scope["client"][0] if scope.get("client") else "-", scope["method"]),
                *(redact_path(scope["path"]), status, (time.perf_counter() - start) * 1000),
            )


def create_app(settings: ReceiverSettings | None = None) -> Starlette:
    """The receiver's ASGI app (settings from the environment when not given)."""
    settings = settings or ReceiverSettings.from_env()
    install_redaction()
    receiver = Receiver(settings)
    app = Starlette(
        routes=[
            Route("/health", receiver.health, methods=["GET"]),
            Route("/webhook/{secret}", receiver.webhook, methods=["POST"]),
            Route("/webhook/{secret}/{model}", receiver.webhook, methods=["POST"]),
        ]
    )
    app.add_middleware(AccessLog)
    app.state.receiver = receiver
    return app


class _LazyApp:
    """`uvicorn deployments.receiver:app`: builds the app from the environment at startup."""

    def __init__(self) -> None:
        self._app: Starlette | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Build on lifespan startup (a bad environment stops the server), then delegate."""
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            try:
                self._app = self._app or create_app()
            except ConfigError as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self._app is None:  # served with lifespan off
            self._app = create_app()
        await self._app(scope, receive, send)


app = _LazyApp()


def main(argv: list[str] | None = None) -> None:
    """Serve the receiver with uvicorn (uvicorn's access log off: it would print the secret)."""
    parser = argparse.ArgumentParser(prog="python -m deployments.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = ReceiverSettings.from_env()
    except ConfigError as exc:
        parser.exit(2, f"receiver not started: {exc}\n")
    logger.info(
        "receiver for deployment %s on %s:%s (Prefect API %s)",
        *(settings.deployment, args.host, args.port, settings.prefect_api_url),
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        log_level=args.log_level,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
