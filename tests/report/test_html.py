"""The HTML report: self-contained, every section in reading order, data-derived text escaped."""

import base64
from dataclasses import replace
import io
from xml.etree import ElementTree
import re

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze, analyze_stats
from bayes_ab.families.count import count_stats
from bayes_ab.families.retention import retention_stats
from bayes_ab.decision import recommend
from bayes_ab.intervals import CredibleLevel
from bayes_ab.report import render_report, write_report
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

EVIL = "<script>alert(1)</script>"
EVIL_ATTRIBUTE = '"><img src=x onerror=alert(2)>'
SECTIONS = ("headline", "quality", "metrics", "segments", "guardrails", "trace", "trajectory", "family", "prior",
            "glossary")
CONJUGATE = SamplerSettings(draws=300, chains=2, backend="conjugate")


def evil_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 4000
    return pd.DataFrame({
        "arm": rng.choice(["control", "treatment"], n),
        "seg": rng.choice([EVIL, EVIL_ATTRIBUTE, "a & b", "it's"], n),
        "converted": rng.random(n) < 0.2,
        "opted_out": rng.random(n) < 0.02,
    })


def evil_analysis():
    frame = evil_frame()
    spec = make_spec(segments=("seg",), metrics=[
        {"name": "converted", "family": "conversion", "column": "converted", "role": "primary"},
        {"name": "opted_out", "family": "conversion", "column": "opted_out", "role": "guardrail",
         "direction": "decrease"}])
    return analyze(spec, frame, sampler=CONJUGATE)


def test_report_escapes_data_and_needs_no_network(tmp_path):
    result = evil_analysis()
    html = render_report(result, recommend(result, 1, 0))
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html or "&quot;&gt;&lt;img" in html
    assert "a &amp; b" in html and ("it&#39;s" in html or "it&#x27;s" in html)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert not re.search(r"<(link|iframe|object|embed)\b", html)
    path = write_report(result, tmp_path)
    written = path.read_text(encoding="utf-8")
    assert path.name == "test.html" and "&lt;script&gt;" in written and "<script" not in written.lower()
    assert "probability that treatment increases converted" in html


def test_every_section_in_reading_order_with_inline_figures():
    result = evil_analysis()
    html = render_report(result, recommend(result, 1, 0))
    positions = [html.index(f'<section id="{name}">') for name in SECTIONS]
    assert positions == sorted(positions)
    figures = re.findall(r'<div class="plot" role="img" aria-label="[^"]+">(<svg .*?</svg>)</div>', html, re.S)
    assert len(figures) >= 5 and "<img" not in html
    for svg in figures:       # every figure is well-formed inline SVG without a script, its data's names escaped
        ElementTree.fromstring(svg)
        assert "<script" not in svg.lower() and "<title>" in svg      # and shows values on hover
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids))                                  # no id twice in the page
    assert "Decision trace" in html and "exposure at 1%" in html           # the rule trace is there
    assert "P(harm beyond margin)" in html and "opted_out" in html         # guardrail table
    assert "flat prior, unpooled" in html                                   # sensitivity
    assert "No check-ins recorded" in html                                  # trajectory explains its absence


def test_failed_diagnostics_are_shown_as_blocking():
    result = evil_analysis()
    failed = type(result.fits["converted"].diagnostics)(max_rhat=1.2, min_ess_bulk=50, min_ess_tail=40,
                                                        divergences=3, chains=2, draws=300)
    fits = dict(result.fits)
    fits["converted"] = type(fits["converted"])(**{**fits["converted"].__dict__, "diagnostics": failed})
    broken = type(result)(result.spec, result.stats, fits, result.effects)
    html = render_report(broken)
    assert "Blocking: the rule cannot advance or ship on these results" in html
    assert "FAILED (blocking): R-hat 1.200 &gt; 1.01" in html


def test_a_secondary_metrics_failed_fit_is_reported_but_not_blocking():
    result = evil_analysis()
    secondary = make_spec(segments=("seg",), metrics=[
        {"name": "converted", "family": "conversion", "column": "converted", "role": "primary"},
        {"name": "opted_out", "family": "conversion", "column": "opted_out", "role": "secondary",
         "direction": "decrease"}])
    failed = type(result.fits["opted_out"].diagnostics)(max_rhat=1.2, min_ess_bulk=50, min_ess_tail=40,
                                                        divergences=3, chains=2, draws=300)
    fits = dict(result.fits)
    fits["opted_out"] = type(fits["opted_out"])(**{**fits["opted_out"].__dict__, "diagnostics": failed})
    html = render_report(type(result)(secondary, result.stats, fits, result.effects))
    assert 'class="blocking"' not in html
    assert "FAILED (secondary metric: reported, blocks nothing): R-hat 1.200 &gt; 1.01" in html


