"""GraphQL schema (SDL) and resolvers for the operations numerapi 3.1.1 sends."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, GraphQLResolveInfo, build_schema

from sandbox.data import VERSIONS, dataset_names, ticker_dataset_names
from sandbox.scores import RoundScore

if TYPE_CHECKING:
    from sandbox.core import Round, Sandbox, SubmissionRecord

SDL = """
scalar DateTime

enum RoundStatus { UPCOMING OPEN RESOLVING RESOLVED }

type Query {
  listDatasets(round: Int, tournament: Int): [String!]!
  dataset(filename: String!, round: Int, tournament: Int): String
  rounds(tournament: Int, number: Int, target: String, status: RoundStatus, limit: Int): [Round]
  account: Account
  submission_upload_auth(filename: String!, tournament: Int!, modelId: String): UploadAuth
  submissions(modelId: String): [Submission!]
  submissionUploadSignalsAuth(filename: String!, tournament: Int!, modelId: String): UploadAuth
  submissionScores(modelId: ID!, displayName: String, version: String, day: Int,
                   resolved: Boolean, tournament: Int, lastNRounds: Int,
                   distinctOnRound: Boolean): [SubmissionScore!]!
  v2RoundModelPerformances(modelId: String!, tournament: Int!): [RoundModelPerformance!]!
}

type Mutation {
  create_submission(filename: String!, tournament: Int!, modelId: String, triggerId: String,
                    source: String, dataDatestamp: Int): Submission
  createSignalsSubmission(filename: String!, modelId: String, triggerId: String, source: String,
                          dataDatestamp: Int): Submission
  setSubmissionWebhook(modelId: String!, newSubmissionWebhook: String): String
  triggerModelWebhook(modelId: String!): String
}

type Round {
  id: ID!
  tournament: Int!
  number: Int!
  target: String
  openTime: DateTime!
  closeTime: DateTime!
  closeStakingTime: DateTime!
  scoreTime: DateTime
  resolveTime: DateTime
  resolvedGeneral: Boolean
  resolvedStaking: Boolean
  payoutFactor: String
  stakeThreshold: String
  dataDatestamp: Int
  roundScoreConfigs: [RoundScoreConfig!]!
}

type RoundScoreConfig {
  id: ID
  scoreConfigId: ID
  roundNumberStart: Int
  roundNumberEnd: Int
  name: String
  version: String
  displayName: String
  totalScoreDays: Int
  returnsLagDays: Int
  dataDelayDays: Int
  universe: String
  isCanonScore: Boolean
  isPayout: Boolean
  scoringStart: DateTime
  scoringEnd: DateTime
  minMultiplier: String
  maxMultiplier: String
  defaultMultiplier: String
  clipThreshold: String
  stakeThreshold: String
  payoutFactor: String
}

type Account {
  id: ID!
  username: String!
  email: String
  walletAddress: String
  availableNmr: String
  mfaEnabled: Boolean
  status: String
  insertedAt: DateTime
  models: [Model!]!
  apiTokens: [ApiToken!]!
}

type Model {
  id: String!
  name: String!
  tournament: Int!
  submissionWebhook: String
  submissions: [Submission!]!
  v2Stake: V2Stake
}

type V2Stake { status: String txHash: String }

type ApiToken { name: String public_id: String scopes: [String!] }

type UploadAuth { filename: String! url: String! }

type Submission {
  id: ID!
  filename: String
  insertedAt: DateTime
  round: Round
  triggerId: String
  source: String
  late: Boolean
  firstEffectiveDate: DateTime
}

type SubmissionScore {
  roundId: ID
  submissionId: ID
  roundNumber: Int!
  roundResolveTime: DateTime
  roundScoreTime: DateTime
  roundCloseStakingTime: DateTime
  value: Float
  percentile: Float
  displayName: String!
  version: String
  date: DateTime
  day: Int
  resolveDate: DateTime
  resolved: Boolean
}

type PayoutMultiplier {
  id: ID
  scoreConfigId: ID
  name: String
  version: String
  displayName: String
  multiplier: String
}

