"""The one adapter between this project and numerapi.

numerapi sends every GraphQL call without a timeout and turns HTTP errors into an empty dict
(the caller then dies with ``KeyError('data')``). ``NumeraiAPI`` keeps numerapi's queries and
replaces only the transport: one POST with a timeout, to a URL that can be pointed at the sandbox,
raising an exception that says what went wrong. Its upload takes the trigger id as an argument
(numerapi reads it from the process's environment) and checks the answer to the file's PUT.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numerapi
import pandas as pd
import requests
from numerapi import base_api

CLASSIC = 8
SIGNALS = 11

# Phrases of GraphQL errors that no retry can fix.
_PERMANENT_PHRASES = ("invalid credentials", "api keys required", "not authorized", "permission")


class NumeraiError(Exception):
    """A call to Numerai's API failed."""


class NumeraiUnavailable(NumeraiError):
    """Numerai's API timed out, refused the connection or answered 5xx/429: worth a retry."""


class NumeraiQueryError(NumeraiError, ValueError):
    """Numerai's API answered with GraphQL errors (a ValueError, as numerapi raises)."""


class NumeraiAuthError(NumeraiQueryError):
    """The API keys were rejected: retrying will not help."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may succeed when repeated."""
    if isinstance(exc, NumeraiAuthError):
        return False
    if isinstance(exc, NumeraiUnavailable | NumeraiQueryError):
        return True
    return isinstance(exc, requests.ConnectionError | requests.Timeout)


@dataclass(frozen=True)
class RoundInfo:
    """A tournament round as the API reports it."""

    number: int
    open_time: dt.datetime
    close_time: dt.datetime

    def is_open(self, now: dt.datetime | None = None) -> bool:
        """Whether submissions are accepted at ``now`` (UTC)."""
        now = now or dt.datetime.now(dt.UTC)
        return self.open_time <= now < self.close_time


@dataclass(frozen=True)
class SubmissionInfo:
    """One submission of a model, as ``submissions(modelId)`` lists it."""

    id: str
    filename: str
    round_number: int | None
    trigger_id: str | None
    inserted_at: dt.datetime | None


@dataclass(frozen=True)
class RoundScores:
    """A model's scores of one round as Numerai reports them on its latest scoring day."""

    round_number: int
    corr: float | None
    mmc: float | None
    day: int | None
    final: bool


# Numerai's display names of a Classic round's scores, the canonical one first.
CORR_NAMES = ("canon_corr", "v2_corr20", "corr")
MMC_NAMES = ("canon_mmc", "mmc")


class NumeraiClient(Protocol):
    """The handful of Numerai calls the pipeline makes."""

    def list_datasets(self, round_num: int | None = None) -> list[str]: ...

    def download_dataset(
        self, filename: str, dest_path: str | None = None, round_num: int | None = None
    ) -> str: ...

    def current_round(self, tournament: int = CLASSIC) -> RoundInfo | None: ...

    def get_models(self, tournament: int | None = None) -> dict[str, str]: ...

    def upload_predictions(
        self,
        file_path: str = ...,
        model_id: str | None = None,
        df: pd.DataFrame | None = None,
        *,
        trigger_id: str | None = None,
    ) -> str: ...

    def model_submissions(self, model_id: str) -> list[SubmissionInfo]: ...

    def round_scores(self, model_id: str, last_rounds: int) -> dict[int, RoundScores]: ...


_CURRENT_ROUND_QUERY = """
query($tournament: Int!) {
  rounds(tournament: $tournament, number: 0) { number openTime closeStakingTime }
}"""

# numerapi's submission_ids() without the round and trigger id numerai-cli verifies with.
_SUBMISSIONS_QUERY = """
query($modelId: String) {
  submissions(modelId: $modelId) {
    id filename insertedAt triggerId round { number tournament }
  }
}"""