def test_retention_curves_and_count_distributions_are_drawn():
    spec = make_spec(metrics=[
        {"name": "trades", "family": "count", "column": "t", "role": "primary"},
        {"name": "d7", "family": "retention", "column": "d", "observed_column": "o", "horizon": 7, "max_day": 7}])
    arms, segments = spec.arm_names, ["all"]
    rng = np.random.default_rng(1)
    hist = np.stack([np.bincount(rng.negative_binomial(1.0, 1 / (1 + m), 3000), minlength=80)[:80]
                     for m in (2.0, 2.3)])[:, None, :]
    at_risk = np.array([[[3000, 2500, 2200, 2000, 1850, 1700, 1600]], [[3000, 2550, 2260, 2070, 1920, 1780, 1690]]])
    lost = at_risk - np.concatenate([at_risk[:, :, 1:], (at_risk[:, :, -1:] * 0.94).astype(int)], axis=2)
    stats = {"trades": count_stats(arms, segments, np.arange(80), hist, "trades"),
             "d7": retention_stats(arms, segments, at_risk, lost, "d7")}
    html = render_report(analyze_stats(spec, stats, sampler=CONJUGATE))
    family = html[html.index('<section id="family">'):html.index('<section id="prior">')]
    assert family.count('<svg ') == 2 and "censored" in family and "values of 29 or more" in family


