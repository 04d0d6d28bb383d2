"""Reading back the charts the reports carry: inline SVG images in Markdown."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"
_IMAGE = re.compile(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


def parse_svg(text: str | bytes) -> ET.Element:
    """An SVG document parsed (invalid XML raises); only the project's own output is parsed."""
    return ET.fromstring(text)  # noqa: S314 -- our own charts, not untrusted input


def inline_svgs(markdown: str) -> list[ET.Element]:
    """The SVG documents of the Markdown's inline data-URI images."""
    return [parse_svg(base64.b64decode(data)) for data in _IMAGE.findall(markdown)]


def series(svg: ET.Element) -> list[ET.Element]:
    """The chart's series groups, in drawing order."""
    return [g for g in svg.iter(f"{SVG}g") if g.get("class") == "series"]


def series_names(svg: ET.Element) -> list[str]:
    """The full names of the chart's series."""
    return [g.attrib["data-name"] for g in series(svg)]
