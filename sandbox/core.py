"""The Sandbox: state of one fake Numerai account plus the HTTP server that serves it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

import pandas as pd
import uvicorn
from graphql import GraphQLError, OperationDefinitionNode, graphql_sync, parse
from graphql.language import FieldNode
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox.data import (
    FILES,
    LIVE_FILES,
    VERSIONS,
    DataSize,
    DataStore,
    TickerStore,
    parse_ticker_dataset,
    resolve_size,
)
from sandbox.schema import SCHEMA, Resolvers, field_resolver, rounds_by_key
from sandbox.scores import RoundScore, daily_scores, score_submission, scoring_days
from sandbox.submissions import SubmissionRefused, check_classic, check_tickers

logger = logging.getLogger(__name__)

FAULT_KINDS = (
    "graphql_error",
    "http_status",
    "hang",
    "slow",
    "truncate_download",
    "corrupt_download",
    "drop_upload",
)
_COMMON = ("http_status", "hang", "slow")
_GRAPHQL_KINDS = ("graphql_error", *_COMMON)
_DOWNLOAD_KINDS = ("truncate_download", "corrupt_download", *_COMMON)
_UPLOAD_KINDS = ("drop_upload", *_COMMON)
FIRST_ROUND = 1000
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_ATTEMPTS = 3


@dataclass
class Fault:
    """A failure to inject; fires `times` times on matching requests, then is consumed.

    `operation` is a GraphQL top-level field name, "download", "upload" or None (any). With
    `until`, it fires on every matching request until the sandbox clock reaches that time.
    """

    kind: str
    operation: str | None = None
    times: int = 1
    status: int = 500
    seconds: float = 30.0
    message: str | None = None
    until: datetime | None = None  # an outage: fires on every match until this sandbox time

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose from {FAULT_KINDS}")


@dataclass
class Round:
    """A tournament round; open while opens <= now < closes."""

    number: int
    opens: datetime
    closes: datetime
    tournament: int = 8


@dataclass
class SubmissionRecord:
    """A submission accepted by create_submission."""

    id: str
    model_id: str
    tournament: int
    round_number: int
    filename: str
    trigger_id: str | None
    inserted_at: datetime
    late: bool
    data: bytes
    source: str | None


@dataclass
class WebhookDelivery:
    """One webhook POST as it ended: the status code of the last attempt, or its error."""

    model_id: str
    url: str
    trigger_id: str
    round_number: int | None
    is_test: bool
    status: int | None = None
    error: str | None = None
    attempts: int = 0

    @property
    def ok(self) -> bool:
        """The receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


