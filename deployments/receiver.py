"""Numerai's round webhook -> one Prefect flow run of submit-round per round.

Run it:  `python -m deployments.receiver --host 127.0.0.1 --port 8080`
     or  `uvicorn deployments.receiver:app --no-access-log` (settings read at startup).

Register `https://HOST/webhook/SECRET/MODEL_BLOCK` as each model's webhook on Numerai
(`setSubmissionWebhook`). When a round opens, Numerai calls every model's webhook: the first
call creates the round's run (every model, split by size by the flow), starting
NUMERAI_WEBHOOK_GATHER_SECONDS later; each call stores its model's trigger id, which the model's
task reads before it uploads. A test trigger (`isTest`), or a webhook when no round is known
(no roundNumber, outside the schedule's windows), starts a run of its model alone, with its
trigger id as a parameter. `https://HOST/webhook/SECRET` starts one run for every model.

Every rule (routes, body size and deadline, requests in flight, strict body types) is enforced
by the ASGI app itself, so that any server that hosts it (uvicorn here, Mangum on AWS Lambda)
answers alike; the server's own options only add limits in front of it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import datetime as dt
import hmac
import json
import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from uuid import UUID

import httpx
import uvicorn
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import VariableCreate, VariableUpdate
from prefect.client.schemas.objects import FlowRun
from prefect.events import Event
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError
from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_KEY, PREFECT_API_URL
from prefect.states import Scheduled, State
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from model.names import (
    WEBHOOK_TAG,
    model_resource_id,
    round_resource_id,
    trigger_key,
    trigger_variable_name,
)
from model.schedule import RoundWindow, window_at
from model.triggers import WebhookTrigger, round_run_key

logger = logging.getLogger("deployments.receiver")  # also under `python -m`
access_logger = logging.getLogger("deployments.receiver.access")

MIN_SECRET_LENGTH = 32
GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_SECRET_CHARS = re.compile(r"[A-Za-z0-9._~-]+")  # unreserved URL characters: one path segment
BLOCK_NAME = re.compile(r"[a-z0-9-]{1,100}")  # Prefect block names
_NOT_FOUND = "Not Found"  # the body of any unknown path: a wrong secret looks the same
# Numerai's trigger ids are UUIDs (what triggerModelWebhook returns). The alphabet is a little
# wider (a token of letters, digits and . _ : -) so that another id scheme still passes, while a
# trigger id can never carry a control character, a space or a quote into a log line, a run's
# parameters or the TRIGGER_ID that numerapi sends back.
TRIGGER_ID_MAX = 128
TRIGGER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
TRIGGER_ID_RULE = (
    f"must be 1 to {TRIGGER_ID_MAX} characters: letters, digits, '.', '_', ':' or '-', "
    "starting with a letter or digit"
)
DATA_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")  # "v5.3"
_WEBHOOK_ROUTE = re.compile(r"/webhook/([^/]+)(?:/([^/]+))?")
_BARE_VALUE = re.compile(r"[A-Za-z0-9._:/*@+-]+")


class ConfigError(ValueError):
    """The receiver's environment is incomplete or unsafe."""


def _env_number(env: Mapping[str, str], name: str, default: str) -> float:
    try:
        return float(env.get(name, default))
    except ValueError as exc:
        raise ConfigError(f"invalid number in {name}: {exc}") from exc


def _env_count(env: Mapping[str, str], name: str, default: str) -> int:
    number = _env_number(env, name, default)
    if not number.is_integer():
        raise ConfigError(f"invalid number in {name}: {number:g} is not a whole number")
    return int(number)


