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

from conftest import COOKIE_CATS, EXAMPLES, FAST, ROOT, example_module

SECTIONS = ("headline", "quality", "metrics", "segments", "guardrails", "trace", "trajectory", "family", "prior",
            "glossary")
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
        figures = page.evaluate("Array.from(document.querySelectorAll('div.plot')).map(d => [d.getAttribute("
                                "'aria-label'), d.querySelector('svg').getBoundingClientRect().width > 100])")
        assert figures and all(ok for _, ok in figures), figures
        labels = " | ".join(label for label, _ in figures)
        for expected in ("relative lift", "forest plot", "probability of harm", "P(beat control) and expected loss",
                         "users so far", "prior and posterior", "probabilities the decision turned on"):
            assert expected in labels, (expected, labels)
        # a point of the forest plot shows its numbers on hover: its <title> is the browser's tooltip
        point = page.locator("div.plot[aria-label^='forest plot of trade_conversion'] svg g:has(> title)").first
        point.hover()
        tooltip = point.evaluate("g => g.querySelector('title').textContent")
        assert tooltip.startswith("overall, unpooled: +") and "% to " in tooltip, tooltip
        assert page.evaluate("document.querySelectorAll('svg.figure title').length") > 20
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


def _printed(report: Path, pdf_path: Path):
    """``report`` printed to ``pdf_path`` by headless Chromium (A4, the report's print style), with the texts of
    its headings and sentence boxes as the page shows them; the opened PDF."""
    import pypdfium2
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=FLAGS)
        page = browser.new_page()
        page.goto(report.as_uri(), wait_until="load")
        page.emulate_media(media="print")
        texts = page.evaluate("""() => ({
            headings: Array.from(document.querySelectorAll('section h2, section h3')).map(h => h.innerText),
            boxes: Array.from(document.querySelectorAll('p.sentence, .card, p.fail')).map(p => p.innerText)})""")
        page.pdf(path=str(pdf_path), prefer_css_page_size=True, print_background=True)
        browser.close()
    return pypdfium2.PdfDocument(str(pdf_path)), texts


def _words(text: str) -> str:
    return " ".join(text.replace("\u00ad", "").split())


@pytest.fixture(scope="module")
def novelty_report(tmp_path_factory) -> Path:
    """A second report of another shape: the novelty example's daily panel (weekly lift, cohorts)."""
    sys.path.insert(0, str(EXAMPLES / "push_notification"))
    from panel import panel as daily_panel

    out = tmp_path_factory.mktemp("browser_novelty")
    spec = load_spec(EXAMPLES / "push_notification" / "novelty.yaml")
    from bayes_ab.analysis import analyze
    result = analyze(spec, daily_panel(4000, 5), sampler=FAST)
    return write_report(result, out / "reports", None, out / "models")


@pytest.mark.parametrize("which", ["demo_report", "novelty_report"])
def test_printed_pages_split_no_box_and_end_on_no_heading(which, request):
    """Printed, no sentence box, card or warning is cut across two pages, no page ends on a heading whose content
    is on the next, and pages 1-3 are kept as images to look at."""
    if chromium() is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    import numpy as np

    report = request.getfixturevalue(which)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    document, texts = _printed(report, SCREENSHOTS / f"{which}.pdf")
    pages = [_words(document[i].get_textpage().get_text_range()) for i in range(len(document))]
    for box in texts["boxes"]:
        words = _words(box)
        assert any(words[:60] in page and words[-60:] in page for page in pages), ("split box", words[:80])
    for number, page in enumerate(pages[:-1], start=1):
        tail = page[-120:]
        for heading in texts["headings"]:
            assert not tail.endswith(_words(heading)), (f"page {number} ends on heading", heading)
    for i in range(min(3, len(document))):
        image = document[i].render(scale=1.2).to_pil()
        image.save(SCREENSHOTS / f"{which}_page{i + 1}.png")
        ink = np.flatnonzero((np.asarray(image.convert("L")) < 245).any(axis=1))
        # a page before the last is filled to at least 55% of its height (page one of the push report was 40%
        # blank; a figure or card that does not fit still moves whole to the next page)
        assert ink.size and ink.max() > 0.55 * image.height, (which, i + 1, ink.max() / image.height)


@pytest.fixture(scope="module")
def example_reports(tmp_path_factory) -> list[Path]:
    """Reports of three more examples with other families and shapes: checkout (mean and ratio, three arms),
    onboarding (retention with censoring, counts), Cookie Cats (real data, a heavy-tailed count)."""
    import pandas as pd
    from bayes_ab.analysis import analyze

    out = tmp_path_factory.mktemp("browser_examples")
    reports = []
    for name, data in (("checkout", None), ("onboarding", None), ("cookie_cats", COOKIE_CATS)):
        spec = load_spec(EXAMPLES / name / "spec.yaml")
        frame = pd.read_csv(data) if data else example_module(f"{name}/generate.py").generate()
        reports.append(write_report(analyze(spec, frame, sampler=FAST), out / "reports", None, out / "models"))
    return reports


def test_every_examples_tables_stay_inside_the_column(example_reports, novelty_report):
    if chromium() is None:
        pytest.skip("no Chromium binary on this machine (install Debian's 'chromium' package; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=FLAGS)
        page = browser.new_page()
        for report in [*example_reports, novelty_report]:
            page.goto(report.as_uri(), wait_until="load")
            for width in (1366, 1400):
                page.set_viewport_size({"width": width, "height": 900})
                overflow = page.evaluate("Array.from(document.querySelectorAll('section table, section svg')).map("
                                         "t => t.getBoundingClientRect().right - "
                                         "t.closest('section').getBoundingClientRect().right)")
                assert overflow and max(overflow) <= 0.5, (report.name, width, max(overflow))
                assert page.evaluate("document.documentElement.scrollWidth") <= width, (report.name, width)
        browser.close()
