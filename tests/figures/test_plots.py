"""Report figures: text kept as text (any script a name is written in is drawn by the browser), values on hover,
ids of their own so that many figures share one page."""

from __future__ import annotations

import re
import warnings
from xml.etree import ElementTree

import numpy as np

from bayes_ab import figures

SVG = "{http://www.w3.org/2000/svg}"


def _svg(markup: str) -> ElementTree.Element:
    assert markup.startswith("<svg ")
    return ElementTree.fromstring(markup)


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


def test_every_point_of_a_forest_plot_shows_its_numbers_on_hover():
    rows = [{"label": "new", "unpooled": (0.021, -0.013, 0.055), "pooled": (0.015, -0.005, 0.04)},
            {"label": "old", "unpooled": (-0.01, -0.03, 0.01), "pooled": (-0.004, -0.02, 0.012)}]
    svg = _svg(figures.forest(rows, "t"))
    titles = [t.text for t in svg.iter(f"{SVG}title")]
    assert titles == ["new, unpooled: +2.10% (-1.30% to +5.50%)", "old, unpooled: -1.00% (-3.00% to +1.00%)",
                      "new, pooled: +1.50% (-0.50% to +4.00%)", "old, pooled: -0.40% (-2.00% to +1.20%)"]
    # each title belongs to one marker: a group holding the title and one <use> of the marker
    for group in svg.iter(f"{SVG}g"):
        if group.find(f"{SVG}title") is not None:
            assert len(group.findall(f"{SVG}use")) == 1 and group[0].tag == f"{SVG}title"   # the title comes first


def test_bars_and_curves_get_their_titles_and_a_figure_has_ids_of_its_own():
    bars = _svg(figures.guardrail_bars(["opt_out", "latency"], [0.2, 0.995], 0.99))
    assert [t.text for t in bars.iter(f"{SVG}title")] == [
        "opt_out: P(worse than control by more than the margin) 20.0% (rollback at 99%)",
        "latency: P(worse than control by more than the margin) 99.5% (rollback at 99%)"]
    one, other = (figures.lift_density({"push": np.random.default_rng(s).normal(0.03, 0.01, 4000)}, 0.01, "t")
                  for s in (1, 2))
    ids = [re.findall(r' id="([^"]+)"', str(svg)) for svg in (one, other)]
    assert ids[0] and not set(ids[0]) & set(ids[1])                  # two figures on one page never share an id
    for svg in (one, other):                                         # and every reference points inside its figure
        for target in re.findall(r'(?:href="#|url\(#)([^")]+)', str(svg)):
            assert f' id="{target}"' in str(svg)
    assert "<style" not in str(one) and "stroke-linejoin" in _svg(one).get("style")
    (title,) = [t.text for t in _svg(one).iter(f"{SVG}title")]
    assert re.fullmatch(r"push: median lift \+[23]\.\d\d%; 90% of the posterior between \+1\.\d\d% and \+4\.\d\d%", title)


def test_the_uplift_curve_shows_each_points_value_in_the_metrics_unit():
    svg = _svg(figures.uplift_curve([0.0, 0.5, 1.0], [0.0, 0.03, 0.04], [0.0, 0.02, 0.03], [0.0, 0.04, 0.05],
                                    "percentage points", 100.0, "visit: uplift curve"))
    titles = [t.text for t in svg.iter(f"{SVG}title")]
    assert titles == ["top 0%: +0 percentage points (+0 to +0)", "top 50%: +3 percentage points (+2 to +4)",
                      "top 100%: +4 percentage points (+3 to +5)"]
