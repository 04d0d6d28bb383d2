"""Deterministic, Numerai-shaped fake datasets (features.json, live/train/validation parquet)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

VERSIONS = ("v5.2", "v5.3")
_NO_QUANTUM = ("v5.0", "v5.1", "v5.2")
STATIC_FILES = ("features.json", "train.parquet", "validation.parquet")
LIVE_FILES = ("live.parquet", "live_example_preds.parquet", "live_benchmark_models.parquet")
FILES = STATIC_FILES[:1] + LIVE_FILES + STATIC_FILES[1:]
TARGETS = ("target", "target_cyrus_v5_20", "target_teager2b_20", "target_cyrus_v5_60")
BENCHMARKS = ("v5_lgbm_ct_blend", "v5_lgbm_cyrus20", "v5_lgbm_teager2b20")
_WORD_TEXT = (
    "able amber arid ashen bold brave brisk calm cedar coral crisp dune dusky eager ember "
    "fabled faint gentle gilded hollow honest jade keen lunar mellow misty noble olive pale "
    "quiet rapid rustic sable silent slate solar stark stout swift tidal umber vast velvet "
    "vivid wary wild woven zesty"
)
_WORDS = tuple(_WORD_TEXT.split())
_SIGNAL_FEATURES = 5
# A round's resolved target: its signal drowned in noise, so that scores are Numerai-sized (a few
# hundredths for the example predictions, on Numerai's number of rows).
TARGET_NOISE = 12.0
_lock = threading.Lock()


@dataclass(frozen=True)
class DataSize:
    """Row and column counts of the generated data. `quantum` extra features (v5.3 only)."""

    live_rows: int
    n_features: int
    small: int
    medium: int
    train_eras: int
    rows_per_era: int
    quantum: int = 0

    @property
    def key(self) -> str:
        """Short stable identifier used in the cache path."""
        return hashlib.sha1(repr(astuple(self)).encode()).hexdigest()[:10]  # noqa: S324


SIZES: dict[str, DataSize] = {
    "tiny": DataSize(300, 60, 10, 30, 40, 50, quantum=8),
    "v5.3": DataSize(6_700, 2_748, 42, 780, 200, 100, quantum=807),
}


def resolve_size(size: str | DataSize) -> DataSize:
    """Accept a SIZES name or a DataSize."""
    if isinstance(size, DataSize):
        return size
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}") from None


def dataset_names(versions: tuple[str, ...] = VERSIONS) -> list[str]:
    """Names as listDatasets reports them, e.g. 'v5.3/live.parquet'."""
    return [f"{v}/{f}" for v in versions for f in FILES]


class DataStore:
    """Generates on first use and caches files under `root` for one (seed, size)."""

    def __init__(
        self, root: Path, seed: int, size: DataSize, versions: tuple[str, ...] = VERSIONS
    ) -> None:
        self.root = Path(root)
        self.seed = seed
        self.size = size
        self.versions = versions
        self._targets: dict[tuple[str, int], pd.Series] = {}

    def path(self, version: str, filename: str, round_number: int) -> Path:
        """Path of `version/filename` for a round, generating it if missing."""
        if version not in self.versions or filename not in FILES:
            raise KeyError(f"{version}/{filename}")
        base = self.root / f"{version}-{self.size.key}-seed{self.seed}"
        if filename in LIVE_FILES:
            base = base / f"round{round_number}"
        target = base / filename
        with _lock:
            if not target.exists():
                base.mkdir(parents=True, exist_ok=True)
                self._generate(version, filename, round_number, base)
        return target

    def live_target(self, version: str, round_number: int) -> pd.Series:
        """The round's target as it resolves (hidden from the live data): by live id.

        The live frame's signal regenerated from the round's seed, plus noise of its own.
        """
        key = (version, round_number)
        if key not in self._targets:
            rng = np.random.default_rng([self.seed, 5, round_number])
            df, signal = self._frame(version, rng, ["X"], self.size.live_rows, "live")
            noise = np.random.default_rng([self.seed, 6, round_number]).normal(size=len(df))
            values = _bin_by_era(signal + noise * TARGET_NOISE, df["era"].to_numpy())
            self._targets[key] = pd.Series(values, index=df.index, name="target")
        return self._targets[key]

    # -- generation ---------------------------------------------------------------

    def _features(self, version: str) -> dict[str, list[str]]:
        s = self.size
        quantum = 0 if version in _NO_QUANTUM else s.quantum
        rng = np.random.default_rng([self.seed, 1])
        n = len(_WORDS)
        codes = rng.choice(n**3, size=s.n_features + quantum, replace=False)
        names = [
            f"feature_{_WORDS[c // n**2]}_{_WORDS[(c // n) % n]}_{_WORDS[c % n]}" for c in codes
        ]
        feats = names[: s.n_features]
        sets = {"small": feats[: s.small], "medium": feats[: s.medium], "all": feats}
        if quantum:
            sets["quantum"] = names[s.n_features :]
        return sets

    def _weights(self) -> np.ndarray:
        return np.random.default_rng([self.seed, 2]).normal(size=_SIGNAL_FEATURES)

    def _frame(
        self, version: str, rng: np.random.Generator, eras: list[str], rows: int, dtype: str
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Features + era/data_type for `rows` rows per era; also return the hidden signal."""
        sets = self._features(version)
        cols = sets["all"] + sets.get("quantum", [])
        n = len(eras) * rows
        ids = _ids(rng, n)
        x = rng.integers(0, 5, size=(n, len(cols)), dtype=np.int8)
        signal = (x[:, :_SIGNAL_FEATURES].astype(np.float64) - 2.0) @ self._weights()
        meta = pd.DataFrame({"era": np.repeat(eras, rows), "data_type": dtype}, index=ids)
        feats = pd.DataFrame(x, index=ids, columns=cols)
        df = pd.concat([meta, feats], axis=1)
        df.index.name = "id"
        return df, signal

    def _generate(self, version: str, filename: str, round_number: int, base: Path) -> None:
        s = self.size
        logger.info("generating %s/%s (round %s) under %s", version, filename, round_number, base)
        if filename == "features.json":
            payload = {"feature_sets": self._features(version), "targets": list(TARGETS)}
            _atomic_write(base / filename, json.dumps(payload, indent=1).encode())
        elif filename in ("train.parquet", "validation.parquet"):
            train = filename == "train.parquet"
            n_val = max(2, s.train_eras // 10)
            first = 1 if train else s.train_eras + 1
            count = s.train_eras if train else n_val
            rng = np.random.default_rng([self.seed, 3 if train else 4])
            eras = [f"{i:04d}" for i in range(first, first + count)]
            df, signal = self._frame(version, rng, eras, s.rows_per_era, filename.split(".")[0])
            era_col = df["era"].to_numpy()
            for i, name in enumerate(TARGETS):
                noise_scale = 3.0 + i
                df[name] = _bin_by_era(signal + rng.normal(size=len(df)) * noise_scale, era_col)
            _write_parquet(df, base / filename)
        else:
            rng = np.random.default_rng([self.seed, 5, round_number])
            df, signal = self._frame(version, rng, ["X"], s.live_rows, "live")
            for name in TARGETS:
                df[name] = np.nan
            _write_parquet(df, base / "live.parquet")
            preds = pd.DataFrame(
                {"prediction": _rank(signal + rng.normal(size=len(df)) * 4.0)}, index=df.index
            )
            _write_parquet(preds, base / "live_example_preds.parquet")
            bench = pd.DataFrame(
                {b: _rank(signal + rng.normal(size=len(df)) * 4.0) for b in BENCHMARKS},
                index=df.index,
            )
            _write_parquet(bench, base / "live_benchmark_models.parquet")


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    """n unique ids like 'n0005e01cd27dd7b'."""
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        for v in rng.integers(0, 2**60, size=n - len(out), dtype=np.int64):
            key = f"n{int(v):015x}"
            if key not in seen:
                seen.add(key)
                out.append(key)
    return out


def _rank(values: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1]."""
    return pd.Series(values).rank(pct=True).to_numpy()


def _bin_by_era(values: np.ndarray, eras: np.ndarray) -> np.ndarray:
    """Per-era quantile bins -> {0, .25, .5, .75, 1} with Numerai-like 5/20/50/20/5 mass."""
    ranks = pd.Series(values).groupby(eras).rank(pct=True).to_numpy()
    return np.digitize(ranks, [0.05, 0.25, 0.75, 0.95], right=True) / 4.0


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp)
    os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- Signals and Crypto ------------------------------------------------------------------

# Dataset names as Numerai lists them (signals/v2.0/..., crypto/v1.0/...), plus the daily
# price-like file that only the sandbox serves: the data a Signals/Crypto model builds on.
TICKER_VERSIONS: dict[int, str] = {11: "v2.0", 12: "v1.0"}
TICKER_FILES: dict[int, tuple[str, ...]] = {
    11: ("live.parquet", "live_example_preds.parquet", "daily_prices.parquet"),
    12: ("live_universe.parquet", "daily_prices.parquet"),
}
TICKER_PREFIX: dict[int, str] = {11: "signals/", 12: "crypto/"}
PRICE_DAYS = 80
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def ticker_dataset_names(tournament: int) -> list[str]:
    """Names as listDatasets reports them for Signals (11) or Crypto (12)."""
    if tournament not in TICKER_FILES:
        return []
    prefix, version = TICKER_PREFIX[tournament], TICKER_VERSIONS[tournament]
    return [f"{prefix}{version}/{name}" for name in TICKER_FILES[tournament]]


def parse_ticker_dataset(filename: str) -> tuple[int, str, str] | None:
    """(tournament, version, file) of a Signals/Crypto dataset name, or None."""
    for tournament, prefix in TICKER_PREFIX.items():
        if filename.startswith(prefix):
            version, _, name = filename.removeprefix(prefix).partition("/")
            if version == TICKER_VERSIONS[tournament] and name in TICKER_FILES[tournament]:
                return tournament, version, name
    return None


class TickerStore:
    """Generates and caches Signals/Crypto files: a universe of tickers and their daily prices."""

    def __init__(self, root: Path, seed: int, size: DataSize) -> None:
        self.root = Path(root)
        self.seed = seed
        # Enough tickers for Numerai's minimum of 100 with room to drop a few.
        self.n_tickers = max(150, size.live_rows // 2)

    def path(self, tournament: int, filename: str, round_number: int) -> Path:
        """Path of a file for a round, generating it if missing."""
        if filename not in TICKER_FILES.get(tournament, ()):
            raise KeyError(f"{tournament}/{filename}")
        base = (
            self.root / f"t{tournament}-{self.n_tickers}-seed{self.seed}" / f"round{round_number}"
        )
        target = base / filename
        with _lock:
            if not target.exists():
                base.mkdir(parents=True, exist_ok=True)
                self._generate(tournament, round_number, base)
        return target

    def _symbols(self, tournament: int) -> list[str]:
        rng = np.random.default_rng([self.seed, 20 + tournament])
        seen: list[str] = []
        while len(seen) < self.n_tickers:
            length = int(rng.integers(3, 5))
            symbol = "".join(rng.choice(list(_LETTERS), size=length))
            if symbol not in seen:
                seen.append(symbol)
        return seen

    def _generate(self, tournament: int, round_number: int, base: Path) -> None:
        logger.info(
            "generating tournament %s files (round %s) under %s", tournament, round_number, base
        )
        symbols = self._symbols(tournament)
        rng = np.random.default_rng([self.seed, 30 + tournament, round_number])
        # A few tickers leave the universe each round; a few in it have no prices.
        in_universe = np.sort(rng.choice(len(symbols), size=len(symbols) - 5, replace=False))
        day = pd.Timestamp("2026-01-01") + pd.Timedelta(days=round_number % 3000)
        dates = pd.date_range(end=day - pd.Timedelta(days=1), periods=PRICE_DAYS, freq="D")
        drift = rng.normal(0.0, 0.002, size=len(symbols))
        steps = rng.normal(drift, 0.02, size=(PRICE_DAYS, len(symbols)))
        closes = 10.0 * np.exp(np.cumsum(steps, axis=0)) * rng.uniform(1, 100, size=len(symbols))
        if tournament == 11:
            country = rng.choice(["US", "JP", "GB", "DE"], size=len(symbols))
            tickers = [f"{s} {c}" for s, c in zip(symbols, country, strict=True)]
            universe = pd.DataFrame(
                {
                    "numerai_ticker": tickers,
                    "bloomberg_ticker": [f"{t} Equity" for t in tickers],
                    "composite_figi": [
                        f"BBG{int(v):09X}" for v in rng.integers(0, 16**9, len(symbols))
                    ],
                    "date": day.strftime("%Y-%m-%d"),
                    "data_type": "live",
                }
            ).iloc[in_universe]
            id_column, universe_file = "numerai_ticker", "live.parquet"
        else:
            tickers = symbols
            universe = pd.DataFrame({"symbol": tickers}).iloc[in_universe]
            id_column, universe_file = "symbol", "live_universe.parquet"
        _write_parquet(universe.reset_index(drop=True), base / universe_file)
        priced = [i for i in range(len(symbols)) if i % 37 != 0]
        prices = pd.DataFrame(
            {
                "date": np.repeat(dates.strftime("%Y-%m-%d"), len(priced)),
                id_column: np.tile([tickers[i] for i in priced], PRICE_DAYS),
                "close": closes[:, priced].reshape(-1),
            }
        )
        _write_parquet(prices, base / "daily_prices.parquet")
        if tournament == 11:
            example = pd.DataFrame(
                {
                    "numerai_ticker": universe["numerai_ticker"],
                    "signal": rng.uniform(0.01, 0.99, len(universe)),
                }
            )
            _write_parquet(example.reset_index(drop=True), base / "live_example_preds.parquet")
