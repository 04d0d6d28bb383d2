"""One run at a time works on a model: its one slot in Prefect's global concurrency limits, leased.

The flow's own thread takes, renews and releases the leases on the flow's client while the
models' tasks work (one lease for every free model, one API call); a task confirms its model's
lease just before it uploads.
A run whose process is killed renews nothing: Prefect's server frees its models once their
leases expire (`prefect server start` and Prefect Cloud reclaim expired leases).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from dataclasses import dataclass, field
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.exceptions import ObjectAlreadyExists, PrefectHTTPStatusError
from prefect.runtime import flow_run

from blocks import RoundInfo
from model.names import model_limit_name
from model.readable import utc_time

from .settings import flow_settings

LOCKED, GONE = 423, 410  # the server's answers: every slot taken; no such lease (expired)
RENEW_EVERY = 1 / 3  # of the lease's duration: two renewals may fail before the lease ends


class RoundClosed(RuntimeError):
    """The round closed (or is about to) before this model's upload: nothing was uploaded."""


class LeaseLost(RuntimeError):
    """The model's lease expired before its upload: another run may hold the model now."""


def close_margin() -> dt.timedelta:
    """No upload starts closer than this to the round's close."""
    return dt.timedelta(seconds=flow_settings().close_margin_seconds)


def upload_deadline(round_info: RoundInfo) -> dt.datetime:
    """The last moment an upload of this round may start."""
    return round_info.close_time - close_margin()


def too_late(round_info: RoundInfo) -> RoundClosed:
    """The error of a run that reached an upload within the close margin."""
    return RoundClosed(
        f"round {round_info.number} closes at {utc_time(round_info.close_time)}: "
        "too late to upload, nothing was sent"
    )


def ensure_model_limits(model_names: list[str]) -> None:
    """One global concurrency limit with one slot per model (made once, kept afterwards)."""
    wanted = dict.fromkeys(model_limit_name(m) for m in model_names)
    with get_client(sync_client=True) as client:
        existing: dict[str, int] = {}
        page, offset = 200, 0
        while True:  # one read for a round's models, not one per model
            limits = client.read_global_concurrency_limits(limit=page, offset=offset)
            existing.update((limit.name, limit.limit) for limit in limits)
            if len(limits) < page:
                break
            offset += page
        for name in wanted:
            if existing.get(name) != 1:
                # Another run of the round may make it at the same moment: theirs is as good.
                with contextlib.suppress(ObjectAlreadyExists):
                    client.upsert_global_concurrency_limit_by_name(name, limit=1)


@dataclass(frozen=True)
class Lease:
    """A model's lease as its task gets it: the lease's id, and when the flow asked for it."""

    id: UUID
    asked_at: float  # time.monotonic() just before the request: the lease runs from then
    duration: float

    def fresh(self) -> bool:
        """Asked for less than a third of its duration ago: two thirds of it are left, at
        least, whatever the flow has renewed since."""
        return time.monotonic() - self.asked_at < self.duration * RENEW_EVERY


def confirm_lease(lease: Lease, model_name: str) -> None:
    """Right before the model's upload, make sure two thirds of its lease are left, at least:
    a fresh lease has them, an older one is renewed; LeaseLost if it has expired.

    A lease the flow could not renew in time may have gone to another run, which could then
    upload too: this run must not.
    """
    if lease.fresh():
        return
    with get_client(sync_client=True) as client:  # the task's own client, from its context
        try:
            client.renew_concurrency_lease(lease.id, lease.duration)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != GONE:
                raise
            raise LeaseLost(
                f"{model_name}'s lease expired before its upload (was this run's process "
                "stalled?): another run may hold the model, this run uploaded nothing"
            ) from exc


