"""Small SVG line charts, and the Markdown that shows one inline: pure functions, no Prefect.

Prefect's UI renders a Markdown image as an <img> with the given source, so a chart travels
inside the artifact as a data URI: no file to host, nothing for the UI to fetch.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

# Distinguishable on white and for the common colour blindnesses (Okabe and Ito's palette).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
REFERENCE_COLOUR = "#999999"
WIDTH, HEIGHT = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 170, 16, 36  # the legend sits in the right margin
LEGEND_CHARS = 20

Point = tuple[float, float]


def short(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    reference: str | None = None,
    zero_line: bool = False,
) -> str:
    """An SVG document: one polyline (and dots) per named series, a legend naming each.

    `reference` names a series drawn dashed in grey (a baseline such as the example model).
    Each series is a <g class="series"> carrying its full name in data-name.
    """
    points = [p for values in series.values() for p in values]
    xs = [x for x, _ in points] or [0.0, 1.0]
    ys = [y for _, y in points] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys + ([0.0] if zero_line else [])), max(ys + ([0.0] if zero_line else []))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0 or 1) * 0.5, y1 + abs(y1 or 1) * 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def px(x: float) -> float:
        return _LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return _TOP + (y1 - y) / (y1 - y0) * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
    ]
    for tick in _ticks(y0, y1):
        y = py(tick)
        out.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
        )
    for tick in _ticks(x0, x1, 5):
        x = px(tick)
        out.append(
            f'<text x="{x:.1f}" y="{_TOP + plot_h + 14}" text-anchor="middle">{_label(tick)}</text>'
        )
    if zero_line and y0 < 0 < y1:
        out.append(
            f'<line x1="{_LEFT}" y1="{py(0):.1f}" x2="{_LEFT + plot_w}" y2="{py(0):.1f}" '
            'stroke="#666"/>'
        )
    out.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#ccc"/>'
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(12 {_TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    colours = iter(PALETTE * (len(series) // len(PALETTE) + 1))
    for index, (name, values) in enumerate(series.items()):
        is_reference = name == reference
        colour = REFERENCE_COLOUR if is_reference else next(colours)
        dash = ' stroke-dasharray="5 3"' if is_reference else ""
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in values)
        legend_y = _TOP + 8 + index * 16
        out.append(f'<g class="series" data-name={quoteattr(name)}>')
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"/>'
            for x, y in values
        ]
        out.append(
            f'<line x1="{WIDTH - _RIGHT + 10}" y1="{legend_y}" x2="{WIDTH - _RIGHT + 28}" '
            f'y2="{legend_y}" stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{WIDTH - _RIGHT + 32}" y="{legend_y + 4}">'
            f"{escape(short(name, LEGEND_CHARS))}</text>"
        )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def distribution_chart(histograms: Mapping[str, Sequence[int]], reference: str | None) -> str:
    """Each model's share of predictions per bin over [0, 1], one line per model."""
    series: dict[str, list[Point]] = {}
    for name, counts in histograms.items():
        total = sum(counts) or 1
        width = 1 / len(counts)
        series[name] = [((i + 0.5) * width, c / total) for i, c in enumerate(counts)]
    return line_chart(
        series,
        title="Prediction distribution",
        x_label=f"prediction ({len(next(iter(histograms.values()), []))} bins over [0, 1])",
        y_label="share of rows",
        reference=reference,
    )


def markdown_image(svg: str, alt: str) -> str:
    """Markdown showing the SVG inline, as a base64 data URI."""
    encoded = base64.b64encode(svg.encode()).decode("ascii")
    alt = alt.replace("[", "(").replace("]", ")")
    return f"![{alt}](data:image/svg+xml;base64,{encoded})"
