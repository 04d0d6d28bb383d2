"""Round reports and per-model history, rendered as Markdown: pure functions, no Prefect."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_BARS = " ▁▂▃▄▅▆▇█"

# Columns of the round table, in order, with their headings.
ROUND_COLUMNS = (
    ("model", "model"),
    ("round", "round"),
    ("status", "status"),
    ("rows", "rows"),
    ("mean", "mean"),
    ("std", "std"),
    ("corr_with_example", "corr with example"),
    ("validation", "validation"),
    ("submission_id", "submission id"),
    ("verified", "verified"),
)
HISTORY_COLUMNS = ("round", "status", "verified", "late", "corr_with_example", "submission_id")


def sparkline(counts: Sequence[int]) -> str:
    """One character per bin, height relative to the fullest bin."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(_BARS[round(c / top * (len(_BARS) - 1))] for c in counts)


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


def round_markdown(round_number: int, rows: Sequence[Mapping[str, Any]]) -> str:
    """The round's report: the per-model table and each model's prediction distribution."""
    verified = sum(1 for r in rows if r.get("verified"))
    width = max([len("example"), *(len(str(r["model"])) for r in rows)])
    example = next((r.get("example_histogram") for r in rows if r.get("example_histogram")), None)
    chart = [f"{'example':<{width}}  |{sparkline(example)}|"] if example else []
    chart += [
        f"{r['model']:<{width}}  |{sparkline(r['histogram'])}|" for r in rows if r.get("histogram")
    ]
    errors = [f"- **{r['model']}**: {_cell(r['error'])}" for r in rows if r.get("error")]
    return (
        "\n\n".join(
            [
                f"# Numerai round {round_number}",
                f"{verified} of {len(rows)} models have a verified submission.",
                markdown_table(rows, ROUND_COLUMNS),
                "## Prediction distribution (10 bins over [0, 1])",
                "```text\n" + "\n".join(chart) + "\n```",
                *(["## Failures", "\n".join(errors)] if errors else []),
            ]
        )
        + "\n"
    )


def merge_history(
    previous: Sequence[Mapping[str, Any]], outcome: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The model's history with this round's outcome replacing any earlier one for the round."""
    rows = [dict(r) for r in previous if r.get("round") != outcome.get("round")]
    rows.append({key: outcome.get(key) for key in HISTORY_COLUMNS})
    return sorted(rows, key=lambda r: int(r.get("round") or 0), reverse=True)


def history_summary(model: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """One paragraph over a model's rounds: submitted, verified, late, missed, mean correlation."""
    verified = [r for r in rows if r.get("verified")]
    late = sum(1 for r in rows if r.get("late"))
    missed = len(rows) - len(verified)
    corrs = [
        float(r["corr_with_example"]) for r in verified if r.get("corr_with_example") is not None
    ]
    mean_corr = f"{sum(corrs) / len(corrs):.4f}" if corrs else "-"
    return (
        f"{model}: {len(rows)} rounds, {len(verified)} verified, {late} late, {missed} missed; "
        f"mean correlation with the example predictions {mean_corr}"
    )
