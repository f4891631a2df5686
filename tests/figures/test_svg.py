"""Inline SVG of a matplotlib figure: titles on the drawn pieces, or together when they do not match."""

from __future__ import annotations

import io
from xml.etree import ElementTree

import matplotlib.pyplot as plt

from bayes_ab.figures.svg import hover, inline_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_titles_that_do_not_match_the_drawn_markers_go_on_the_group_together():
    fig, ax = plt.subplots()
    line, = ax.plot([0, 1, 2], [0, 1, 2], marker="o")
    titles: dict = {}
    hover(line, ["a", "b"], titles)                                  # three markers, two texts
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = ElementTree.fromstring(str(inline_svg(buffer.getvalue(), titles)))
    assert [t.text for t in svg.iter(f"{SVG}title")] == ["a\nb"]


def test_a_style_and_metadata_become_the_roots_style_and_references_follow_the_renamed_ids():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], marker="s")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    raw = buffer.getvalue()
    svg = ElementTree.fromstring(str(inline_svg(raw, {})))
    assert svg.find(f".//{SVG}style") is None and svg.find(f".//{SVG}metadata") is None
    assert svg.get("style") == "stroke-linejoin: round; stroke-linecap: butt;" and svg.get("class") == "figure"
    ids = {e.get("id") for e in svg.iter() if e.get("id")}
    prefixes = {i.split("-", 1)[0] for i in ids}
    assert len(prefixes) == 1 and all(i.startswith("f") for i in ids)
    xlink = "{http://www.w3.org/1999/xlink}href"
    uses = [e.get(xlink)[1:] for e in svg.iter(f"{SVG}use")]
    assert uses and set(uses) <= ids


def test_control_characters_in_a_name_become_replacement_characters_not_a_parse_error():
    from bayes_ab import figures

    rows = [{"label": "bad\x01name\x0b", "unpooled": (0.01, -0.01, 0.03), "pooled": (0.01, -0.01, 0.03)}]
    svg = ElementTree.fromstring(str(figures.forest(rows, "t\x00")))
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert "bad\ufffdname\ufffd" in texts and "t\ufffd" in texts
    assert [t.text for t in svg.iter(f"{SVG}title")][0].startswith("bad\ufffdname\ufffd, unpooled: ")
