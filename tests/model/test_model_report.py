"""Round report Markdown and model history: pure rendering and merging."""

from __future__ import annotations

from typing import Any

import pandas as pd

from model.report import history_summary, merge_history, round_markdown, sparkline
from model.summary import histogram


def test_histogram_counts_ten_bins_over_unit_interval() -> None:
    counts = histogram(pd.Series([0.0, 0.05, 0.5, 0.99, 1.0, float("nan"), 2.0]))
    assert len(counts) == 10 and sum(counts) == 5
    assert counts[0] == 2 and counts[5] == 1 and counts[9] == 2


def test_sparkline_scales_to_the_fullest_bin() -> None:
    assert sparkline([0, 5, 10]) == " ▄█"
    assert sparkline([0, 0]) == "  "


def test_round_markdown_has_table_chart_and_failures() -> None:
    rows = [
        {"model": "alpha", "round": 7, "status": "verified", "verified": True, "mean": 0.5,
         "histogram": [1] * 10, "example_histogram": [0, 1] * 5},
        {"model": "beta", "round": 7, "status": "failed", "verified": False,
         "error": "RuntimeError: model | exploded"},
    ]  # fmt: skip
    text = round_markdown(7, rows)
    assert "# Numerai round 7" in text
    assert "1 of 2 models have a verified submission" in text
    assert "| alpha | 7 | verified |" in text and "| 0.5000 |" in text
    assert "example  |" in text and "alpha    |██████████|" in text
    assert "model \\| exploded" in text  # pipes in cells are escaped


def test_merge_history_replaces_the_same_round_and_sorts_newest_first() -> None:
    rows = merge_history([], {"round": 1, "status": "failed", "verified": False})
    rows = merge_history(rows, {"round": 2, "status": "verified", "verified": True})
    rows = merge_history(rows, {"round": 1, "status": "verified", "verified": True, "extra": 1})
    assert [(r["round"], r["status"]) for r in rows] == [(2, "verified"), (1, "verified")]
    assert "extra" not in rows[0]
    assert rows[1]["runs"] == 2


def _verified_round() -> list[dict[str, Any]]:
    return merge_history(
        [],
        {"round": 1000, "status": "verified", "verified": True, "corr_with_example": 0.3,
         "submission_id": "s-1"},
    )  # fmt: skip


def test_a_forced_rerun_that_fails_keeps_the_round_verified() -> None:
    """It used to say "1 rounds, 0 verified, 1 missed" for a round whose submission stood."""
    rows = merge_history(
        _verified_round(),
        {"round": 1000, "status": "failed", "verified": False,
         "error": "RoundClosed: too late to upload, nothing was sent"},
    )  # fmt: skip
    (row,) = rows
    assert row["verified"] is True and row["status"] == "verified"
    assert row["submission_id"] == "s-1" and row["corr_with_example"] == 0.3
    assert row["runs"] == 2 and "too late" in row["last_error"]
    assert history_summary("alpha", rows).startswith(
        "alpha: 1 round, 1 verified (0 late), 0 missed"
    )


def test_a_skip_after_a_verified_submission_keeps_its_figures() -> None:
    rows = merge_history(
        _verified_round(),
        {"round": 1000, "status": "already submitted", "verified": True, "submission_id": "s-1"},
    )
    assert rows[0]["status"] == "verified" and rows[0]["corr_with_example"] == 0.3


def test_a_forced_rerun_that_verifies_replaces_the_figures() -> None:
    rows = merge_history(
        _verified_round(),
        {"round": 1000, "status": "verified", "verified": True, "corr_with_example": 0.5,
         "submission_id": "s-2"},
    )  # fmt: skip
    assert (rows[0]["submission_id"], rows[0]["corr_with_example"]) == ("s-2", 0.5)


def test_a_skip_with_no_earlier_row_counts_as_verified() -> None:
    rows = merge_history([], {"round": 7, "status": "already submitted", "verified": True})
    assert "1 verified" in history_summary("alpha", rows)


def test_a_failure_then_a_retry_that_verifies_is_verified() -> None:
    rows = merge_history([], {"round": 7, "status": "failed", "verified": False, "error": "x"})
    rows = merge_history(rows, {"round": 7, "status": "verified", "verified": True})
    assert rows[0]["verified"] is True and rows[0]["last_error"] is None


def test_history_summary_counts_verified_late_missed_and_mean_correlation() -> None:
    rows: list[dict[str, Any]] = [
        {"round": 3, "verified": True, "corr_with_example": 0.5},
        {"round": 2, "verified": False, "late": True},
        {"round": 1, "verified": True, "corr_with_example": 0.3, "late": True},
    ]
    summary = history_summary("alpha", rows)
    assert "3 rounds, 2 verified (1 late), 1 missed" in summary
    assert "0.4000" in summary