@dataclass
class ModelLeases:
    """A run's leases on its models' slots, kept by the flow's thread.

    `take_free` asks once for the models given (a held model answers at once); the flow asks
    again after the server's Retry-After while it waits on the models' tasks, and calls
    `renew_due` between waits.
    """

    client: SyncPrefectClient
    round_info: RoundInfo
    duration: float = field(default_factory=lambda: flow_settings().model_lease_seconds)
    # By model name; models leased together share one Lease, held until the last is released.
    held: dict[str, Lease] = field(default_factory=dict)
    retry_at: float = 0.0  # monotonic: when the models held elsewhere are worth asking for again
    renewed_at: float = field(default_factory=time.monotonic)
    holder: ConcurrencyLeaseHolder | None = None  # shown by Prefect with the limit's slot

    def __post_init__(self) -> None:
        run_id = flow_run.get_id()
        if run_id is not None:
            self.holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id))

    def past_deadline(self) -> bool:
        return dt.datetime.now(dt.UTC) >= upload_deadline(self.round_info)

    def _lease(self, model_names: list[str]) -> Lease | None:
        """One lease on the slots of every named model, or None when another run holds any of
        them (the server takes all or none); `retry_at` then says when to ask again."""
        names = [model_limit_name(m) for m in model_names]
        asked_at = time.monotonic()
        try:
            response = self.client.increment_concurrency_slots_with_lease(
                names, 1, "concurrency", self.duration, holder=self.holder
            )
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code != LOCKED:
                raise
            wait = float(exc.response.headers.get("Retry-After", 1.0))
            self.retry_at = time.monotonic() + min(max(wait, 0.5), self.duration)
            return None
        answer = response.json()
        lease_id = UUID(answer["lease_id"])
        missing = set(names) - {limit["name"] for limit in answer["limits"]}
        if missing:
            # The server leases a missing limit as nothing: then nothing keeps runs apart.
            self.client.release_concurrency_slots_with_lease(lease_id)
            raise RuntimeError(f"no concurrency limit {', '.join(sorted(missing))}: unprotected")
        lease = Lease(lease_id, asked_at, self.duration)
        self.held.update(dict.fromkeys(model_names, lease))
        return lease

    def take_free(self, model_names: list[str]) -> dict[str, Lease]:
        """The leases of the models no other run holds; the others are worth asking for again
        at `retry_at`.

        All of them in one call when every one is free (a round's usual case: one server
        write, not one per model), else one call per model (a held model answers at once).
        Models leased together stay held until the last of them is released.
        """
        if len(model_names) > 1 and self._lease(model_names) is not None:
            return {m: self.held[m] for m in model_names}
        taken: dict[str, Lease] = {}
        for model_name in model_names:
            if (lease := self._lease([model_name])) is not None:
                taken[model_name] = lease
        return taken

    @property
    def renewal_at(self) -> float:
        """Monotonic time of the next renewal: a third of the lease's duration after the last."""
        return self.renewed_at + self.duration * RENEW_EVERY

    def seconds_to_next_call(self, waiting: bool) -> float:
        """How long the flow may wait on its tasks before it must renew or try again."""
        now = time.monotonic()
        due = self.renewal_at
        if waiting:
            deadline = (upload_deadline(self.round_info) - dt.datetime.now(dt.UTC)).total_seconds()
            due = min(due, self.retry_at, now + max(deadline, 0.0))
        return max(due - now, 0.0)

    def renew_due(self) -> None:
        """Renew every lease held, once `renewal_at` has come."""
        if time.monotonic() < self.renewal_at:
            return
        self.renewed_at = time.monotonic()
        for lease in set(self.held.values()):
            models = [m for m, held in self.held.items() if held == lease]
            named = ", ".join(sorted(models))
            try:
                self.client.renew_concurrency_lease(lease.id, self.duration)
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != GONE:
                    get_run_logger().warning("%s: lease not renewed (%s)", named, exc)
                    continue  # tried again at the next renewal; the task confirms before upload
                get_run_logger().error("%s: lease expired; no task of it will upload", named)
                for model_name in models:
                    del self.held[model_name]

    def release(self, model_name: str) -> None:
        """Free the model for other runs (a release that fails ends with the lease)."""
        lease = self.held.pop(model_name, None)
        if lease is None:
            return
        if lease in self.held.values():  # leased with models whose tasks still work
            return  # freed with the last of them
        try:
            self.client.release_concurrency_slots_with_lease(lease.id)
        except Exception as exc:
            get_run_logger().warning(
                "%s: lease not released (%s); the model is free once it expires", model_name, exc
            )

    def release_all(self) -> None:
        for model_name in list(self.held):
            self.release(model_name)

    def held_elsewhere(self, model_name: str) -> RoundClosed:
        """The error of a model another run held until the upload deadline."""
        return RoundClosed(
            f"another run held {model_name} until round {self.round_info.number}'s upload "
            f"deadline ({utc_time(upload_deadline(self.round_info), seconds=True)}): "
            "this run uploaded nothing"
        )