def test_report_command_writes_the_file(tmp_path, capsys):
    from bayes_ab.cli import main
    from conftest import COOKIE_CATS, EXAMPLES

    small = tmp_path / "cc.csv"
    pd.read_csv(COOKIE_CATS).sample(6000, random_state=1).to_csv(small, index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(_conjugate_spec((EXAMPLES / "cookie_cats" / "spec.yaml").read_text()))
    code = main(["report", str(spec), "--data", str(small), "--models-dir", str(tmp_path / "m"),
                 "--reports-dir", str(tmp_path / "r"), "--stage", "1", "--days", "2"])
    assert code == 0, capsys.readouterr().err
    html = (tmp_path / "r" / "cookie_cats.html").read_text(encoding="utf-8")
    assert all(f'<section id="{name}">' in html for name in SECTIONS) and "game_rounds" in html


def _conjugate_spec(text: str) -> str:
    """The Cookie Cats spec with the conjugate backend (seconds instead of minutes)."""
    return re.sub(r"sampler:\n(  .*\n)+", "sampler:\n  backend: conjugate\n  draws: 500\n  chains: 2\n", text + "\n")


@pytest.mark.parametrize("make", ["fit", "diagnostics", "arm_effect", "rule_check", "effects", "analysis",
                                  "recommendation"])
def test_result_objects_render_escaped_html_in_jupyter(make):
    result = evil_analysis()
    recommendation = recommend(result, 1, 0)
    objects = {"fit": result.fits["converted"], "diagnostics": result.fits["converted"].diagnostics,
               "arm_effect": result.effects["converted"].rows[-1], "rule_check": recommendation.reasons[0],
               "effects": result.effects["converted"], "analysis": result, "recommendation": recommendation}
    html = objects[make]._repr_html_()
    assert html.strip().startswith("<") and "<script" not in html.lower()


def test_review_card_header_and_the_arm_a_multi_arm_recommendation_is_about():
    """The card comes first (decision, one line per primary and guardrail, what would change it), the
    header names the control once, and with three arms the report names the arm and charts P(best)."""
    rng = np.random.default_rng(4)
    n = 6000
    arms = rng.choice(["control", "b", "c"], n)
    rate = np.where(arms == "c", 0.25, 0.2)             # c converts clearly better: the card is about c
    frame = pd.DataFrame({"arm": arms, "converted": rng.random(n) < rate, "opted_out": rng.random(n) < 0.02})
    spec = make_spec(arms=("control", "b", "c"), metrics=[
        {"name": "converted", "family": "conversion", "column": "converted", "role": "primary"},
        {"name": "opted_out", "family": "conversion", "column": "opted_out", "role": "guardrail",
         "direction": "decrease"}])
    result = analyze(spec, frame, sampler=CONJUGATE)
    rec = recommend(result, 50, 7)
    html = render_report(result, rec, outlook="about 3 more day(s) give an 80% chance of a decision")
    assert "Arms: control (control), b, c" in html and "(control control)" not in html
    card = html[html.index('id="review-card"'):html.index("</div>", html.index('id="review-card"'))]
    assert html.index('id="review-card"') < html.index('<section id="headline">')
    assert rec.action.replace("_", " ").upper() in card and "about arm <strong>c</strong>" in card
    assert "converted" in card and "opted_out" in card and "what the rule reads" in card
    assert "within its 2% margin" in card and "worse by more" in card and "helps " in card
    assert "about 3 more day(s)" in card
    assert 'aria-label="P(best) of every arm per metric"' in html
    two_arms = evil_analysis()
    two = render_report(two_arms, recommend(two_arms, 1, 0))
    assert "about arm" not in two and "P(best) of every arm" not in two
    assert "What would change it:</strong> exposure at 1% is 0 days" in two      # held for exposure: it says what is short


def test_stopping_rule_figures_are_a_table_and_the_missing_piece_is_named(tmp_path):
    from bayes_ab.stopping import compare_rules

    spec = make_spec(metrics=[{"name": "converted", "family": "conversion", "column": "converted"}],
                     plan={"daily_users": 20_000, "days": 6, "baseline": {"converted": 0.2}, "experiments": 6})
    result = analyze(spec, pd.DataFrame({"arm": ["control", "treatment"] * 500, "converted": [0, 1] * 500}),
                     sampler=CONJUGATE)
    assert "the spec has a plan; run <code>bayes-ab simulate SPEC</code>" in render_report(result)
    rates = compare_rules(spec, rules=("default", "sequential"))
    html = render_report(result, operating=rates.rules)
    table = html[html.index("Stopping rule's simulated error rates"):]
    assert "<pre>" not in table.split("</section>")[0]
    assert table.count("<td class=\"l\">sequential</td>") == 3


def test_each_effects_table_downloads_as_csv_with_its_numbers_and_no_formula():
    rng = np.random.default_rng(8)
    n = 3000
    frame = pd.DataFrame({"arm": rng.choice(["control", "treatment"], n),
                          "seg": rng.choice(['=HYPERLINK("http://x","y")', "東京", "-1 plan"], n),
                          "converted": rng.random(n) < 0.2})
    result = analyze(make_spec(segments=("seg",)), frame, sampler=CONJUGATE)
    html = render_report(result, recommend(result, 1, 0))
    links = re.findall(r'<a download="([^"]+)" href="data:text/csv;charset=utf-8;base64,([^"]+)"', html)
    assert [name for name, _ in links] == ["converted-effects.csv"]
    text = base64.b64decode(links[0][1]).decode("utf-8")
    assert text.startswith("\ufeff")
    table = pd.read_csv(io.StringIO(text[1:]))
    expected = result.effects["converted"].to_pandas()
    assert list(table.columns) == list(expected.columns) and len(table) == len(expected)
    np.testing.assert_allclose(table["rel_low"].to_numpy(float), expected["rel_low"].to_numpy(float), rtol=1e-12)
    # a name a spreadsheet would run is quoted; other names and numbers stay as they are
    assert set(table["segment"]) == {"overall", '\'=HYPERLINK("http://x","y")', "東京", "'-1 plan"}
    assert (table["rel_lift"].dropna() < 1).all() and table["users"].dtype.kind == "i"


def test_the_glossary_defines_every_metric_and_the_interval_the_tables_use():
    result = evil_analysis()
    html = render_report(result, recommend(result, 1, 0))
    glossary = html[html.index('<section id="glossary">'):]
    assert "share of users whose &#39;converted&#39; is 1" in glossary or "share of users whose 'converted' is 1" in glossary
    assert "guardrail; may be worse by at most" in glossary and "decrease is better" in glossary
    assert "90% interval</dt><dd>the range holding the lift with probability 90% under the model, equal-tailed" in glossary
    assert "<th>90% interval</th>" in html
    hdi_spec = replace(result.spec, interval=CredibleLevel(0.9, "hdi"))
    hdi_result = analyze(hdi_spec, evil_frame(), sampler=CONJUGATE)
    page = render_report(hdi_result, recommend(hdi_result, 1, 0))
    assert "<th>90% HDI</th>" in page and "highest-density: the narrowest range" in page
