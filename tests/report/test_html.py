"""The HTML summary: self-contained, and every data-derived string escaped."""

import re

import numpy as np
import pandas as pd

from bayes_ab.analysis import analyze
from bayes_ab.report import render_report, write_report
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

EVIL = "<script>alert(1)</script>"


def evil_analysis():
    rng = np.random.default_rng(3)
    n = 4000
    frame = pd.DataFrame({
        "arm": rng.choice(["control", "treatment"], n),
        "seg": rng.choice([EVIL, '"><img src=x onerror=alert(2)>'], n),
        "converted": rng.random(n) < 0.2,
    })
    spec = make_spec(segments=("seg",))
    return analyze(spec, frame, sampler=SamplerSettings(draws=300, chains=2, backend="conjugate"))


def test_report_escapes_data_and_needs_no_network(tmp_path):
    result = evil_analysis()
    html = render_report(result)
    assert "<script" not in html.lower()
    assert "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    path = write_report(result, tmp_path)
    written = path.read_text(encoding="utf-8")
    assert path.name == "test.html" and "&lt;script&gt;" in written and "<script" not in written.lower()
    assert "probability that treatment increases converted" in html