type RoundModelPerformance {
  atRisk: String
  payoutMultipliers: [PayoutMultiplier!]
  roundPayoutFactor: String
  roundNumber: Int!
  roundOpenTime: DateTime
  roundResolveTime: DateTime
  roundResolved: Boolean
  roundTarget: String
  submissionScores: [DailyScore!]
  intraRoundSubmissionScores: [DailyScore!]
}

type DailyScore {
  date: DateTime
  day: Int
  displayName: String!
  payoutPending: String
  payoutSettled: String
  percentile: Float
  value: Float
}
"""

SCHEMA = build_schema(SDL)
SCORE_VERSION = "1"  # the one score version the sandbox reports


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC with an explicit +00:00 zone."""
    return dt.astimezone(UTC).isoformat()


def round_dict(r: Round, to_wall: Callable[[datetime], datetime]) -> dict[str, Any]:
    """A Round as the GraphQL Round type, its times as clients' clocks see them."""
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{r.tournament}-{r.number}")),
        "tournament": r.tournament,
        "number": r.number,
        "target": None,
        "openTime": iso(to_wall(r.opens)),
        "closeTime": iso(to_wall(r.closes)),
        "closeStakingTime": iso(to_wall(r.closes)),
        "scoreTime": iso(to_wall(r.closes) + timedelta(days=3)),
        "resolveTime": iso(to_wall(r.closes) + timedelta(days=31)),
        "resolvedGeneral": False,
        "resolvedStaking": False,
        "payoutFactor": "1.0",
        "stakeThreshold": "0",
        "dataDatestamp": int(r.opens.strftime("%Y%m%d")),
        "roundScoreConfigs": [],
    }


def rounds_by_key(rounds: list[Round]) -> dict[tuple[int, int], Round]:
    """Rounds by (tournament, number): tournaments number their rounds independently."""
    return {(r.tournament, r.number): r for r in rounds}


def submission_dict(
    s: SubmissionRecord,
    rounds: dict[tuple[int, int], Round],
    to_wall: Callable[[datetime], datetime],
) -> dict[str, Any]:
    """A stored submission as the GraphQL Submission type."""
    rnd = rounds.get((s.tournament, s.round_number))
    return {
        "id": s.id,
        "filename": s.filename,
        "insertedAt": iso(to_wall(s.inserted_at)),
        "round": round_dict(rnd, to_wall) if rnd else None,
        "triggerId": s.trigger_id,
        "source": s.source,
        "late": s.late,
        "firstEffectiveDate": iso(to_wall(s.inserted_at)),
    }


def _score_dict(s: RoundScore, r: Round, to_wall: Callable[[datetime], datetime]) -> dict[str, Any]:
    """One daily score as the GraphQL SubmissionScore type."""
    round_ = round_dict(r, to_wall)
    return {
        "roundId": round_["id"],
        "submissionId": None,
        "roundNumber": s.round_number,
        "roundResolveTime": round_["resolveTime"],
        "roundScoreTime": round_["scoreTime"],
        "roundCloseStakingTime": round_["closeStakingTime"],
        "value": s.value,
        "percentile": None,
        "displayName": s.display_name,
        "version": SCORE_VERSION,
        "date": iso(to_wall(s.date)),
        "day": s.day,
        "resolveDate": round_["resolveTime"],
        "resolved": s.resolved,
    }


def field_resolver(*pos: Any, **args: Any) -> Any:
    """Like graphql-core's default resolver, but arguments may be named `source`/`info`."""
    parent, info = pos
    value = (
        parent.get(info.field_name)
        if isinstance(parent, dict)
        else getattr(parent, info.field_name, None)
    )
    return value(info, **args) if callable(value) else value


