"""Round report Markdown and model history: pure rendering and merging."""

from __future__ import annotations

from typing import Any

import pandas as pd

from model.report import (
    apply_scores,
    history_markdown,
    history_summary,
    merge_history,
    round_markdown,
    score_trend,
)
from model.summary import histogram
from tests.charts import SVG, inline_svgs, series, series_names


def test_histogram_counts_ten_bins_over_unit_interval() -> None:
    counts = histogram(pd.Series([0.0, 0.05, 0.5, 0.99, 1.0, float("nan"), 2.0]))
    assert len(counts) == 10 and sum(counts) == 5
    assert counts[0] == 2 and counts[5] == 1 and counts[9] == 2


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
    assert "| alpha | verified |" in text and "| 0.5000 |" in text
    assert "model \\| exploded" in text  # pipes in cells are escaped
    assert "```" not in text and "█" not in text, "a text chart is left"
    (svg,) = inline_svgs(text)
    assert svg.tag == f"{SVG}svg"
    assert series_names(svg) == ["example", "alpha"]  # beta has no predictions to draw


def test_round_chart_draws_one_line_per_model_at_its_shares() -> None:
    rows = [
        {"model": f"model_{i}", "round": 7, "status": "verified", "verified": True,
         "histogram": [i + 1] + [1] * 9}
        for i in range(10)
    ]  # fmt: skip
    (svg,) = inline_svgs(round_markdown(7, rows))
    assert series_names(svg) == [f"model_{i}" for i in range(10)]
    groups = series(svg)
    for group in groups:
        (line,) = group.iter(f"{SVG}polyline")
        assert len(line.attrib["points"].split()) == 10
    # A model with more predictions in its first bin draws that point higher (smaller y).
    first_y = [
        float(next(g.iter(f"{SVG}polyline")).attrib["points"].split()[0].split(",")[1])
        for g in groups
    ]
    assert first_y == sorted(first_y, reverse=True)


def test_round_table_fits_with_long_names_ids_and_validation() -> None:
    rows = [
        {"model": "a_rather_long_numerai_model_name_" + str(i), "round": 1234,
         "status": "already submitted", "rows": 6700, "mean": 0.5001, "std": 0.2887,
         "corr_with_example": -0.0123, "verified": True,
         "validation": "failed: ids (5 of 6700 live ids are missing: 'n0005e01cd27dd7b', ...)",
         "submission_id": "3f2b8c1e-9a4d-4c6b-8e2f-1a2b3c4d5e6f"}
        for i in range(3)
    ]  # fmt: skip
    text = round_markdown(1234, rows)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(rows)
    # About 100 characters of cells and separators render well inside 1400 px.
    assert max(len(line) for line in table) <= 100, max(table, key=len)
    assert "| 3f2b8c1e |" in text


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


def scored_history() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for number in range(100, 110):
        rows = merge_history(rows, {"round": number, "status": "verified", "verified": True})
    corrs = {n: 0.01 if n < 105 else 0.03 for n in range(100, 109)}
    return apply_scores(
        rows, {n: {"corr": c, "mmc": c / 2, "final": n < 102} for n, c in corrs.items()}
    )


def test_apply_scores_sets_numerai_scores_on_the_rounds_they_score() -> None:
    rows = {r["round"]: r for r in scored_history()}
    assert rows[100]["numerai_corr"] == 0.01 and rows[100]["scores_final"] is True
    assert rows[107]["numerai_mmc"] == 0.015 and rows[107]["scores_final"] is False
    assert rows[109]["numerai_corr"] is None  # not scored yet


def test_scores_survive_a_run_without_scores_and_a_rerun_of_the_round() -> None:
    rows = apply_scores(scored_history(), {})
    rows = merge_history(rows, {"round": 108, "status": "already submitted", "verified": True})
    assert {r["round"]: r for r in rows}[108]["numerai_corr"] == 0.03


def test_score_trend_compares_the_latest_rounds_with_the_ones_before() -> None:
    trend = score_trend(scored_history())
    assert trend == (
        "Numerai corr: mean +0.0300 over the last 4 scored rounds, "
        "up 0.0200 from +0.0100 over the 4 before"
    )
    assert score_trend(scored_history()[:0]) is None


def test_history_markdown_charts_corr_and_mmc_per_round() -> None:
    text = history_markdown("alpha", scored_history())
    assert text.startswith("alpha: 10 rounds, 10 verified")
    assert "Numerai corr: mean +0.0300" in text
    (svg,) = inline_svgs(text)
    assert series_names(svg) == ["corr", "mmc"]
    assert "<" not in text.split("](")[0], "the Markdown holds no raw HTML"
    unscored = merge_history([], {"round": 1, "status": "verified", "verified": True})
    assert inline_svgs(history_markdown("alpha", unscored)) == []
