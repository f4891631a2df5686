"""The documentation: the site builds with warnings as errors, the README stays a page whose links resolve,
and its ten-line example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

README = ROOT / "README.md"


def test_the_site_builds_with_warnings_as_errors(tmp_path):
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    done = subprocess.run(mkdocs, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "analysis.html").read_text()
    assert "Aggregate <code>source</code>" in api, "the API reference is generated from the docstrings"
    checkins = (tmp_path / "site" / "guides" / "checkins.html").read_text()
    assert "daily.py" in checkins


def test_the_readme_is_a_page_whose_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert missing == []


def test_the_readmes_ten_line_example_runs(tmp_path):
    block = re.search(r"## In ten lines\s+```python\n(.*?)```", README.read_text(), re.S)[1]
    assert len(block.strip().splitlines()) <= 11
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # Cookie Cats: moving the gate to level 40 lowers 7-day retention (a well-known result of this data set)
    assert "probability that gate_40 increases retention 7" in done.stdout
    assert "Recommendation: Roll back gate_40" in done.stdout and "[fail] harm: primary retention_7" in done.stdout
    assert (tmp_path / "models" / "cookie_cats" / "summary.json").exists()