@dataclass(frozen=True)
class ReceiverSettings:
    """What the receiver needs; `from_env` reads it from the environment."""

    secret: str = field(repr=False)
    prefect_api_url: str
    deployment: str = "submit-round/round"
    max_bytes: int = 16384
    prefect_timeout: float = 5.0
    # A webhook body is a few hundred bytes: a client that has not sent it by then never will.
    body_timeout: float = 10.0
    # Requests handled at once; more are answered 503 at once (Numerai retries).
    max_in_flight: int = 100
    # Creates sent to Prefect at once. SQLite takes one writer at a time and answers a
    # collision with 503, which Prefect's client waits out for 2 s, then 4 s: creates that queue
    # here finish sooner than creates that collide there.
    create_concurrency: int = 2
    # A round's run starts this long after its first webhook, so that the other models' calls
    # (Numerai sends them together) are in before the first model uploads.
    gather_seconds: float = 5.0

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
        numbers = (
            self.max_bytes,
            self.prefect_timeout,
            self.body_timeout,
            self.max_in_flight,
            self.create_concurrency,
        )
        if min(numbers) <= 0:
            raise ConfigError(
                "NUMERAI_WEBHOOK_MAX_BYTES, the timeouts, NUMERAI_WEBHOOK_MAX_IN_FLIGHT and "
                "NUMERAI_WEBHOOK_CREATE_CONCURRENCY must be positive"
            )
        if not 0 <= self.gather_seconds <= 600:
            raise ConfigError(
                "NUMERAI_WEBHOOK_GATHER_SECONDS must be between 0 and 600 "
                f"(got {self.gather_seconds:g})"
            )
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
        return cls(
            secret=secret,
            prefect_api_url=env.get("PREFECT_API_URL") or str(PREFECT_API_URL.value() or ""),
            deployment=env.get("NUMERAI_DEPLOYMENT", "submit-round/round"),
            max_bytes=_env_count(env, "NUMERAI_WEBHOOK_MAX_BYTES", "16384"),
            prefect_timeout=_env_number(env, "NUMERAI_WEBHOOK_PREFECT_TIMEOUT", "5"),
            body_timeout=_env_number(env, "NUMERAI_WEBHOOK_BODY_TIMEOUT", "10"),
            max_in_flight=_env_count(env, "NUMERAI_WEBHOOK_MAX_IN_FLIGHT", "100"),
            create_concurrency=_env_count(env, "NUMERAI_WEBHOOK_CREATE_CONCURRENCY", "2"),
            gather_seconds=_env_number(env, "NUMERAI_WEBHOOK_GATHER_SECONDS", "5"),
        )


def _trigger_id(value: str) -> str:
    if len(value) > TRIGGER_ID_MAX or not TRIGGER_ID.fullmatch(value):
        raise ValueError(TRIGGER_ID_RULE)  # the value itself is not repeated back
    return value


def _data_version(value: str) -> str:
    if not DATA_VERSION.fullmatch(value):
        raise ValueError("must be a data version such as 'v5.3' (letters, digits, '.', '_', '-')")
    return value


class RoundWebhook(BaseModel):
    """The JSON body Numerai POSTs when a round opens (only triggerId is documented).

    Strict: a field of the wrong JSON type is refused, never converted ("1000" is not a round).
    Unknown fields are ignored, so that Numerai may add some.
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    triggerId: Annotated[str, AfterValidator(_trigger_id)]
    roundNumber: Annotated[int, Field(ge=1, le=10**6)] | None = None
    dataVersion: Annotated[str, AfterValidator(_data_version)] | None = None
    isTest: bool | None = None


# -- logging -------------------------------------------------------------------------------


def log_fields(**fields: object) -> str:
    """`key=value ...` where a value with anything but a safe character is JSON-quoted.

    JSON escapes every control character, quote and non-ASCII character, so no value can end
    a line or pass for another field.
    """
    parts = []
    for key, value in fields.items():
        text = (
            "-" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        if not _BARE_VALUE.fullmatch(text):
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def loggable_path(path: str, secrets: frozenset[str] = frozenset()) -> str:
    """What a log may say of a request path: a route with its secret as ***, or nothing.

    A path that is not one of the routes is not shown at all (its length only): a near-miss of
    the webhook route (a typo, a trailing slash, a truncated or misplaced secret) may hold the
    secret or most of it, anywhere. A model is shown only after the right secret.
    """
    if path == "/health":
        return path
    found = _WEBHOOK_ROUTE.fullmatch(path)
    if found is None:
        return f"(other path, {len(path)} characters)"
    secret, model = found.groups()
    if model is None:
        return "/webhook/***"
    if secret in secrets and BLOCK_NAME.fullmatch(model):
        return f"/webhook/***/{model}"
    return "/webhook/***/***"


class RedactRequestPaths(logging.Filter):
    """Rewrite uvicorn's log records so they show request paths as `loggable_path` does."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the path of an access record; replace any known secret elsewhere."""
        known = frozenset(self.secrets)
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # uvicorn's access record: (client, method, path with query, http version, status)
            path = str(args[2]).partition("?")[0]
            record.args = (args[0], args[1], loggable_path(path, known), args[3], args[4])
        message = record.getMessage()
        redacted = message
        for secret in known:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactRequestPaths()


