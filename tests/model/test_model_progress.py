"""Progress of training and downloads: a bar on a terminal, a log line every so often elsewhere."""

from __future__ import annotations

import io
import logging
import threading
from functools import partial
from operator import contains
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from model.example import _fit_watched, train_example_model
from model.progress import progress
from tests.support import LogRecords


@pytest.fixture
def records() -> Any:
    logger = logging.getLogger("test-progress")
    logger.setLevel(logging.INFO)
    handler = LogRecords()
    logger.addHandler(handler)
    try:
        yield logger, handler.records
    finally:
        logger.removeHandler(handler)


def test_without_a_terminal_a_line_every_so_often_and_one_at_the_end(records: Any) -> None:
    logger, seen = records
    with progress("Training", "trees", logger, bar=False, every=3600) as report:
        for done in range(0, 301, 30):
            report(done, 300)
    assert [r.getMessage().split(",")[0] for r in seen] == ["Training: 300 of 300 trees (100%)"]
    seen.clear()
    with progress("Training", "trees", logger, bar=False, every=0) as report:
        report(0, 300)
        report(150, 300)
    assert [r.getMessage().split(",")[0] for r in seen] == [
        "Training: 0 of 300 trees (0%)",
        "Training: 150 of 300 trees (50%)",
    ]


def test_on_a_terminal_a_bar_and_no_log_lines(
    records: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, seen = records
    screen = io.StringIO()
    monkeypatch.setattr("sys.stderr", screen)
    monkeypatch.setattr(screen, "isatty", lambda: True)
    with progress("Training", "trees", logger) as report:
        report(300, 300)
    assert "Training" in screen.getvalue() and "300/300" in screen.getvalue()
    assert seen == []


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, list[str]]:
    rng = np.random.default_rng(0)
    features = [f"feature_{i:02d}" for i in range(8)]
    train = pd.DataFrame(rng.integers(0, 5, size=(2000, 8), dtype=np.int8), columns=features)
    train["era"] = np.repeat([f"{i:04d}" for i in range(20)], 100)
    train["target"] = (train["feature_00"] - train["feature_01"]) / 8 + 0.5
    return train, features


def test_training_reports_its_trees_and_trains_the_same_model(
    frame: tuple[pd.DataFrame, list[str]],
) -> None:
    train, features = frame
    calls: list[tuple[int, int]] = []
    watched = train_example_model(
        train, features, max_iter=40, every_nth_era=2, progress=lambda d, t: calls.append((d, t))
    )
    plain = train_example_model(train, features, max_iter=40, every_nth_era=2)
    assert calls[0] == (0, 40) and calls[-1] == (40, 40)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert np.array_equal(
        watched.estimator.predict(train[features]), plain.estimator.predict(train[features])
    )


def test_scikit_learn_keeps_the_list_of_trees_the_progress_is_read_from(
    frame: tuple[pd.DataFrame, list[str]],
) -> None:
    train, features = frame
    estimator = HistGradientBoostingRegressor(max_iter=7).fit(train[features], train["target"])
    assert len(estimator._predictors) == estimator.n_iter_ == 7


class _SlowEstimator:
    """Grows one tree at a time, each only once the progress has reported the one before."""

    max_iter = 3

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.reported = threading.Condition()

    def fit(self, x: Any, y: Any) -> None:
        self._predictors: list[object] = []
        for tree in range(1, self.max_iter + 1):
            self._predictors.append(object())
            with self.reported:
                assert self.reported.wait_for(partial(contains, self.seen, tree), timeout=10), tree

    @property
    def n_iter_(self) -> int:
        return len(self._predictors)

    def report(self, done: int, total: int) -> None:
        with self.reported:
            self.seen.append(done)
            self.reported.notify_all()


def test_trees_are_reported_while_the_fit_runs() -> None:
    slow = _SlowEstimator()
    _fit_watched(slow, None, None, slow.report, every=0.01)  # type: ignore[arg-type]
    grown = list(dict.fromkeys(slow.seen))
    assert grown == [0, 1, 2, 3]
