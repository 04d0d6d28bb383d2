"""Round reports and per-model history, rendered as Markdown: pure functions, no Prefect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from model.chart import distribution_chart, line_chart, markdown_image, short

# Columns of the round table, in order, with their headings: short enough that the rendered
# table fits a laptop screen. The round is in the heading, "verified" in the status, the
# validation outcome in the failures (a model whose checks failed is never uploaded).
ROUND_COLUMNS = (
    ("model", "model"),
    ("status", "status"),
    ("rows", "rows"),
    ("mean", "mean"),
    ("std", "std"),
    ("corr_with_example", "corr ex."),
    ("submission_id", "submission"),
)
MODEL_CHARS = 24  # a longer model name is cut in the table (the chart's legend cuts at 20)
ID_CHARS = 8  # a submission id's first characters: enough to tell a model's submissions apart
HISTORY_COLUMNS = ("round", "status", "verified", "late", "corr_with_example", "submission_id")
# Each round's scores as Numerai reports them, filled in on later runs, once the round is scored.
SCORE_COLUMNS = ("numerai_corr", "numerai_mmc", "scores_final")
# Beside those, each history row counts the runs that worked on its round and keeps the last error.
TREND_ROUNDS = (
    4  # the trend compares the mean of this many latest scored rounds with the ones before
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A Markdown table of the given columns."""
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def _table_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A round row with its long texts shortened for the table."""
    shown = dict(row)
    shown["model"] = short(str(row.get("model")), MODEL_CHARS)
    if row.get("submission_id"):
        shown["submission_id"] = str(row["submission_id"])[:ID_CHARS]
    return shown


def round_markdown(round_number: int, rows: Sequence[Mapping[str, Any]]) -> str:
    """The round's report: the per-model table and a chart of each model's predictions."""
    verified = sum(1 for r in rows if r.get("verified"))
    example = next((r.get("example_histogram") for r in rows if r.get("example_histogram")), None)
    histograms = {"example": example} if example else {}
    histograms.update({str(r["model"]): r["histogram"] for r in rows if r.get("histogram")})
    chart = []
    if histograms:
        svg = distribution_chart(histograms, reference="example" if example else None)
        chart = [
            "## Prediction distribution",
            markdown_image(svg, "Share of each model's predictions per tenth of [0, 1]"),
        ]
    errors = [f"- **{r['model']}**: {_cell(r['error'])}" for r in rows if r.get("error")]
    return (
        "\n\n".join(
            [
                f"# Numerai round {round_number}",
                f"{verified} of {len(rows)} models have a verified submission.",
                markdown_table([_table_row(r) for r in rows], ROUND_COLUMNS),
                *chart,
                *(["## Failures", "\n".join(errors)] if errors else []),
            ]
        )
        + "\n"
    )


def _verified(row: Mapping[str, Any]) -> bool:
    value = row.get("verified")
    return value is True or str(value).lower() in ("true", "yes", "1")


def merge_history(
    previous: Sequence[Mapping[str, Any]], outcome: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The model's history with this run's outcome merged into the row of its round.

    A round keeps a verified submission once it had one: a later run that skipped it ("already
    submitted") or failed (a forced re-run too late to upload) uploaded nothing that replaces
    it, so the round stays verified with that submission's figures, and the later error is
    kept beside it. A later verified upload replaces the figures (Numerai counts the latest).
    """
    number = outcome.get("round")
    earlier = next((dict(r) for r in previous if r.get("round") == number), None)
    new = {key: outcome.get(key) for key in HISTORY_COLUMNS}
    new["verified"] = _verified(outcome)
    new["runs"] = 1
    new["last_error"] = outcome.get("error")
    if earlier is not None:
        new["runs"] = int(earlier.get("runs") or 1) + 1
        if _verified(earlier) and (not new["verified"] or outcome.get("status") != "verified"):
            # Skipped or failed after a verified submission: that submission still counts.
            kept = {key: earlier.get(key) for key in HISTORY_COLUMNS}
            kept.update(verified=True, runs=new["runs"], last_error=outcome.get("error"))
            for key in ("corr_with_example", "submission_id"):
                if kept.get(key) is None:
                    kept[key] = outcome.get(key)
            new = kept
    # Numerai's scores of the round stay while the submission they score stands.
    same = earlier is not None and earlier.get("submission_id") == new.get("submission_id")
    new.update({key: earlier.get(key) if same and earlier else None for key in SCORE_COLUMNS})
    rows = [dict(r) for r in previous if r.get("round") != number]
    rows.append(new)
    return sorted(rows, key=lambda r: int(r.get("round") or 0), reverse=True)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def history_summary(model: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One paragraph over a model's rounds: verified, late, missed, mean correlation."""
    verified = [r for r in rows if _verified(r)]
    late = sum(1 for r in verified if r.get("late"))
    missed = len(rows) - len(verified)
    corrs = [
        float(r["corr_with_example"]) for r in verified if r.get("corr_with_example") is not None
    ]
    mean_corr = f"{sum(corrs) / len(corrs):.4f}" if corrs else "-"
    return (
        f"{model}: {_plural(len(rows), 'round')}, {len(verified)} verified "
        f"({late} late), {missed} missed; "
        f"mean correlation with the example predictions {mean_corr}"
    )


def apply_scores(
    rows: Sequence[Mapping[str, Any]], scores: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The history with Numerai's latest scores (corr, mmc, final) set on the rows of their rounds.

    A round Numerai has not scored (or a run that could not read scores) keeps what it had.
    """
    updated = []
    for row in rows:
        new = {key: None for key in SCORE_COLUMNS} | dict(row)
        found = scores.get(int(row.get("round") or 0))
        if found is not None:
            new["numerai_corr"] = found.get("corr")
            new["numerai_mmc"] = found.get("mmc")
            new["scores_final"] = bool(found.get("final"))
        updated.append(new)
    return updated


def _scored(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, float]]:
    """(round, score) of the rounds with that score, oldest first."""
    return sorted((int(r["round"]), float(r[key])) for r in rows if r.get(key) is not None)


def score_trend(rows: Sequence[Mapping[str, Any]], window: int = TREND_ROUNDS) -> str | None:
    """The mean Numerai corr of the latest `window` scored rounds against the `window` before."""
    corrs = [value for _, value in _scored(rows, "numerai_corr")]
    if not corrs:
        return None
    recent = corrs[-window:]
    mean = sum(recent) / len(recent)
    text = f"Numerai corr: mean {mean:+.4f} over the last {_plural(len(recent), 'scored round')}"
    before = corrs[-2 * window : -window]
    if before:
        earlier = sum(before) / len(before)
        change = mean - earlier
        direction = "up" if change > 0 else "down" if change < 0 else "flat"
        text += f", {direction} {abs(change):.4f} from {earlier:+.4f} over the {len(before)} before"
    return text


def history_markdown(model: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The history's description: its summary, the corr trend, a chart of the scores per round."""
    parts = [history_summary(model, rows)]
    if (trend := score_trend(rows)) is not None:
        parts.append(trend)
        series = {
            name: points
            for name, key in (("corr", "numerai_corr"), ("mmc", "numerai_mmc"))
            if (points := [(float(n), v) for n, v in _scored(rows, key)])
        }
        svg = line_chart(
            series,
            title=f"{model}: Numerai scores per round",
            x_label="round",
            y_label="score",
            zero_line=True,
        )
        parts.append(markdown_image(svg, f"{model}: Numerai corr and mmc per round"))
    return "\n\n".join(parts)
