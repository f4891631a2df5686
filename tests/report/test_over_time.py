"""The lift over time: one point per look, metric and arm with its interval and a tooltip of its numbers, dates on
the x axis, escaped text; rendered in the report after six check-ins, in headless Chromium."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bayes_ab.checkins import checkin, history
from bayes_ab.checkins.history import History
from bayes_ab.checkins.ledger import LookRecord
from bayes_ab.report import write_report
from bayes_ab.report.over_time import exposure_over_time, lift_over_time, lift_series
from bayes_ab.spec import SamplerSettings

from conftest import make_spec
from test_browser import FLAGS, chromium

CONJUGATE = SamplerSettings(draws=400, chains=2, seed=2, backend="conjugate")
STAGES = (1, 5, 5, 25, 25, 50)


@pytest.fixture(scope="module")
def looked(tmp_path_factory):
    root = tmp_path_factory.mktemp("over_time")
    rng = np.random.default_rng(6)
    n = 60_000
    arm = rng.choice(["control", "push"], n)
    data = pd.DataFrame({"arm": arm, "converted": (rng.random(n) < np.where(arm == "push", 0.11, 0.10)).astype(int),
                         "opted_out": (rng.random(n) < 0.02).astype(int)})
    spec = make_spec([{"name": "converted", "family": "conversion", "column": "converted"},
                      {"name": "opt_out", "family": "conversion", "column": "opted_out", "role": "guardrail",
                       "direction": "decrease", "margin": 0.1}], arms=("control", "push"), name="over_time")
    for i, stage in enumerate(STAGES):
        done = checkin(spec, data.iloc[: n * (i + 1) // len(STAGES)], stage=stage, days=i + 1,
                       as_of=f"2026-05-{2 * i + 1:02d}T09:00:00Z", models_dir=root / "models", sampler=CONJUGATE)
    report = write_report(done.analysis, root / "reports", done.recommendation, root / "models")
    return spec, history("over_time", root / "models"), report


def test_each_look_is_a_point_with_its_interval_and_numbers(looked):
    spec, past, _ = looked
    svg = lift_over_time(past, "converted", "primary", True, 0.01, None, 0.9)
    titles = re.findall(r"<circle[^>]*><title>([^<]*)</title>", svg)
    assert len(titles) == len(STAGES)
    last = past.looks[-1].payload["metrics"]["converted"]["rows"]
    push = next(r for r in last if r["is_overall"] and r["arm"] == "push")
    assert titles[-1] == (f"push, look 6 (11 May 2026, 09:00 UTC, stage 50%): {100 * push['rel_lift']:+.1f}% "
                          f"(90% interval {100 * push['rel_low']:+.1f}% to {100 * push['rel_high']:+.1f}%), "
                          f"{push['users']:,} users")
    # dates, not look numbers, on the x axis: looks two days apart are evenly spaced, and the first is at the left
    xs = [float(x) for x in re.findall(r'<circle cx="([0-9.]+)"', svg)]
    gaps = np.diff(xs)
    assert np.allclose(gaps, gaps[0]) and xs[0] == pytest.approx(62.0)
    assert "guardrail margin" not in svg and svg.count("ROPE") == 2
    guard = lift_over_time(past, "opt_out", "guardrail", False, 0.01, 0.1, 0.9)
    assert "guardrail margin: worse by 10%" in guard
    assert len(lift_series(past, "opt_out")["push"]) == len(STAGES)
    assert lift_over_time(past, "revenue", "primary", True, 0.01, None, 0.9) is None
    exposure = exposure_over_time(past, ("control", "push"))
    assert len(re.findall(r"<circle", exposure)) == 2 * len(STAGES)


def test_text_in_the_svg_is_escaped():
    row = {"is_overall": True, "is_control": False, "arm": "<b>&", "rel_lift": 0.1, "rel_low": 0.0, "rel_high": 0.2,
           "users": 10}
    look = LookRecord(1, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "f", None, "looks/x",
                      {"users": 20, "stage": 5, "metrics": {"m<1>": {"role": "primary", "rows": [row]}}})
    svg = lift_over_time(History("e", (look,)), "m<1>", "primary", True, 0.01, None, 0.9)
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg and "m&lt;1&gt;" in svg


def test_the_report_shows_the_lift_over_time_of_every_primary_and_guardrail_in_chromium(looked):
    _, _, report = looked
    page_text = report.read_text()
    assert page_text.count('class="over-time"') == 3                   # converted, opt_out, exposure
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri(), wait_until="load")
        figures = page.locator("#trajectory svg.over-time")
        assert figures.count() == 3
        for index in (0, 1):                                           # one interval and point per look
            assert figures.nth(index).locator("g.look").count() == len(STAGES)
        point = figures.nth(0).locator("g.look circle").last
        point.hover()
        tooltip = point.evaluate("c => c.querySelector('title').textContent")
        assert tooltip.startswith("push, look 6 (11 May 2026, 09:00 UTC, stage 50%): +")
        width = page.evaluate("document.querySelector('#trajectory svg.over-time').getBoundingClientRect().width")
        content = page.evaluate("document.querySelector('#trajectory').getBoundingClientRect().width")
        assert width <= content + 1
        browser.close()
    assert errors == []
