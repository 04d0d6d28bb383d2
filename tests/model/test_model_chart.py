"""SVG line charts: valid XML whatever the names and values, one series per name."""

from __future__ import annotations

import base64

from model.chart import LEGEND_CHARS, distribution_chart, line_chart, markdown_image
from tests.charts import SVG, parse_svg, series


def test_names_that_are_markup_stay_text() -> None:
    name = 'a<b>&"c"' + "x" * 40
    svg = parse_svg(line_chart({name: [(1, 0.1), (2, -0.2)]}, title="t<", x_label="x", y_label="y"))
    (group,) = series(svg)
    assert group.attrib["data-name"] == name
    legend = [t.text for t in group.iter(f"{SVG}text")]
    assert legend == [name[: LEGEND_CHARS - 1] + "…"]


def test_one_point_and_flat_series_still_draw() -> None:
    for points in ({"m": [(5.0, 0.02)]}, {"m": [(1.0, 0.0), (2.0, 0.0)]}, {}):
        parse_svg(line_chart(points, title="t", x_label="x", y_label="y", zero_line=True))


def test_distribution_chart_draws_the_reference_dashed() -> None:
    svg = parse_svg(distribution_chart({"example": [1] * 10, "alpha": [0] * 10}, "example"))
    lines = {g.attrib["data-name"]: next(g.iter(f"{SVG}polyline")) for g in series(svg)}
    assert "stroke-dasharray" in lines["example"].attrib
    assert "stroke-dasharray" not in lines["alpha"].attrib


def test_markdown_image_is_a_data_uri_of_the_svg() -> None:
    text = markdown_image("<svg/>", "a [chart]")
    assert text.startswith("![a (chart)](data:image/svg+xml;base64,")
    assert base64.b64decode(text.split("base64,")[1].rstrip(")")) == b"<svg/>"
