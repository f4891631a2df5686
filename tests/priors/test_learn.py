"""The distribution of true effects learned from past estimates: its marginal likelihood and posterior checked
against direct numerical integration (SciPy quad on the defining integrals), and recovery of known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from bayes_ab.priors.learn import EffectDistribution, learn_effects, marginal_log_density


@pytest.mark.parametrize("y, s, location, scale, df", [(0.01, 0.005, 0.0, 0.002, 3.0), (0.05, 0.001, 0.001, 0.01, 1.5),
                                                       (-0.2, 0.05, 0.0, 0.3, 30.0), (0.0, 0.01, 0.0, 1e-5, 2.0)])
def test_student_t_marginal_equals_the_defining_integral(y, s, location, scale, df):
    def integrand(theta):
        return stats.t.pdf(theta, df, location, scale) * stats.norm.pdf(y, theta, s)

    points = sorted({location, y})
    reference = integrate.quad(integrand, y - 15 * s, y + 15 * s, points=points, limit=500, epsrel=1e-11)[0]
    ours = np.exp(marginal_log_density("student_t", np.array([y]), np.array([s]), location, scale, df))[0]
    # the t mass beyond 15 standard errors of y is below 1e-10 of the density here
    assert ours == pytest.approx(reference, rel=1e-8)


def test_normal_marginal_is_the_convolution():
    ours = marginal_log_density("normal", np.array([0.02]), np.array([0.01]), 0.001, 0.005)[0]
    assert ours == pytest.approx(stats.norm.logpdf(0.02, 0.001, np.hypot(0.005, 0.01)), rel=1e-12)


@pytest.mark.parametrize("form, df", [("normal", None), ("student_t", 2.5)])
def test_posterior_mean_and_interval_equal_numerical_integration(form, df):
    prior = EffectDistribution(form, 0.001, 0.003, df, 0, 0, 0)
    y, s = 0.02, 0.006
    density = (lambda t: stats.norm.pdf(t, 0.001, 0.003)) if df is None else (lambda t: stats.t.pdf(t, df, 0.001, 0.003))

    def posterior(t):
        return density(t) * stats.norm.pdf(y, t, s)

    total = integrate.quad(posterior, -1, 1, points=[0.001, y], limit=500)[0]
    mean = integrate.quad(lambda t: t * posterior(t), -1, 1, points=[0.001, y], limit=500)[0] / total

    def cdf(x):
        return integrate.quad(posterior, -1, x, points=[p for p in (0.001, y) if p < x], limit=500)[0] / total

    low, high = (optimize.brentq(lambda x: cdf(x) - q, -0.5, 0.5, xtol=1e-12) for q in (0.05, 0.95))
    ours = prior.posterior(y, s, 0.9)
    np.testing.assert_allclose(ours, (mean, low, high), rtol=1e-6, atol=1e-9)


def test_recovers_a_normal_distribution_of_effects():
    rng = np.random.default_rng(1)
    n = 400
    s = rng.uniform(0.002, 0.01, n)
    y = rng.normal(0.002, 0.01, n) + rng.normal(0, s)
    fit = learn_effects(y, s, cross_validate=False).normal
    se_location = np.sqrt(np.mean(0.01 ** 2 + s ** 2) / n)
    assert abs(fit.location - 0.002) < 4 * se_location
    assert abs(fit.scale / 0.01 - 1) < 0.2


def test_heavy_tails_are_recognised_and_a_normal_truth_is_not_called_heavy():
    rng = np.random.default_rng(7)
    n = 120
    s = rng.uniform(0.002, 0.006, n)
    heavy = learn_effects(0.001 + 0.003 * rng.standard_t(1.5, n) + rng.normal(0, s), s)
    assert heavy.chosen.form == "student_t" and heavy.chosen.df < 5
    assert heavy.student_t.loo > heavy.normal.loo + 5
    light = learn_effects(rng.normal(0.001, 0.004, n) + rng.normal(0, s), s)
    assert light.chosen.form == "normal" or light.chosen.df > 10
    assert abs(light.student_t.loo - light.normal.loo) < 3


def test_too_few_or_invalid_results_are_refused():
    with pytest.raises(ValueError, match="at least 5"):
        learn_effects([0.1, 0.2], [0.1, 0.1])
    with pytest.raises(ValueError, match="> 0"):
        learn_effects([0.1] * 6, [0.1] * 5 + [0.0])