class Sandbox:
    """Local stand-in for Numerai's tournament API (GraphQL + presigned file URLs)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        seed: int = 0,
        size: str | DataSize = "tiny",
        data_version: str = "v5.3",
        public_id: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        self.public_id = public_id or secrets.token_hex(16).upper()
        self.secret_key = secret_key or secrets.token_hex(32).upper()
        self.data_version = data_version
        self.versions = tuple(sorted({*VERSIONS, data_version}))
        self.store = DataStore(Path(data_dir), seed, resolve_size(size), self.versions)
        self.tickers = TickerStore(Path(data_dir), seed, resolve_size(size))
        self._lock = threading.RLock()
        self._live_id_sets: dict[tuple[str, int], frozenset[str]] = {}
        self._models: dict[str, str] = {}
        self.model_tournaments: dict[str, int] = {}
        self._rounds: list[Round] = []
        self._subs: list[SubmissionRecord] = []
        self.webhooks: dict[str, str] = {}
        self.triggers: list[tuple[str, str]] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.webhook_timeout = WEBHOOK_TIMEOUT
        self.webhook_attempts = WEBHOOK_ATTEMPTS
        self.webhook_retry_seconds = 0.2
        self._delivered = threading.Condition(self._lock)
        self._files: dict[str, Path] = {}
        self._upload_tokens: dict[str, tuple[str, str]] = {}
        self._pending: dict[tuple[str, str], str] = {}
        self._stored: dict[str, bytes] = {}
        self._uploads: list[tuple[str, str, int]] = []
        self._downloads: list[tuple[str, str, int]] = []
        self._requests: list[tuple[str, str]] = []
        self._faults: list[Fault] = []
        self._metrics: dict[str, dict[str, float]] = {}  # by submission id
        self._clock: tuple[datetime, datetime, float] | None = None  # (simulated, wall, speed)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._stopping = threading.Event()
        self.base_url = ""
        self._resolvers = Resolvers(self)

    # -- account ---------------------------------------------------------------------

    def add_model(self, name: str, tournament: int = 8) -> str:
        """Add a model to the account (idempotent by name); return its id."""
        with self._lock:
            if name not in self._models:
                mid = str(uuid.uuid4())
                self._models[name] = mid
                self.model_tournaments[mid] = tournament
            return self._models[name]

    @property
    def models(self) -> dict[str, str]:
        """Model name -> model id."""
        with self._lock:
            return dict(self._models)

    # -- clock and rounds --------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's time: the simulated clock if one is set, else the wall clock (UTC)."""
        wall = datetime.now(UTC)
        if self._clock is None:
            return wall
        simulated, anchor, speed = self._clock
        return simulated + (wall - anchor) * speed

    def set_clock(self, when: datetime | None, speed: float = 1.0) -> None:
        """Run a simulated clock from `when` (naive = UTC) at `speed` times the wall clock.

        Clients get round and submission times translated to the wall clock (`to_wall`), so an
        unmodified client that compares them with its own clock acts as it would at the
        simulated moment, `speed` times faster. Jump only while no client is mid-run: a close
        time a client read before a jump is stale after it. None returns to the wall clock.
        """
        if when is None:
            self._clock = None
            return
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, not {speed}")
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._clock = (when.astimezone(UTC), datetime.now(UTC), speed)

    def advance(self, delta: timedelta) -> None:
        """Jump the clock forward, keeping its speed."""
        self.set_clock(self.now() + delta, self._clock[2] if self._clock else 1.0)

    def to_wall(self, moment: datetime) -> datetime:
        """A sandbox time as the wall-clock time clients see for it."""
        if self._clock is None:
            return moment
        simulated, anchor, speed = self._clock
        return anchor + (moment - simulated) / speed

    def open_round(
        self,
        number: int | None = None,
        *,
        opens: datetime | None = None,
        closes: datetime | None = None,
        tournament: int = 8,
    ) -> Round:
        """Open a tournament's next round (now until now + 1 h); POST its models' webhooks."""
        with self._lock:
            if number is None:
                latest = self.latest_round(tournament)
                number = latest.number + 1 if latest else FIRST_ROUND
            opens = opens or self.now()
            rnd = Round(number, opens, closes or opens + timedelta(hours=1), tournament)
            self._rounds.append(rnd)
            hooks = [
                (mid, url)
                for mid, url in self.webhooks.items()
                if self.model_tournaments.get(mid) == rnd.tournament
            ]
            logger.info("opened round %s: %s - %s", number, rnd.opens, rnd.closes)
        for mid, url in hooks:
            self._send_webhook(mid, url, self.new_trigger(mid), number, is_test=False)
        return rnd

    def close_round(self, tournament: int | None = None) -> None:
        """Close the latest round of a tournament, or of every tournament (closes = now - 1 s)."""
        with self._lock:
            for t in {r.tournament for r in self._rounds} if tournament is None else {tournament}:
                if (latest := self.latest_round(t)) is not None:
                    latest.closes = min(latest.closes, self.now() - timedelta(seconds=1))

    def latest_round(self, tournament: int = 8) -> Round | None:
        """A tournament's latest round, open or not."""
        with self._lock:
            return next((r for r in reversed(self._rounds) if r.tournament == tournament), None)

    @property
    def current_round(self) -> Round | None:
        """The latest Classic round, open or not."""
        return self.latest_round(8)

    @property
    def rounds(self) -> list[Round]:
        """All rounds, oldest first."""
        with self._lock:
            return list(self._rounds)

    def open_round_at(
        self, when: datetime | None = None, tournament: int | None = None
    ) -> Round | None:
        """The round open at `when` (default now), of one tournament or any, if any."""
        when = when or self.now()
        with self._lock:
            for rnd in reversed(self._rounds):
                if tournament is not None and rnd.tournament != tournament:
                    continue
                if rnd.opens <= when < rnd.closes:
                    return rnd
        return None

    # -- observations ------------------------------------------------------------------

    def submissions(self, model_id: str | None = None) -> list[SubmissionRecord]:
        """Accepted submissions, oldest first."""
        with self._lock:
            return [s for s in self._subs if model_id is None or s.model_id == model_id]

    def model_scores(self, model_id: str) -> list[RoundScore]:
        """The model's daily scores so far, per Classic round it submitted to (its latest
        submission of a round counts), oldest round first."""
        now = self.now()
        with self._lock:
            latest = {s.round_number: s for s in self._subs if s.model_id == model_id}
            rounds = rounds_by_key(self._rounds)
        scores: list[RoundScore] = []
        for number, sub in sorted(latest.items()):
            rnd = rounds.get((sub.tournament, number))
            if sub.tournament != 8 or rnd is None or not scoring_days(rnd.closes, now):
                continue
            if sub.id not in self._metrics:
                target = self.store.live_target(self.data_version, number)
                example = pd.read_parquet(
                    self.store.path(self.data_version, "live_example_preds.parquet", number)
                )["prediction"].reindex(target.index)
                self._metrics[sub.id] = score_submission(sub.data, target, example)
            scores += daily_scores(number, rnd.closes, now, self._metrics[sub.id])
        return scores

    @property
    def uploads(self) -> list[tuple[str, str, int]]:
        """(token, filename, nbytes) of every PUT received (dropped ones included)."""
        with self._lock:
            return list(self._uploads)

    @property
    def downloads(self) -> list[tuple[str, str, int]]:
        """(token, file path, range start) of every file GET received."""
        with self._lock:
            return list(self._downloads)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(operation, "ok" | "err") of every GraphQL call."""
        with self._lock:
            return list(self._requests)

    # -- faults -----------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self._faults.append(replace(fault))

    def clear_faults(self) -> None:
        """Remove all queued faults."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, kinds: tuple[str, ...], ops: set[str]) -> Fault | None:
        now = self.now()
        with self._lock:
            self._faults = [f for f in self._faults if f.until is None or now < f.until]
            for fault in self._faults:
                if fault.kind in kinds and (fault.operation is None or fault.operation in ops):
                    if fault.until is None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    logger.info("firing fault %s on %s", fault.kind, sorted(ops))
                    return fault
        return None

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stopping.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.05, max(0.0, end - time.monotonic())))

    async def _common_fault(self, fault: Fault | None) -> Response | None:
        """Apply hang/slow/http_status; a Response means: answer with it now."""
        if fault is None:
            return None
        if fault.kind in ("hang", "slow"):
            await self._sleep(fault.seconds)
            if fault.kind == "hang":
                return PlainTextResponse("sandbox: upstream timed out", status_code=504)
        if fault.kind == "http_status":
            return PlainTextResponse(f"sandbox fault: HTTP {fault.status}", fault.status)
        return None

    # -- operations used by the resolvers ---------------------------------------------

    def round_for_data(self, tournament: int, round_number: int | None) -> int:
        """The round whose data a request means: the given one, which must exist, or the latest.

        Numerai serves data only for rounds it has opened; asking for another is an error.
        """
        with self._lock:
            numbers = {r.number for r in self._rounds if r.tournament == tournament}
            latest = self.latest_round(tournament)
        if round_number is None:
            if latest is None:
                raise GraphQLError(f"No round of tournament {tournament} has opened yet")
            return latest.number
        if round_number not in numbers:
            raise GraphQLError(f"Round {round_number} of tournament {tournament} does not exist")
        return round_number

    def presign(self, filename: str, round_number: int | None) -> str:
        """Presigned GET URL for `version/file` of a round (default: the latest round)."""
        ticker_file = parse_ticker_dataset(filename)
        if ticker_file is not None:
            tournament, _, name = ticker_file
            number = self.round_for_data(tournament, round_number)
            path = self.tickers.path(tournament, name, number)
        else:
            version, _, name = filename.partition("/")
            if version not in self.versions or name not in FILES:
                raise GraphQLError(f"Dataset not found: {filename}")
            if name in LIVE_FILES or round_number is not None:
                number = self.round_for_data(8, round_number)
            else:  # the same for every round: served before the first round opens too
                number = FIRST_ROUND
            path = self.store.path(version, name, number)
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._files[token] = path
        return f"{self.base_url}/files/{token}"

    def _live_ids(self, round_number: int) -> frozenset[str]:
        """The round's Classic live ids, read once per round and data version (Numerai keeps
        them; reading the file for each upload made the stand-in the slowest part of a round
        of many models)."""
        key = (self.data_version, round_number)
        with self._lock:
            ids = self._live_id_sets.get(key)
        if ids is None:
            live = self.store.path(self.data_version, "live.parquet", round_number)
            ids = frozenset(pd.read_parquet(live, columns=["era"]).index.astype(str).tolist())
            with self._lock:
                self._live_id_sets[key] = ids
        return ids

    def check_upload(self, data: bytes, tournament: int, round_number: int) -> None:
        """Refuse a file that Numerai would refuse for this round (GraphQL error naming why)."""
        try:
            if tournament == 8:
                check_classic(data, self._live_ids(round_number))
            else:
                name = "live.parquet" if tournament == 11 else "live_universe.parquet"
                universe = pd.read_parquet(self.tickers.path(tournament, name, round_number))
                check_tickers(data, tournament, universe)
        except SubmissionRefused as exc:
            raise GraphQLError(str(exc)) from exc

    def upload_auth(self, model_id: str, filename: str) -> dict[str, str]:
        """Presigned PUT URL; the latest auth per (model, filename) is what create uses."""
        name = os.path.basename(filename)
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._upload_tokens[token] = (model_id, name)
            self._pending[(model_id, name)] = token
        return {"filename": name, "url": f"{self.base_url}/uploads/{token}"}

    def record_submission(
        self,
        model_id: str,
        filename: str,
        tournament: int,
        trigger_id: str | None,
        source: str | None,
    ) -> SubmissionRecord:
        """Turn the last upload for (model, filename) into a submission."""
        now = self.now()
        with self._lock:
            model_tournament = self.model_tournaments.get(model_id, 8)
            if tournament != model_tournament:
                raise GraphQLError(
                    f"Model {model_id} is in tournament {model_tournament}, not {tournament}"
                )
            token = self._pending.get((model_id, filename))
            if token is None or token not in self._stored:
                raise GraphQLError(f"File not found: {filename}")
            rnd = self.open_round_at(now, tournament)
            late = rnd is None
            if rnd is None:
                started = [r for r in self._rounds if r.opens <= now and r.tournament == tournament]
                if not started:
                    raise GraphQLError("Current round not open for submissions")
                rnd = started[-1]
            self.check_upload(self._stored[token], tournament, rnd.number)
            del self._pending[(model_id, filename)]
            rec = SubmissionRecord(
                id=str(uuid.uuid4()),
                model_id=model_id,
                tournament=tournament,
                round_number=rnd.number,
                filename=filename,
                trigger_id=trigger_id,
                inserted_at=now,
                late=late,
                data=self._stored.pop(token),
                source=source,
            )
            self._subs.append(rec)
        logger.info("submission %s for model %s round %s", rec.id, model_id, rnd.number)
        return rec

    def set_webhook(self, model_id: str, url: str | None) -> None:
        """Store or remove a model's submission webhook."""
        with self._lock:
            if url is None:
                self.webhooks.pop(model_id, None)
            else:
                self.webhooks[model_id] = url

    def new_trigger(self, model_id: str) -> str:
        """Record a webhook trigger for a model and return its id."""
        trigger_id = str(uuid.uuid4())
        with self._lock:
            self.triggers.append((model_id, trigger_id))
        return trigger_id

    def trigger_webhook(self, model_id: str) -> str:
        """A test trigger (triggerModelWebhook): POST isTest to the model's webhook, if any."""
        trigger_id = self.new_trigger(model_id)
        with self._lock:
            url = self.webhooks.get(model_id)
            latest = self.latest_round(self.model_tournaments.get(model_id, 8))
            current = latest.number if latest else None
        if url is None:
            logger.info("test trigger %s: model %s has no webhook", trigger_id, model_id)
        else:
            self._send_webhook(model_id, url, trigger_id, current, is_test=True)
        return trigger_id

    def _send_webhook(
        self, model_id: str, url: str, trigger_id: str, round_number: int | None, *, is_test: bool
    ) -> None:
        """POST in a background thread; the caller (a round opening, a resolver) never waits."""
        delivery = WebhookDelivery(model_id, url, trigger_id, round_number, is_test)
        threading.Thread(
            target=self._deliver, args=(delivery,), daemon=True, name="sandbox-webhook"
        ).start()

    def _deliver(self, delivery: WebhookDelivery) -> None:
        body = json.dumps(
            {
                "triggerId": delivery.trigger_id,
                "roundNumber": delivery.round_number,
                "dataVersion": self.data_version,
                "isTest": delivery.is_test,
            }
        ).encode()
        # urllib, not httpx: httpx logs every URL at INFO, and a webhook URL holds a secret.
        request = urllib.request.Request(  # noqa: S310 -- the scheme is checked below
            delivery.url, body, {"content-type": "application/json"}, method="POST"
        )
        attempts = self.webhook_attempts
        if request.type not in ("http", "https"):
            delivery.error, attempts = f"not an http(s) URL: scheme {request.type!r}", 0
        for attempt in range(1, attempts + 1):
            delivery.attempts = attempt
            try:
                with urllib.request.urlopen(request, timeout=self.webhook_timeout) as response:  # noqa: S310
                    delivery.status, delivery.error = response.status, None
            except urllib.error.HTTPError as exc:
                delivery.status, delivery.error = exc.code, None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                delivery.status, delivery.error = None, f"{type(reason).__name__}: {reason}"
            if delivery.ok or attempt == attempts:
                break
            if self._stopping.wait(self.webhook_retry_seconds * 2 ** (attempt - 1)):
                break
        level = logging.INFO if delivery.ok else logging.WARNING
        logger.log(
            level,
            "webhook for model %s trigger %s: %s after %s attempt(s)",
            *(delivery.model_id, delivery.trigger_id),
            *(delivery.status or delivery.error, delivery.attempts),
        )
        with self._delivered:
            self.webhook_deliveries.append(delivery)
            self._delivered.notify_all()

    def wait_for_deliveries(self, n: int, timeout: float = 10.0) -> list[WebhookDelivery]:
        """Block until at least `n` webhook deliveries have ended; return them all."""
        with self._delivered:
            if not self._delivered.wait_for(lambda: len(self.webhook_deliveries) >= n, timeout):
                raise TimeoutError(
                    f"{len(self.webhook_deliveries)} of {n} webhook deliveries ended "
                    f"within {timeout} s"
                )
            return list(self.webhook_deliveries)

    # -- HTTP --------------------------------------------------------------------------

    def _log(self, name: str, ok: bool) -> None:
        with self._lock:
            self._requests.append((name, "ok" if ok else "err"))

    async def _graphql(self, request: Request) -> Response:
        try:
            body = await request.json()
            query = body["query"]
        except (ValueError, KeyError, TypeError):
            self._log("?", False)
            return JSONResponse({"errors": [{"message": "Expected a JSON body with 'query'"}]}, 400)
        ops = _top_fields(query)
        name = ",".join(sorted(ops)) or "?"
        fault = self._take_fault(_GRAPHQL_KINDS, ops)
        if fault is not None and fault.kind == "graphql_error":
            self._log(name, False)
            msg = fault.message or f"sandbox fault: error in {name}"
            return JSONResponse({"errors": [{"message": msg}], "data": None})
        if (resp := await self._common_fault(fault)) is not None:
            self._log(name, False)
            return resp
        result = await run_in_threadpool(
            graphql_sync,
            SCHEMA,
            query,
            self._resolvers,
            {"authorization": request.headers.get("authorization")},
            body.get("variables"),
            body.get("operationName"),
            field_resolver,
        )
        self._log(name, not result.errors)
        return JSONResponse(result.formatted)

    async def _download(self, request: Request) -> Response:
        token = request.path_params["token"]
        with self._lock:
            path = self._files.get(token)
        if path is None:
            return PlainTextResponse("AccessDenied", 403)
        fault = self._take_fault(_DOWNLOAD_KINDS, {"download"})
        if (resp := await self._common_fault(fault)) is not None:
            return resp
        data = await run_in_threadpool(path.read_bytes)
        size, start, end = len(data), 0, len(data) - 1
        headers = {"accept-ranges": "bytes"}
        status = 200
        if rng := request.headers.get("range"):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if not m or int(m[1]) >= size:
                return PlainTextResponse(
                    "InvalidRange", 416, headers={"content-range": f"bytes */{size}"}
                )
            start, end = int(m[1]), min(int(m[2] or size - 1), size - 1)
            status = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        body = data[start : end + 1]
        with self._lock:
            self._downloads.append((token, str(path), start))
        kind = fault.kind if fault else None
        if kind == "corrupt_download":
            body = os.urandom(len(body))
        if kind == "truncate_download":
            return _Truncated(body, status, headers, "application/octet-stream")
        return Response(body, status, headers, "application/octet-stream")

    async def _upload(self, request: Request) -> Response:
        token = request.path_params["token"]
        with self._lock:
            entry = self._upload_tokens.get(token)
        if entry is None:
            return PlainTextResponse("AccessDenied", 403)
        fault = self._take_fault(_UPLOAD_KINDS, {"upload"})
        if (resp := await self._common_fault(fault)) is not None:
            return resp
        data = await request.body()
        with self._lock:
            self._uploads.append((token, entry[1], len(data)))
            if fault is None or fault.kind != "drop_upload":
                self._stored[token] = data
        return Response(status_code=200)

    def app(self) -> Starlette:
        """The ASGI application."""
        return Starlette(
            routes=[
                Route("/", self._graphql, methods=["POST"]),
                Route("/files/{token}", self._download, methods=["GET"]),
                Route("/uploads/{token}", self._upload, methods=["PUT"]),
            ]
        )

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; return the base URL."""
        if self._server is not None:
            return self.base_url
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{shown}:{bound}"
        config = uvicorn.Config(
            self.app(),
            host=host,
            port=bound,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._stopping.clear()
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox"
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        logger.info("sandbox serving at %s", self.base_url)
        return self.base_url

    @property
    def api_url(self) -> str:
        """The GraphQL endpoint (what numerapi's API_TOURNAMENT_URL must be)."""
        if not self.base_url:
            raise RuntimeError("sandbox not started")
        return self.base_url + "/"

    def stop(self) -> None:
        """Stop the server; pending hangs are released."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._thread = None

    @contextlib.contextmanager
    def use_as_numerai(self) -> Iterator[Sandbox]:
        """Point numerapi at this sandbox (numerapi.base_api.API_TOURNAMENT_URL)."""
        from numerapi import base_api

        old = base_api.API_TOURNAMENT_URL
        base_api.API_TOURNAMENT_URL = self.api_url
        try:
            yield self
        finally:
            base_api.API_TOURNAMENT_URL = old

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Sandbox(url={self.base_url!r}, models={list(self._models)})"


class _Truncated(Response):
    """Declares the full Content-Length, sends half the body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 2],
                "more_body": True,
            }
        )


def _top_fields(query: str) -> set[str]:
    """Top-level field names of every operation in a query ({} if it does not parse)."""
    try:
        doc = parse(query)
    except GraphQLError:
        return set()
    return {
        sel.name.value
        for d in doc.definitions
        if isinstance(d, OperationDefinitionNode)
        for sel in d.selection_set.selections
        if isinstance(sel, FieldNode)
    }