class Resolvers:
    """Root value: graphql-core's default resolver calls these methods by field name."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    # -- helpers ----------------------------------------------------------------

    def _auth(self, info: GraphQLResolveInfo) -> None:
        if info.context.get("authorization") != f"Token {self.sb.public_id}${self.sb.secret_key}":
            raise GraphQLError("Invalid credentials")

    def _model(self, model_id: str | None) -> str:
        models = self.sb.models
        if model_id is None:
            if len(models) == 1:
                return next(iter(models.values()))
            raise GraphQLError("modelId is required for accounts with several models")
        if model_id not in models.values():
            raise GraphQLError(f"Model not found: {model_id}")
        return model_id

    # -- public ------------------------------------------------------------------

    def listDatasets(
        self, info: GraphQLResolveInfo, round: int | None = None, tournament: int | None = None
    ) -> list[str]:
        """The tournament's dataset names (Classic when no tournament is given)."""
        if round is not None:
            self.sb.round_for_data(8 if tournament is None else tournament, round)
        if tournament not in (None, 8):
            return ticker_dataset_names(tournament)
        return dataset_names(tuple(sorted({*VERSIONS, self.sb.data_version})))

    def dataset(
        self,
        info: GraphQLResolveInfo,
        filename: str,
        round: int | None = None,
        tournament: int | None = None,
    ) -> str:
        """Presigned URL of one dataset file."""
        return self.sb.presign(filename, round)

    def rounds(
        self,
        info: GraphQLResolveInfo,
        tournament: int | None = None,
        number: int | None = None,
        target: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Rounds; number 0 is the currently open round."""
        t = 8 if tournament is None else tournament
        if number == 0:
            rnd = self.sb.open_round_at(tournament=t)
            if rnd is None:
                raise GraphQLError("Current round not open for submissions")
            return [round_dict(rnd, self.sb.to_wall)]
        now = self.sb.now()
        found = [r for r in reversed(self.sb.rounds) if r.tournament == t]
        if number is not None:
            found = [r for r in found if r.number == number]
        if status is not None:
            found = [r for r in found if _status(r, now) == status]
        return [round_dict(r, self.sb.to_wall) for r in found[:limit]]

    def submissionScores(
        self,
        info: GraphQLResolveInfo,
        modelId: str,
        displayName: str | None = None,
        version: str | None = None,
        day: int | None = None,
        resolved: bool | None = None,
        tournament: int | None = None,
        lastNRounds: int | None = None,
        distinctOnRound: bool | None = None,
    ) -> list[dict[str, Any]]:
        """A model's daily scores per round, newest round first (public, as on Numerai).

        distinctOnRound keeps each metric's latest day of a round.
        """
        scores = self.sb.model_scores(self._model(modelId))
        if tournament not in (None, 8):
            scores = []
        scores = [
            s
            for s in scores
            if (displayName is None or s.display_name == displayName)
            and (version is None or version == SCORE_VERSION)
            and (day is None or s.day == day)
            and (resolved is None or s.resolved == resolved)
        ]
        if distinctOnRound:
            latest = {(s.round_number, s.display_name): s for s in scores}
            scores = list(latest.values())
        numbers = sorted({s.round_number for s in scores}, reverse=True)[:lastNRounds]
        rounds = rounds_by_key(self.sb.rounds)
        return [
            _score_dict(s, rounds[(8, s.round_number)], self.sb.to_wall)
            for s in sorted(scores, key=lambda s: (-s.round_number, s.day))
            if s.round_number in numbers
        ]

    def v2RoundModelPerformances(
        self, info: GraphQLResolveInfo, modelId: str, tournament: int
    ) -> list[dict[str, Any]]:
        """A model's rounds with scores, newest first, each with its metrics' latest day."""
        scores = self.sb.model_scores(self._model(modelId)) if tournament == 8 else []
        rounds = rounds_by_key(self.sb.rounds)
        by_round: dict[int, dict[str, RoundScore]] = {}
        for score in scores:
            by_round.setdefault(score.round_number, {})[score.display_name] = score
        performances = []
        for number in sorted(by_round, reverse=True):
            latest = list(by_round[number].values())
            r = round_dict(rounds[(8, number)], self.sb.to_wall)
            daily = [
                {
                    "date": iso(self.sb.to_wall(s.date)),
                    "day": s.day,
                    "displayName": s.display_name,
                    "payoutPending": None,
                    "payoutSettled": None,
                    "percentile": None,
                    "value": s.value,
                }
                for s in latest
            ]
            performances.append(
                {
                    "atRisk": "0",
                    "payoutMultipliers": [],
                    "roundPayoutFactor": r["payoutFactor"],
                    "roundNumber": number,
                    "roundOpenTime": r["openTime"],
                    "roundResolveTime": r["resolveTime"],
                    "roundResolved": all(s.resolved for s in latest),
                    "roundTarget": r["target"],
                    "submissionScores": daily,
                    "intraRoundSubmissionScores": daily,
                }
            )
        return performances

    # -- authenticated -------------------------------------------------------------

    def account(self, info: GraphQLResolveInfo) -> dict[str, Any]:
        """The one account, with its models."""
        self._auth(info)
        sb = self.sb
        rounds = rounds_by_key(sb.rounds)
        models = [
            {
                "id": mid,
                "name": name,
                "tournament": sb.model_tournaments[mid],
                "submissionWebhook": sb.webhooks.get(mid),
                "submissions": [
                    submission_dict(s, rounds, sb.to_wall) for s in sb.submissions(mid)
                ],
                "v2Stake": {"status": None, "txHash": None},
            }
            for name, mid in sb.models.items()
        ]
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_OID, sb.public_id)),
            "username": "sandbox",
            "email": "sandbox@example.com",
            "walletAddress": None,
            "availableNmr": "0.000000000000000000",
            "mfaEnabled": False,
            "status": "VERIFIED",
            "insertedAt": iso(datetime(2020, 1, 1, tzinfo=sb.now().tzinfo)),
            "models": models,
            "apiTokens": [
                {
                    "name": "sandbox",
                    "public_id": sb.public_id,
                    "scopes": ["upload_submission", "read_submission_info", "read_user_info"],
                }
            ],
        }

    def submission_upload_auth(
        self, info: GraphQLResolveInfo, filename: str, tournament: int, modelId: str | None = None
    ) -> dict[str, str]:
        """Presigned PUT URL for a submission file."""
        self._auth(info)
        return self.sb.upload_auth(self._model(modelId), filename)

    def submissions(
        self, info: GraphQLResolveInfo, modelId: str | None = None
    ) -> list[dict[str, Any]]:
        """Submissions of one model (or of all the account's models)."""
        self._auth(info)
        mid = None if modelId is None else self._model(modelId)
        rounds = rounds_by_key(self.sb.rounds)
        return [submission_dict(s, rounds, self.sb.to_wall) for s in self.sb.submissions(mid)]

    def create_submission(
        self,
        info: GraphQLResolveInfo,
        filename: str,
        tournament: int,
        modelId: str | None = None,
        triggerId: str | None = None,
        source: str | None = None,
        dataDatestamp: int | None = None,
    ) -> dict[str, Any]:
        """Register an uploaded file as the model's submission for the current round."""
        self._auth(info)
        rec = self.sb.record_submission(
            self._model(modelId), filename, tournament, triggerId, source
        )
        return submission_dict(rec, rounds_by_key(self.sb.rounds), self.sb.to_wall)

    def submissionUploadSignalsAuth(
        self, info: GraphQLResolveInfo, filename: str, tournament: int, modelId: str | None = None
    ) -> dict[str, str]:
        """Presigned PUT URL for a Signals submission file (SignalsAPI's own upload route)."""
        self._auth(info)
        return self.sb.upload_auth(self._model(modelId), filename)

    def createSignalsSubmission(
        self,
        info: GraphQLResolveInfo,
        filename: str,
        modelId: str | None = None,
        triggerId: str | None = None,
        source: str | None = None,
        dataDatestamp: int | None = None,
    ) -> dict[str, Any]:
        """Register an uploaded file as a Signals model's submission for the current round."""
        self._auth(info)
        rec = self.sb.record_submission(self._model(modelId), filename, 11, triggerId, source)
        return submission_dict(rec, rounds_by_key(self.sb.rounds), self.sb.to_wall)

    def setSubmissionWebhook(
        self, info: GraphQLResolveInfo, modelId: str, newSubmissionWebhook: str | None = None
    ) -> str:
        """Store (or with None remove) the model's webhook URL."""
        self._auth(info)
        self.sb.set_webhook(self._model(modelId), newSubmissionWebhook)
        return "true"

    def triggerModelWebhook(self, info: GraphQLResolveInfo, modelId: str) -> str:
        """Record a test trigger, POST it to the model's webhook in the background; its id."""
        self._auth(info)
        return self.sb.trigger_webhook(self._model(modelId))


def _status(r: Round, now: datetime) -> str:
    if now < r.opens:
        return "UPCOMING"
    return "OPEN" if now < r.closes else "RESOLVING"
