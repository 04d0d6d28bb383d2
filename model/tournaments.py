"""Numerai's tournaments as data: the one place that knows how Classic, Signals and Crypto differ.

Everything the pipeline does per tournament (which files are live data, which column names a
row, how a submission is uploaded, what makes it valid) is read from a ``Tournament`` here, so
the flow runs one pipeline for every tournament and a change in Numerai's naming is one edit.

Sources: numerapi 3.1.1 (``NumerAPI``/``SignalsAPI``/``CryptoAPI``: tournament ids, the upload
queries), numerai-tools 0.7.2 ``submissions.py`` (id and prediction columns, minimum tickers),
and Numerai's docs (dataset names: ``signals/v2.0/live.parquet``,
``crypto/v1.0/live_universe.parquet``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# numerai-tools 0.7.2's column names and minimums (numerai_tools.submissions), written out because
# importing that module loads scipy and scikit-learn, seconds on every flow-run start; a test
# keeps these equal to the installed numerai-tools.
NUMERAI_ALLOWED_ID_COLS = ["id"]
NUMERAI_ALLOWED_PRED_COLS = ["prediction", "probability"]
SIGNALS_ALLOWED_ID_COLS = [
    "ticker",
    "sedol",
    "bloomberg_ticker",
    "composite_figi",
    "numerai_ticker",
]
SIGNALS_ALLOWED_PRED_COLS = ["prediction", "signal"]
SIGNALS_MIN_TICKERS = 100
CRYPTO_ALLOWED_ID_COLS = ["symbol"]
CRYPTO_ALLOWED_PRED_COLS = ["prediction", "signal"]
CRYPTO_MIN_TICKERS = 100

CLASSIC = 8
SIGNALS = 11
CRYPTO = 12


@dataclass(frozen=True)
class Tournament:
    """How one Numerai tournament names its data, identifies rows, uploads and validates."""

    number: int
    name: str
    # Dataset names are f"{dataset_prefix}{version}/{file}", e.g. "signals/v2.0/live.parquet".
    dataset_prefix: str
    default_version: str
    live_file: str
    # The predictor's second argument (Classic: the benchmark models). Signals and Crypto have
    # no such file on Numerai; the sandbox serves a price-like one, or the model names its own.
    second_file: str | None
    # Whether Numerai itself lists the second file (else it is downloaded only where listed).
    second_file_on_numerai: bool
    example_file: str | None
    # Other files downloaded with the live data each round (Classic: the feature sets).
    extra_files: tuple[str, ...]
    id_columns: tuple[str, ...]
    # The id column of the live files, and of a submission whose predictor names none.
    default_id_column: str
    prediction_columns: tuple[str, ...]
    # None: every live id must be predicted (Classic); else at least this many known tickers.
    min_ids: int | None
    # numerapi's upload route: the upload-auth query and the create mutation it sends.
    upload_auth_query: str
    create_mutation: str

    @property
    def live_files(self) -> tuple[str, ...]:
        """The files a round's live data must have."""
        second = self.second_file if self.second_file_on_numerai else None
        return tuple(f for f in (*self.extra_files, self.live_file, self.example_file, second) if f)

    @property
    def optional_files(self) -> tuple[str, ...]:
        """Files downloaded with the live data only when the API lists them."""
        return () if self.second_file_on_numerai or not self.second_file else (self.second_file,)

    def dataset(self, version: str, filename: str) -> str:
        """The dataset name numerapi asks for, e.g. "crypto/v1.0/live_universe.parquet"."""
        return f"{self.dataset_prefix}{version}/{filename}"

    def versions(self, dataset_names: list[str]) -> set[str]:
        """The data versions with this tournament's live file among listed dataset names."""
        pattern = re.compile(
            rf"^{re.escape(self.dataset_prefix)}(v\d+(?:\.\d+)*)/{re.escape(self.live_file)}$"
        )
        return {m[1] for name in dataset_names if (m := pattern.match(name))}

    def newest_version(self, dataset_names: list[str]) -> str | None:
        """The newest listed data version, or None when none is listed."""
        found = self.versions(dataset_names)
        return max(found, key=version_key) if found else None


def version_key(version: str) -> tuple[int, ...]:
    """Sort key of a version such as "v5.3"."""
    return tuple(int(p) for p in version.lstrip("v").split("."))


TOURNAMENTS: dict[int, Tournament] = {
    CLASSIC: Tournament(
        number=CLASSIC,
        name="classic",
        dataset_prefix="",
        default_version="v5.3",
        live_file="live.parquet",
        second_file="live_benchmark_models.parquet",
        second_file_on_numerai=True,
        example_file="live_example_preds.parquet",
        extra_files=("features.json",),
        id_columns=tuple(NUMERAI_ALLOWED_ID_COLS),
        default_id_column="id",
        prediction_columns=tuple(NUMERAI_ALLOWED_PRED_COLS),
        min_ids=None,
        upload_auth_query="submission_upload_auth",
        create_mutation="create_submission",
    ),
    SIGNALS: Tournament(
        number=SIGNALS,
        name="signals",
        dataset_prefix="signals/",
        default_version="v2.0",
        live_file="live.parquet",
        second_file="daily_prices.parquet",
        second_file_on_numerai=False,
        example_file="live_example_preds.parquet",
        extra_files=(),
        id_columns=tuple(SIGNALS_ALLOWED_ID_COLS),
        default_id_column="numerai_ticker",
        prediction_columns=tuple(SIGNALS_ALLOWED_PRED_COLS),
        min_ids=SIGNALS_MIN_TICKERS,
        upload_auth_query="submissionUploadSignalsAuth",
        create_mutation="createSignalsSubmission",
    ),
    CRYPTO: Tournament(
        number=CRYPTO,
        name="crypto",
        dataset_prefix="crypto/",
        default_version="v1.0",
        live_file="live_universe.parquet",
        second_file="daily_prices.parquet",
        second_file_on_numerai=False,
        example_file=None,
        extra_files=(),
        id_columns=tuple(CRYPTO_ALLOWED_ID_COLS),
        default_id_column="symbol",
        prediction_columns=tuple(CRYPTO_ALLOWED_PRED_COLS),
        min_ids=CRYPTO_MIN_TICKERS,
        # CryptoAPI inherits numerapi's generic upload, sent with tournament 12.
        upload_auth_query="submission_upload_auth",
        create_mutation="create_submission",
    ),
}
BY_NAME: dict[str, Tournament] = {t.name: t for t in TOURNAMENTS.values()}


def tournament(key: int | str) -> Tournament:
    """The tournament for a number (8, 11, 12) or a name ("classic", "signals", "crypto")."""
    if isinstance(key, str) and key.strip().isdigit():
        key = int(key)
    found = TOURNAMENTS.get(key) if isinstance(key, int) else BY_NAME.get(key.strip().lower())
    if found is None:
        known = ", ".join(f"{t.name} ({t.number})" for t in TOURNAMENTS.values())
        raise ValueError(f"unknown tournament {key!r}; known: {known}")
    return found
