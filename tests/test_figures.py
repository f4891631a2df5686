"""Report figures keep their text as text, so that any script a name is written in is drawn by the browser."""

from __future__ import annotations

import base64
import warnings
from xml.etree import ElementTree

from bayes_ab import figures

SVG = "{http://www.w3.org/2000/svg}"


def _svg(uri: str) -> ElementTree.Element:
    assert uri.startswith("data:image/svg+xml;base64,")
    return ElementTree.fromstring(base64.b64decode(uri.split(",", 1)[1]).decode("utf-8"))


def test_cjk_and_emoji_segment_names_are_text_in_the_figure_and_warn_nothing():
    rows = [{"label": label, "unpooled": (0.02, -0.01, 0.05), "pooled": (0.015, -0.005, 0.04)}
            for label in ("東京 (Tokyo)", "서울", "🚀 power users", "overall")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # matplotlib's font lacks these glyphs: no warning may escape
        uri = figures.forest(rows, "conversion: 相対リフト by segment")
    texts = ["".join(t.itertext()) for t in _svg(uri).iter(f"{SVG}text")]
    for label in ("東京 (Tokyo)", "서울", "🚀 power users", "conversion: 相対リフト by segment"):
        assert label in texts


def test_figures_are_the_same_bytes_on_every_run():
    """No date, no random clip-path ids: a report rendered twice from one result is one file."""
    rows = [{"label": "a", "unpooled": (0.02, -0.01, 0.05), "pooled": (0.015, -0.005, 0.04)}]
    assert figures.forest(rows, "t") == figures.forest(rows, "t")


def test_markup_in_a_name_is_escaped_text_not_an_element():
    rows = [{"label": '<script>alert(1)</script> & "x"', "unpooled": (0.0, -0.1, 0.1), "pooled": (0.0, -0.1, 0.1)}]
    svg = _svg(figures.forest(rows, "t"))
    assert not list(svg.iter(f"{SVG}script")) and not list(svg.iter("script"))
    assert '<script>alert(1)</script> & "x"' in ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
