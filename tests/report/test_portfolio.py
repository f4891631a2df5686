"""The portfolio page: every stored experiment with its status, evidence and recommendation, linked to its
report; learned priors plotted; a damaged experiment listed with its reason; data escaped; and in Chromium
no console errors, no requests, every link resolving."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from bayes_ab.checkins import checkin
from bayes_ab.cli import main
from bayes_ab.priors import learn_prior
from bayes_ab.report import write_report
from bayes_ab.report.portfolio import portfolio_rows, write_portfolio

from conftest import make_spec, seal_outputs
from test_browser import FLAGS, chromium


def _users(n, rate_c, rate_t, seed):
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "treatment"], n)
    return pd.DataFrame({"arm": arm, "converted": (rng.random(n) < np.where(arm == "control", rate_c, rate_t)).astype(int)})


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = tmp_path_factory.mktemp("portfolio")
    models, reports = root / "models", root / "reports"
    metric = [{"name": "converted", "family": "conversion", "column": "converted", "role": "primary"}]
    for name, (rate_t, stage, days) in {"winner": (0.13, 50, 14), "loser": (0.07, 50, 14),
                                        "undecided": (0.10, 5, 1)}.items():
        about = {"description": f"the {name} <test>", "owner": "growth & retention"} if name == "winner" else {}
        spec = make_spec(metrics=metric, name=name, **about)
        look = checkin(spec, _users(100_000, 0.10, rate_t, 1), stage=stage, days=days, as_of="2026-03-01T09:00:00Z",
                       models_dir=models)
        if name != "undecided":
            write_report(look.analysis, reports, look.recommendation, models)
    hostile = models / "one_off"
    hostile.mkdir()
    (hostile / "summary.json").write_text(json.dumps({"experiment": "one_off", "interval": 0.9}))
    pd.DataFrame([{"metric": "m", "arm": "<script>alert(1)</script>", "is_control": False, "is_overall": True,
                   "rel_lift": 0.01, "rel_low": 0.0, "rel_high": 0.02, "p_beat_control": 0.9}]).to_csv(
        hostile / "effects.csv", index=False)
    seal_outputs(hostile)
    edited = models / "edited"                 # an analysis whose summary was changed after it was written
    edited.mkdir()
    (edited / "summary.json").write_text(json.dumps({"experiment": "edited", "interval": 0.9}))
    (edited / "effects.csv").write_bytes((hostile / "effects.csv").read_bytes())
    seal_outputs(edited)
    (edited / "summary.json").write_text(json.dumps({"experiment": "edited", "interval": 0.5}))
    (models / "broken").mkdir()
    (models / "broken" / "ledger.sqlite").write_bytes(b"not a database at all")
    rng = np.random.default_rng(3)
    s = rng.uniform(0.002, 0.01, 30)
    pd.DataFrame({"experiment": [f"e{i}" for i in range(30)], "metric": "converted",
                  "estimate": 0.001 + 0.004 * rng.standard_t(2, 30) + rng.normal(0, s),
                  "standard_error": s}).to_csv(root / "past.csv", index=False)
    _, _, prior = learn_prior(root / "priors" / "converted.yaml", tables=[str(root / "past.csv")])
    return models, reports, prior


def test_rows_carry_status_evidence_and_links(stored):
    models, reports, _ = stored
    rows = {r.experiment: r for r in portfolio_rows(models, reports)}
    assert rows["winner"].status == "shipped" and rows["loser"].status == "rolled back"
    assert rows["undecided"].status == "running" and rows["undecided"].recommendation.startswith("Advance to 25%")
    assert rows["winner"].report == "winner.html" and rows["undecided"].report is None
    assert rows["winner"].rel_lift == pytest.approx(0.3, abs=0.06) and rows["winner"].p_beat_control > 0.999
    assert rows["loser"].rel_high < 0 and rows["winner"].last_look == "look 1, 1 Mar 2026, 09:00 UTC, stage 50%"
    assert rows["one_off"].status == "analysed"
    assert rows["broken"].status == "unreadable" and rows["broken"].problem
    assert rows["edited"].status == "unreadable" and "summary.json: not the file of the run" in rows["edited"].problem


def test_page_is_escaped_self_contained_and_clean_in_chromium(stored):
    models, reports, prior = stored
    page_path = write_portfolio(models, reports, [prior])
    html = page_path.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="winner.html"' in html and 'href="undecided.html"' not in html
    assert "learned from 30 experiments" in html
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    from playwright.sync_api import sync_playwright

    errors, requests = [], []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=FLAGS)
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(page_path.as_uri(), wait_until="load")
        assert page.locator("section#experiments tbody tr").count() == 6      # winner, loser, undecided, one_off, broken, edited
        page.locator("th", has_text="P(beat control)").click()          # sort by P(beat control), ascending
        shown = page.evaluate("Array.from(document.querySelectorAll('#experiment-table tbody tr'))"
                              ".map(r => parseFloat(r.getAttribute('data-p'))).filter(x => !isNaN(x))")
        assert shown == sorted(shown) and len(shown) >= 3
        page.locator("#filter").fill("winner")
        assert page.evaluate("Array.from(document.querySelectorAll('#experiment-table tbody tr'))"
                             ".filter(r => r.style.display !== 'none').length") == 1
        page.locator("#filter").fill("")
        figures = page.evaluate("Array.from(document.querySelectorAll('div.plot svg.figure')).map("
                                "s => s.getBoundingClientRect().width > 100 && s.querySelectorAll('title').length > 0)")
        assert figures == [True]                    # the learned prior's figure, drawn, its curves with hover titles
        links = page.evaluate("Array.from(document.links).map(a => a.href)")
        assert len(links) == 2
        for link in links:
            target = browser.new_page()
            response = target.goto(link)
            assert response is not None and response.ok and "bayes-ab report" in target.title(), link
            target.close()
        browser.close()
    assert errors == [] and requests == []


def test_the_specs_description_and_owner_reach_the_portfolio_and_the_report_escaped(stored):
    models, reports, _ = stored
    rows = {r.experiment: r for r in portfolio_rows(models, reports)}
    assert rows["winner"].owner == "growth & retention" and rows["winner"].description == "the winner <test>"
    assert rows["loser"].owner is None
    page = write_portfolio(models, reports).read_text()
    assert "the winner &lt;test&gt;" in page and "growth &amp; retention" in page
    report = (reports / "winner.html").read_text()
    assert "<p>the winner &lt;test&gt;</p>" in report and "Owner: growth &amp; retention" in report


def test_a_recommendation_of_one_analysis_is_not_shown_as_taken(tmp_path):
    """``analyze --stage`` that recommends a rollback: "recommended: roll back", not "rolled back" (no look recorded
    the decision); times read as a person writes them."""
    from bayes_ab.analysis import analyze
    from bayes_ab.decision import recommend

    metric = [{"name": "converted", "family": "conversion", "column": "converted", "role": "primary"}]
    result = analyze(make_spec(metrics=metric, name="once"), _users(100_000, 0.10, 0.07, 2))
    recommendation = recommend(result, 50, 14)
    assert recommendation.action == "rollback"
    result.save(tmp_path / "models", recommendation)
    row = portfolio_rows(tmp_path / "models")[0]
    assert row.status == "recommended: roll back"
    assert re.fullmatch(r"analysed \d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC", row.last_look), row.last_look


def test_cli_writes_the_portfolio(stored, capsys):
    models, reports, prior = stored
    assert main(["portfolio", "--models-dir", str(models), "--reports-dir", str(reports), "--prior", str(prior)]) == 0
    assert "index.html" in capsys.readouterr().out
    assert main(["portfolio", "--models-dir", str(models), "--reports-dir", str(reports),
                 "--prior", str(reports / "missing.yaml")]) == 2
    assert "prior file not found" in capsys.readouterr().err
    assert main(["portfolio", "--models-dir", str(models / "nowhere"), "--reports-dir", str(reports)]) == 2
    assert "nowhere: no such folder" in capsys.readouterr().err


def test_portfolio_json_validates_and_holds_the_rows_the_page_shows(stored, capsys):
    from test_documents import strict, validate

    models, reports, _ = stored
    code = main(["portfolio", "--models-dir", str(models), "--reports-dir", str(reports), "--json"])
    captured = capsys.readouterr()
    assert code == 0 and "portfolio:" in captured.err
    doc = strict(captured.out)
    validate("portfolio", doc)
    rows = {r["experiment"]: r for r in doc["rows"]}
    assert rows["winner"]["status"] == "shipped" and rows["winner"]["owner"] == "growth & retention"
    assert rows["broken"]["status"] == "unreadable" and rows["broken"]["rel_lift"] is None
    assert doc["page"].endswith("index.html")