# numerapi's create mutations, with the trigger id an argument: numerapi reads it from the
# process's TRIGGER_ID, which uploads running at once would share.
_CREATE_SUBMISSION = """
mutation($filename: String!, $tournament: Int!, $modelId: String, $triggerId: String,
         $dataDatestamp: Int) {
  create_submission(filename: $filename, tournament: $tournament, modelId: $modelId,
                    triggerId: $triggerId, source: "numerapi", dataDatestamp: $dataDatestamp) {
    id
  }
}"""
_CREATE_SIGNALS_SUBMISSION = """
mutation($filename: String!, $modelId: String, $triggerId: String, $dataDatestamp: Int) {
  createSignalsSubmission(filename: $filename, modelId: $modelId, triggerId: $triggerId,
                          source: "numerapi", dataDatestamp: $dataDatestamp) { id }
}"""


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise NumeraiQueryError(f"round time without a zone: {value!r}")
    return parsed.astimezone(dt.UTC)


class NumeraiAPI(numerapi.NumerAPI):
    """numerapi's client with a timeout on every call and errors that say what happened."""

    def __init__(
        self,
        public_id: str | None = None,
        secret_key: str | None = None,
        *,
        api_url: str | None = None,
        timeout: float = 30.0,
        tournament: int = CLASSIC,
        progress_bars: bool | None = None,
    ) -> None:
        # numerapi's download bars (tqdm) on a terminal only: redrawn in a log they are noise.
        bars = sys.stderr.isatty() if progress_bars is None else progress_bars
        super().__init__(public_id, secret_key, verbosity="WARNING", show_progress_bars=bars)
        self.api_url = api_url
        self.timeout = timeout
        self.tournament_id = tournament
        self._session = requests.Session()

    def raw_query(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        authorization: bool = False,
        **_retry_options: Any,
    ) -> dict[str, Any]:
        """One GraphQL POST with a timeout; retries are the caller's policy, not numerapi's."""
        headers = {"Content-type": "application/json", "Accept": "application/json"}
        if authorization:
            if not self.token:
                raise NumeraiAuthError("API keys required for this action")
            public_id, secret_key = self.token
            headers["Authorization"] = f"Token {public_id}${secret_key}"
        url = self.api_url or base_api.API_TOURNAMENT_URL
        body = {"query": query, "variables": variables}
        response = self._send("POST", url, json=body, headers=headers)
        try:
            result: dict[str, Any] = response.json()
        except ValueError as exc:
            raise NumeraiUnavailable(f"{url} answered with something that is not JSON") from exc
        errors = result.get("errors")
        if errors:
            message = "; ".join(str(e.get("message", e)) for e in errors if isinstance(e, dict))
            message = message or str(errors)
            if any(phrase in message.lower() for phrase in _PERMANENT_PHRASES):
                raise NumeraiAuthError(message)
            raise NumeraiQueryError(message)
        if "data" not in result:
            raise NumeraiUnavailable(f"{url} answered without data")
        return result

    def _send(
        self,
        method: str,
        url: str,
        timeout: float | tuple[float, float] | None = None,
        **options: Any,
    ) -> requests.Response:
        """One HTTP request with a timeout (this client's unless given); an error that says
        what happened."""
        shown = url.split("?", 1)[0]  # a presigned URL's query carries its signature
        timeout = timeout or (min(10.0, self.timeout), self.timeout)
        try:
            response = self._session.request(method, url, timeout=timeout, **options)
        except requests.Timeout as exc:
            waited = timeout[1] if isinstance(timeout, tuple) else timeout
            raise NumeraiUnavailable(f"no answer from {shown} within {waited:g} s") from exc
        except requests.ConnectionError as exc:
            raise NumeraiUnavailable(f"cannot connect to {shown}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise NumeraiUnavailable(f"{shown} answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise NumeraiQueryError(f"{shown} answered HTTP {response.status_code}")
        return response

    def upload_predictions(
        self,
        file_path: str = "predictions.csv",
        model_id: str | None = None,
        df: pd.DataFrame | None = None,
        data_datestamp: int | None = None,
        timeout: float | tuple[float, float] | None = None,
        *,
        trigger_id: str | None = None,
    ) -> str:
        """numerapi's upload by this client's tournament's route (auth query, PUT of the CSV,
        create mutation), carrying `trigger_id`; returns the submission id.

        Unlike numerapi's, the trigger id is an argument, not the process's TRIGGER_ID (so
        uploads may run at once), and a refused PUT raises instead of going on to create a
        submission whose file never arrived.
        """
        data = Path(file_path).read_bytes() if df is None else df.to_csv(index=False).encode()
        signals = self.tournament_id == SIGNALS
        endpoint = "submissionUploadSignalsAuth" if signals else "submission_upload_auth"
        auth = self._upload_auth(endpoint, file_path, self.tournament_id, model_id)  # type: ignore[arg-type]
        # numerapi passes the Numerai Compute id along when there is one.
        compute_id = os.getenv("NUMERAI_COMPUTE_ID")
        headers = {"x_compute_id": compute_id} if compute_id else {}
        self._send("PUT", auth["url"], data=data, headers=headers, timeout=timeout)
        arguments: dict[str, Any] = {
            "filename": auth["filename"],
            "modelId": model_id,
            "triggerId": trigger_id,
            "dataDatestamp": data_datestamp,
        }
        if signals:
            created = self.raw_query(_CREATE_SIGNALS_SUBMISSION, arguments, authorization=True)
            return str(created["data"]["createSignalsSubmission"]["id"])
        arguments["tournament"] = self.tournament_id
        created = self.raw_query(_CREATE_SUBMISSION, arguments, authorization=True)
        return str(created["data"]["create_submission"]["id"])

    def current_round(self, tournament: int = CLASSIC) -> RoundInfo | None:
        """The current round, or None when no round is open for submissions."""
        try:
            rounds = self.raw_query(_CURRENT_ROUND_QUERY, {"tournament": tournament})["data"][
                "rounds"
            ]
        except NumeraiQueryError as exc:
            if "not open" in str(exc).lower():
                return None
            raise
        if not rounds or rounds[0] is None:
            return None
        raw = rounds[0]
        return RoundInfo(
            number=int(raw["number"]),
            open_time=_parse_time(raw["openTime"]),
            close_time=_parse_time(raw["closeStakingTime"]),
        )

    def model_submissions(self, model_id: str) -> list[SubmissionInfo]:
        """Every submission of a model, with its round and trigger id."""
        data = self.raw_query(_SUBMISSIONS_QUERY, {"modelId": model_id}, authorization=True)
        result = []
        for item in data["data"]["submissions"] or []:
            round_ = item.get("round") or {}
            inserted = item.get("insertedAt")
            result.append(
                SubmissionInfo(
                    id=str(item["id"]),
                    filename=str(item.get("filename") or ""),
                    round_number=round_.get("number"),
                    trigger_id=item.get("triggerId"),
                    inserted_at=_parse_time(inserted) if inserted else None,
                )
            )
        return result

    def round_scores(self, model_id: str, last_rounds: int) -> dict[int, RoundScores]:
        """The model's scores of its latest scored rounds, by round (numerapi submission_scores).

        Numerai lists a score per metric and scoring day; the latest day of each metric counts.
        """
        latest: dict[tuple[int, str], dict[str, Any]] = {}
        for score in self.submission_scores(model_id, last_n_rounds=last_rounds):
            key = (int(score["roundNumber"]), str(score.get("displayName")))
            if key not in latest or (score.get("day") or 0) >= (latest[key].get("day") or 0):
                latest[key] = score
        result: dict[int, RoundScores] = {}
        for number in sorted({n for n, _ in latest}):
            days = [s for (n, _), s in latest.items() if n == number]
            result[number] = RoundScores(
                round_number=number,
                corr=_first_value(latest, number, CORR_NAMES),
                mmc=_first_value(latest, number, MMC_NAMES),
                day=max((int(s.get("day") or 0) for s in days), default=None),
                final=all(bool(s.get("resolved")) for s in days),
            )
        return {n: s for n, s in result.items() if s.corr is not None or s.mmc is not None}


def _first_value(
    latest: dict[tuple[int, str], dict[str, Any]], number: int, names: tuple[str, ...]
) -> float | None:
    """The value of the first of `names` that round `number` has a score of."""
    for name in names:
        raw = latest.get((number, name), {}).get("value")
        if raw is not None:
            return float(raw)
    return None