def install_redaction(secret: str) -> None:
    """Redact request paths and the secret in uvicorn's own log lines (access log included)."""
    _REDACT.secrets.add(secret)
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        log = logging.getLogger(name)
        if _REDACT not in log.filters:
            log.addFilter(_REDACT)


# -- requests ------------------------------------------------------------------------------


class PrefectUnavailable(RuntimeError):
    """Prefect's API could not create the run now; the caller should retry."""


class ClientGone(Exception):
    """The client closed the connection before its request was complete."""


class _BodyTooLarge(Exception):
    pass


def _error(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def read_body(receive: Receive, scope: Scope, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes (declared or actually sent).

    Raises ClientGone when the client disconnects first. The caller bounds the time.
    """
    declared = _header(scope, b"content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True)
class RunPlan:
    """The run a webhook starts: found or created by its idempotency key."""

    key: str
    parameters: dict[str, Any]
    start: dt.datetime | None = None  # None: as soon as a worker takes it
    # The round's run (models unset): the model's trigger id is stored for its task to read.
    stores_trigger: bool = False


def plan_run(
    hook: RoundWebhook,
    model: str | None,
    now: dt.datetime,
    window: RoundWindow | None,
    gather: dt.timedelta,
) -> RunPlan:
    """One run per round for the models' webhooks; one run per trigger for the others."""
    if model is not None and not hook.isTest:
        key = round_run_key(hook.roundNumber, window, now)
        if key is not None:
            return RunPlan(key, {}, now + gather, stores_trigger=True)
    parameters: dict[str, Any] = {"trigger_id": hook.triggerId}
    if model is not None:
        parameters["models"] = [model]
    return RunPlan(trigger_key(model, hook.triggerId), parameters)


def round_opened(model: str, hook: RoundWebhook, window: RoundWindow | None) -> Event | None:
    """numerai.round.opened for the model, which the "about to be missed" automations await.

    Only inside a round window (None outside): the label names the window, whose length sets
    the deadline.
    """
    if window is None:
        return None
    resource = {
        "prefect.resource.id": model_resource_id(model),
        "prefect.resource.name": model,
        "numerai.window": window.name,
    }
    related = []
    if hook.roundNumber is not None:
        resource["numerai.round"] = str(hook.roundNumber)
        related.append(
            {
                "prefect.resource.id": round_resource_id(hook.roundNumber),
                "prefect.resource.role": "round",
            }
        )
    return Event.model_validate(
        {
            "event": "numerai.round.opened",
            "resource": resource,
            "related": related,
            "payload": {"model": model, "round": hook.roundNumber, "trigger_id": hook.triggerId},
        }
    )


RECENT_TRIGGERS = 1024  # runs remembered per receiver process, by idempotency key
# The status codes of create_flow_run responses seen by the current request's task: 201 for a
# new run, 200 for an existing idempotency key. The client is shared, its hook is not per request.
_create_statuses: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "create_statuses", default=None
)


async def _remember_create_status(response: httpx.Response) -> None:
    statuses = _create_statuses.get()
    if statuses is not None and response.request.url.path.endswith("/create_flow_run"):
        statuses.append(response.status_code)


class _Session:
    """One Prefect client, and the gates in front of it, for one event loop.

    A client per request costs a new connection pool and TLS context each time, and a burst of
    first requests would each look the deployment up; one session shares all of that.
    """

    def __init__(self, settings: ReceiverSettings) -> None:
        self.loop = asyncio.get_running_loop()
        # Pinned to the URL the receiver started with: get_client() reads PREFECT_API_URL from
        # a context-local settings object and would silently start an ephemeral server.
        connections = settings.create_concurrency + 2
        self.client = PrefectClient(
            settings.prefect_api_url,
            api_key=PREFECT_API_KEY.value(),
            auth_string=PREFECT_API_AUTH_STRING.value(),
            httpx_settings={
                "timeout": httpx.Timeout(settings.prefect_timeout),
                "limits": httpx.Limits(
                    max_connections=connections, max_keepalive_connections=connections
                ),
                "event_hooks": {"response": [_remember_create_status]},
            },
        )
        self.creates = asyncio.Semaphore(settings.create_concurrency)
        self.lookup = asyncio.Lock()
        self.started = False

    async def start(self) -> PrefectClient:
        if not self.started:
            await self.client.__aenter__()
            self.started = True
        return self.client

    async def close(self) -> None:
        if self.started:
            self.started = False
            await self.client.__aexit__(None, None, None)


class Receiver:
    """The request handlers; holds the settings, the Prefect session and recent triggers."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self._deployment_id: UUID | None = None
        self._secret = settings.secret.encode()
        self._session: _Session | None = None
        # Repeated deliveries of one trigger wait for the first and reuse its run, instead of
        # racing to Prefect (its SQLite answers concurrent writes of one key with 503s).
        self._pending: dict[str, asyncio.Lock] = {}
        self._recent: OrderedDict[str, FlowRun] = OrderedDict()
        self._kept: OrderedDict[str, None] = OrderedDict()  # model triggers stored

    def session(self) -> _Session:
        """This event loop's session (a new one if the loop changed, as it may under Lambda)."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.loop is not loop:
            self._session = _Session(self.settings)
        return self._session

    async def close(self) -> None:
        """Close the Prefect client (on the loop that opened it)."""
        if self._session is not None and self._session.loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    def secret_matches(self, given: str) -> bool:
        """Constant-time comparison with the secret."""
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._secret)

    async def handle(self, scope: Scope, receive: Receive) -> Response:
        """The answer to one HTTP request (raises ClientGone if the client leaves first)."""
        path, method = scope["path"], scope["method"]
        if path == "/health":
            if method not in ("GET", "HEAD"):
                return PlainTextResponse("Method Not Allowed", 405, headers={"allow": "GET"})
            return JSONResponse({"status": "ok"})
        found = _WEBHOOK_ROUTE.fullmatch(path)
        if found is None or not self.secret_matches(found[1]):
            return PlainTextResponse(_NOT_FOUND, status_code=404)
        if method != "POST":
            return PlainTextResponse("Method Not Allowed", 405, headers={"allow": "POST"})
        model: str | None = found[2]
        if model is not None and not BLOCK_NAME.fullmatch(model):
            return _error(
                422, "model: must be a Prefect block name (lowercase letters, digits, dashes)"
            )
        limit = self.settings.max_bytes
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                body = await read_body(receive, scope, limit)
        except _BodyTooLarge:
            return _error(413, f"body: larger than {limit} bytes", {"connection": "close"})
        except TimeoutError:
            timeout = self.settings.body_timeout
            return _error(408, f"body: not received within {timeout:g} s", {"connection": "close"})
        try:
            hook = RoundWebhook.model_validate_json(body)
        except ValidationError as exc:
            return _error(422, _describe(exc))
        now = dt.datetime.now(dt.UTC)
        window = window_at(now)
        gather = dt.timedelta(seconds=self.settings.gather_seconds)
        plan = plan_run(hook, model, now, window, gather)
        try:
            # The run first: the round's other calls wait for it, not for each other's triggers.
            run, duplicate = await self.create_run(plan)
            # A model's first delivery of this trigger: its own run, or its trigger newly kept.
            first_delivery = not duplicate
            if model is not None and plan.stores_trigger:
                trigger = WebhookTrigger(hook.triggerId, now, hook.roundNumber)
                first_delivery = await self.store_trigger(model, trigger)
        except PrefectUnavailable as exc:
            logger.warning(
                "trigger not started: %s",
                log_fields(trigger=hook.triggerId, model=model or "all", reason=str(exc)),
            )
            return _error(503, str(exc), {"retry-after": "5"})
        # Once per model and trigger: a repeated delivery is not a second opening.
        if model is not None and first_delivery:
            await self.announce(round_opened(model, hook, window))
        logger.info(
            "trigger: %s",
            log_fields(
                trigger=hook.triggerId,
                round=hook.roundNumber,
                model=model or "all",
                test=bool(hook.isTest),
                flow_run=run.name,
                flow_run_id=run.id,
                repeated=duplicate,
            ),
        )
        return JSONResponse(
            {"flow_run_id": str(run.id), "flow_run_name": run.name, "duplicate": duplicate}
        )

    async def announce(self, event: Event | None) -> None:
        """Post an event through the receiver's own client (the run exists whatever happens).

        Not emit_event: its background worker follows the PREFECT_API_URL of the calling
        context (without one it starts an ephemeral server, blocking the loop), and a Lambda
        is frozen between invocations, which would strand a queued event.
        """
        if event is None:
            return
        try:
            async with asyncio.timeout(self.settings.prefect_timeout):
                client = await self.session().start()
                answer = await client.request(
                    "POST", "/events", json=[event.model_dump(mode="json")]
                )
                answer.raise_for_status()
        except (TimeoutError, httpx.HTTPError, OSError) as exc:
            logger.warning(
                "event not sent: %s", log_fields(event=event.event, error=type(exc).__name__)
            )

    async def _resolve_deployment(self, session: _Session, client: PrefectClient) -> UUID:
        async with session.lookup:  # one lookup, however many requests arrive at once
            if self._deployment_id is None:
                deployment = await client.read_deployment_by_name(self.settings.deployment)
                self._deployment_id = deployment.id
            return self._deployment_id

    async def create_run(self, plan: RunPlan) -> tuple[FlowRun, bool]:
        """The plan's run: remembered, or created once (Prefect dedupes a repeated key too)."""
        key = plan.key
        lock = self._pending.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self._recent:
                    self._recent.move_to_end(key)
                    return self._recent[key], True
                run, duplicate = await self._create_run(plan)
                self._recent[key] = run
                while len(self._recent) > RECENT_TRIGGERS:
                    self._recent.popitem(last=False)
                return run, duplicate
        finally:
            if not lock.locked() and self._pending.get(key) is lock:
                del self._pending[key]

    @contextlib.asynccontextmanager
    async def _prefect_call(self) -> AsyncIterator[PrefectClient]:
        """A turn to write to Prefect, under one deadline; failures become PrefectUnavailable.

        The deadline covers the wait for a turn: Prefect's client retries timeouts and 5xx with
        backoff for far longer than a webhook caller waits.
        """
        session = self.session()
        try:
            async with asyncio.timeout(self.settings.prefect_timeout), session.creates:
                yield await session.start()
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

    async def store_trigger(self, model: str, trigger: WebhookTrigger) -> bool:
        """Keep the model's latest trigger in a Prefect variable; False if this receiver kept
        it already (a repeated delivery).

        One variable per model: the webhooks of a round write each its own, so none is lost
        however many receivers answer at once. One call in the steady state (the variable
        exists from an earlier round).
        """
        key = trigger_key(model, trigger.trigger_id)
        if key in self._kept:
            return False
        # Marked first, so that the same delivery arriving meanwhile is a repeat; a failed
        # write unmarks it (that call is answered 503, and Numerai delivers it again).
        self._kept[key] = None
        while len(self._kept) > RECENT_TRIGGERS:
            self._kept.popitem(last=False)
        name = trigger_variable_name(model)
        value = trigger.to_value()
        try:
            async with self._prefect_call() as client:
                try:
                    await client.update_variable(VariableUpdate(name=name, value=value))
                except PrefectHTTPStatusError as exc:
                    if exc.response.status_code != 404:
                        raise
                    try:
                        await client.create_variable(
                            VariableCreate(name=name, value=value, tags=[WEBHOOK_TAG])
                        )
                    except ObjectAlreadyExists:  # another call created it meanwhile
                        await client.update_variable(VariableUpdate(name=name, value=value))
        except BaseException:
            self._kept.pop(key, None)
            raise
        return True

    async def _create_run(self, plan: RunPlan) -> tuple[FlowRun, bool]:
        statuses: list[int] = []
        _create_statuses.set(statuses)  # this request's task only
        session = self.session()
        state: State[Any] | None = None
        if plan.start is not None:
            state = Scheduled(scheduled_time=plan.start)

        async def create(client: PrefectClient) -> FlowRun:
            deployment_id = await self._resolve_deployment(session, client)
            return await client.create_flow_run_from_deployment(
                deployment_id,
                parameters=plan.parameters,
                idempotency_key=plan.key,
                tags=[WEBHOOK_TAG],
                state=state,
            )

        name = self.settings.deployment
        try:
            async with self._prefect_call() as client:
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
        return run, statuses[-1:] == [200]


