"""The demo report in a real browser: headless Chromium opens the file from disk, with no network.

Chromium comes from the operating system (``.ci/run`` installs Debian's ``chromium`` package) and is
driven through Playwright with ``executable_path``; the test is skipped, with the reason, only where
no Chromium binary exists.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bayes_ab.checkins import checkin
from bayes_ab.report import write_report
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, FAST, ROOT

SECTIONS = ("headline", "quality", "metrics", "segments", "guardrails", "trace", "trajectory", "family", "prior")
SCREENSHOTS = Path(os.environ.get("BAYES_AB_SCREENSHOTS", ROOT / "reports" / "screenshots"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> Path:
    """The demo experiment's report after two check-ins (so every section has content)."""
    sys.path.insert(0, str(EXAMPLES / "push_notification"))
    from generate import generate      # the demo's own generator, from its known truth

    out = tmp_path_factory.mktemp("browser")
    spec = load_spec(EXAMPLES / "push_notification" / "spec.yaml")
    users = generate(60_000, 7)
    checkin(spec, users.iloc[:30_000], stage=5, days=2, as_of="2026-03-01T09:00:00Z", models_dir=out / "models",
            sampler=FAST)
    last = checkin(spec, users, stage=25, days=4, as_of="2026-03-05T09:00:00Z", models_dir=out / "models",
                   sampler=FAST)
    return write_report(last.analysis, out / "reports", last.recommendation, out / "models")


def test_demo_report_renders_in_chromium_without_errors_or_requests(demo_report):
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    from playwright.sync_api import sync_playwright

    assert demo_report.stat().st_size < 3_000_000
    errors, requests = [], []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(demo_report.as_uri(), wait_until="load")
        for section in SECTIONS:
            heading = page.locator(f"section#{section} h2")
            assert heading.count() == 1 and heading.is_visible(), section
        images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        assert images and all(ok for _, ok in images), images
        alts = " | ".join(alt for alt, _ in images)
        for expected in ("relative lift", "forest plot", "probability of harm", "P(beat control) and expected loss",
                         "users so far", "prior and posterior", "probabilities the decision turned on"):
            assert expected in alts, (expected, alts)
        # every table stays inside its section's column (a wide one scrolls in its own box), at 1,400 px too
        for width in (1366, 1400):
            page.set_viewport_size({"width": width, "height": 900})
            overflow = page.evaluate("Array.from(document.querySelectorAll('section table')).map(t => "
                                     "t.getBoundingClientRect().right - t.closest('section').getBoundingClientRect().right)")
            assert overflow and max(overflow) <= 0.5, (width, max(overflow))
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "push_notification.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == [] and requests == []
    assert shot.stat().st_size > 50_000


def test_demo_report_prints_with_the_review_card_on_page_one(demo_report):
    """Printed (headless Chromium's print-to-PDF, A4): the review card is on page one, and nothing on that
    page reaches past the right margin; page one is kept as an image beside the screenshot."""
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    import numpy as np
    import pypdfium2
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pdf_path = SCREENSHOTS / "push_notification.pdf"
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=FLAGS)
        # the printable width of an A4 page with the report's 12 mm side margins, in CSS pixels
        page = browser.new_page(viewport={"width": round((210 - 24) / 25.4 * 96), "height": 1000})
        page.goto(demo_report.as_uri(), wait_until="load")
        page.emulate_media(media="print")
        overflowing = page.evaluate("""() => {
            const width = document.documentElement.clientWidth;
            return Array.from(document.querySelectorAll('body *'))
                .filter(e => e.getBoundingClientRect().right > width + 1)
                .map(e => e.tagName + (e.id ? '#' + e.id : '') + ' ' + Math.round(e.getBoundingClientRect().right))
                .slice(0, 8);
        }""")
        page.pdf(path=str(pdf_path), prefer_css_page_size=True, print_background=True)
        browser.close()
    assert overflowing == [], overflowing
    document = pypdfium2.PdfDocument(str(pdf_path))
    first = document[0]
    # words as the PDF lays them out: a table header may wrap ("probability it / helps") with the figures' widths
    text = " ".join(first.get_textpage().get_text_range().split())
    for expected in ("Review card", "what the rule reads", "trade_conversion", "notification_opt_out",
                     "What would change it"):
        assert expected in text, (expected, text[:600])
    image = first.render(scale=1.5).to_pil()
    image.save(SCREENSHOTS / "push_notification_page1.png")
    ink = np.flatnonzero((np.asarray(image.convert("L")) < 245).any(axis=0))
    margin = image.width * 12 / 210
    assert ink.size and ink.max() < image.width - margin * 0.9, (ink.max(), image.width)
    assert len(document) > 1
