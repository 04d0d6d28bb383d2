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
# Beside those, each history row counts the runs that worked on its round and keeps the last error.


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
