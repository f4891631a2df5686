"""End-to-end checks of the sampler stack through the library and the command line (``make canary`` runs the
tests marked ``smoke`` on the newest releases; here they run on the tested ones)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as st

from bayes_ab.cli import main
from bayes_ab.families.count import count_stats
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.spec import Metric, SamplerSettings

from conftest import COOKIE_CATS, EXAMPLES

pytestmark = pytest.mark.smoke


def test_a_segmented_count_fit_samples_cleanly_and_recovers_the_means(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(8)
    values = np.arange(30)
    # Poisson counts, means 2.0 (control) and 2.2 (treatment) in both segments, 4,000 users per cell
    hist = np.stack([np.stack([rng.multinomial(4000, st.poisson(mu).pmf(values) / st.poisson(mu).pmf(values).sum())
                               for _ in range(2)]) for mu in (2.0, 2.2)])
    stats = count_stats(["control", "treatment"], ["a", "b"], values, hist, "trades")
    result = fit(stats, Metric("trades", "count", "trades"), SamplerSettings(draws=500, tune=500, chains=2, seed=2),
                 ModelCache())
    assert result.diagnostics.passed, result.diagnostics.summary()
    observed = (hist * values).sum(axis=(1, 2)) / hist.sum(axis=(1, 2))
    estimated = result.overall_mean.mean(("chain", "draw")).values
    assert np.allclose(estimated, observed, atol=4 * np.sqrt(observed / 8000))


def test_the_command_line_analyses_cookie_cats_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["analyze", str(EXAMPLES / "cookie_cats" / "spec.yaml"), "--data", str(COOKIE_CATS),
                 "--models-dir", str(tmp_path / "models")])
    assert code == 0
    summary = json.loads((tmp_path / "models" / "cookie_cats" / "summary.json").read_text())
    assert all(d["passed"] for d in summary["diagnostics"].values()), summary["diagnostics"]
    assert "probability" in capsys.readouterr().out