class ReceiverApp:
    """The ASGI app: exact routes, limits, and one structured access line per request."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings
        self.receiver = Receiver(settings)
        self._secrets = frozenset({settings.secret})
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (or the lifespan); other protocols are closed."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        outcome = "answered"
        try:
            if self.in_flight >= self.settings.max_in_flight:
                response: Response = _error(
                    503, "busy: too many requests at once, retry later", {"retry-after": "1"}
                )
            else:
                self.in_flight += 1
                try:
                    response = await self.receiver.handle(scope, receive)
                finally:
                    self.in_flight -= 1
            await response(scope, receive, send_and_remember)
        except ClientGone:
            outcome = "client left before its body was complete"
        except Exception as exc:
            outcome = f"failed: {type(exc).__name__}"
            logger.exception("request failed: %s", log_fields(error=type(exc).__name__))
            if status is None:
                await _error(500, "internal error")(scope, receive, send_and_remember)
        finally:
            client = scope.get("client")
            access_logger.info(
                "%s",
                log_fields(
                    client=client[0] if client else None,
                    method=scope.get("method"),
                    path=loggable_path(scope.get("path", ""), self._secrets),
                    status=status,
                    ms=f"{(time.perf_counter() - started) * 1000:.0f}",
                    outcome=outcome,
                ),
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.receiver.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: ReceiverSettings | None = None) -> ReceiverApp:
    """The receiver's ASGI app (settings from the environment when not given)."""
    settings = settings or ReceiverSettings.from_env()
    install_redaction(settings.secret)
    return ReceiverApp(settings)


