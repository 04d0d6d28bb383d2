"""The Signals and Crypto example models: a price momentum signal from daily prices it is given.

Numerai gives Signals and Crypto models a universe of tickers, not features to learn from; the
signal comes from the modeller's own data. These examples read a long frame of daily closes
(``date``, the ticker column, ``close``): the sandbox's price-like file, or the user's own file.
They never fetch anything: a Model Upload has no internet, and neither should a round run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from model.predictor import save_predict_fn
from model.tournaments import CRYPTO, SIGNALS, Tournament, tournament

LOOKBACKS = (5, 10, 20, 40)
HORIZON = 5
PRICE_COLUMNS = ("date", "close")


def wide_closes(prices: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """Daily closes as a date x ticker table, oldest first."""
    missing = [c for c in (*PRICE_COLUMNS, id_column) if c not in prices.columns]
    if missing:
        raise ValueError(f"daily prices lack column(s) {missing}; they have {list(prices.columns)}")
    table = prices.pivot_table(index="date", columns=id_column, values="close", aggfunc="last")
    return table.sort_index()


def momentum(closes: pd.DataFrame, lookback: int) -> pd.Series:
    """Each ticker's return over the last ``lookback`` days (NaN without enough history)."""
    if len(closes) <= lookback:
        return pd.Series(np.nan, index=closes.columns)
    return closes.iloc[-1] / closes.iloc[-1 - lookback] - 1.0


def choose_lookback(
    prices: pd.DataFrame,
    id_column: str,
    lookbacks: Sequence[int] = LOOKBACKS,
    horizon: int = HORIZON,
) -> int:
    """The lookback whose momentum best rank-correlated with the next ``horizon`` days' return."""
    closes = wide_closes(prices, id_column)
    best, best_score = lookbacks[0], -np.inf
    for lookback in lookbacks:
        scores = []
        for end in range(lookback + 1, len(closes) - horizon, horizon):
            past = momentum(closes.iloc[:end], lookback)
            future = closes.iloc[end - 1 + horizon] / closes.iloc[end - 1] - 1.0
            both = pd.concat([past, future], axis=1).dropna()
            if len(both) >= 10:
                scores.append(both.iloc[:, 0].rank().corr(both.iloc[:, 1].rank()))
        score = float(np.nanmean(scores)) if scores else -np.inf
        if score > best_score:
            best, best_score = lookback, score
    return best


def make_momentum_predict_fn(
    id_column: str, lookback: int, prediction_column: str = "signal"
) -> Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]:
    """A predict(live_universe, daily_prices) function ranking the universe by momentum."""

    # Only pandas and builtins are referenced, so the pickle loads without this package.
    def predict(live_universe: pd.DataFrame, daily_prices: pd.DataFrame) -> pd.DataFrame:
        if daily_prices is None or len(daily_prices) == 0 or "close" not in daily_prices.columns:
            raise ValueError(
                "no daily prices were given: this model needs a frame of date, "
                f"{id_column}, close (set the model's data_path to your own file)"
            )
        closes = daily_prices.pivot_table(
            index="date", columns=id_column, values="close", aggfunc="last"
        ).sort_index()
        if len(closes) <= lookback:
            raise ValueError(f"{len(closes)} days of prices; {lookback + 1} needed")
        moves = closes.iloc[-1] / closes.iloc[-1 - lookback] - 1.0
        tickers = live_universe[id_column].dropna().astype(str).unique()
        moves.index = moves.index.astype(str)
        moves = moves.reindex(tickers).dropna()
        # Ranks centred in (0, 1): never exactly 0 or 1, which Numerai's checks reject.
        ranked = (moves.rank(method="first") - 0.5) / len(moves)
        return pd.DataFrame({id_column: ranked.index, prediction_column: ranked.to_numpy()})

    return predict


def train_ticker_example(
    prices: pd.DataFrame, which: int | str | Tournament
) -> Callable[..., pd.DataFrame]:
    """The example predict function for Signals or Crypto, its lookback chosen on ``prices``."""
    t = which if isinstance(which, Tournament) else tournament(which)
    if t.number not in (SIGNALS, CRYPTO):
        raise ValueError(f"the ticker example is for Signals and Crypto, not {t.name}")
    lookback = choose_lookback(prices, t.default_id_column)
    return make_momentum_predict_fn(t.default_id_column, lookback)


def read_prices(path: str | Path) -> pd.DataFrame:
    """Daily prices from a parquet or CSV file."""
    source = Path(path)
    return pd.read_csv(source) if source.suffix == ".csv" else pd.read_parquet(source)


def train_ticker_example_from_file(
    prices_path: str | Path, which: int | str | Tournament, out_path: str | Path
) -> Path:
    """Train the Signals or Crypto example on a daily prices file; write its predict function."""
    return save_predict_fn(train_ticker_example(read_prices(prices_path), which), out_path)