class _LazyApp:
    """`uvicorn deployments.receiver:app`: builds the app from the environment at startup."""

    def __init__(self) -> None:
        self._app: ReceiverApp | None = None

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
            await self._app.receiver.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if self._app is None:  # served with lifespan off
            self._app = create_app()
        await self._app(scope, receive, send)


app = _LazyApp()


def uvicorn_limits(settings: ReceiverSettings) -> dict[str, Any]:
    """uvicorn's own limits in front of the app's: connections, idle keep-alive, header size."""
    return {
        # Connections and requests at once, counted by uvicorn before the app sees a request
        # (a client that never finishes its headers holds one until the limit answers 503).
        "limit_concurrency": settings.max_in_flight + 20,
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers
        "server_header": False,
    }


def main(argv: list[str] | None = None) -> None:
    """Serve the receiver with uvicorn (uvicorn's access log off: the app logs each request)."""
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
        "receiver: %s",
        log_fields(
            deployment=settings.deployment,
            host=args.host,
            port=args.port,
            prefect_api=re.sub(r"//[^/@]*@", "//", settings.prefect_api_url),  # no credentials
        ),
    )
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        access_log=False,
        log_config=None,
        log_level=args.log_level,
        lifespan="on",
        **uvicorn_limits(settings),
    )


if __name__ == "__main__":
    main()
