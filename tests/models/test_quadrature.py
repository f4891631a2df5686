"""Exact posteriors by numerical integration, checked against an independent 2-D integral of the same model
(SciPy's adaptive ``dblquad`` on the joint density, written out here) and against the Beta closed form where
the prior no longer matters. Tolerances come from the Monte Carlo error of the draws."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import integrate, optimize

from bayes_ab.effects.compute import compute_effects
from bayes_ab.families.conversion import BASELINE_LOGIT_SD, conversion_stats
from bayes_ab.metric import EffectPrior
from bayes_ab.posterior import fit
from bayes_ab.models.conjugate import prob_beta_greater
from bayes_ab.models.quadrature import ArmLikelihood, binomial_logit, exact_draws
from bayes_ab.sampling import EXACT, SamplerSettings
from bayes_ab.spec import Metric

COOKIE_CATS_DAY_1 = (20034, 44700, 20119, 45489)      # gate_30 / gate_40 day-1 retention (examples/data)


def _two_arm_reference(yc, nc, yt, nt, effect_sd=0.5, baseline_sd=BASELINE_LOGIT_SD):
    """P(treatment beats control) and the expected relative loss of shipping it, by adaptive 2-D
    integration of the model's joint density over the two logits (b control, a treatment)."""
    def log_lik(x, y, n):
        return -y * np.logaddexp(0, -x) - (n - y) * np.logaddexp(0, x)

    def log_joint(b, a):
        return (-0.5 * (b / baseline_sd) ** 2 - 0.5 * ((a - b) / effect_sd) ** 2
                + log_lik(b, yc, nc) + log_lik(a, yt, nt))

    def support(log_density):
        """Where a 1-D log-concave density is within 50 nats of its peak."""
        peak = optimize.minimize_scalar(lambda x: -log_density(x), bounds=(-60, 60), method="bounded",
                                        options={"xatol": 1e-12})
        level = -peak.fun - 50
        return (optimize.brentq(lambda x: log_density(x) - level, -200, peak.x),
                optimize.brentq(lambda x: log_density(x) - level, peak.x, 200))

    spread = np.hypot(baseline_sd, effect_sd)
    blo, bhi = support(lambda b: -0.5 * (b / baseline_sd) ** 2 + log_lik(b, yc, nc))
    alo, ahi = support(lambda a: -0.5 * (a / spread) ** 2 + log_lik(a, yt, nt))
    top = -optimize.minimize(lambda x: -log_joint(*x), [0.5 * (blo + bhi), 0.5 * (alo + ahi)],
                             method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}).fun

    def density(a, b):
        return np.exp(log_joint(b, a) - top)

    def rate(x):
        return 1 / (1 + np.exp(-x))

    options = dict(epsabs=1e-14, epsrel=1e-10)
    total = integrate.dblquad(density, blo, bhi, alo, ahi, **options)[0]
    beats = integrate.dblquad(density, blo, bhi, lambda b: min(max(b, alo), ahi), ahi, **options)[0]
    loss = integrate.dblquad(lambda a, b: density(a, b) * max(0.0, 1 - rate(a) / rate(b)),
                             blo, bhi, alo, lambda b: min(max(b, alo), ahi), **options)[0]
    return beats / total, loss / total


def _summary(draws):
    control, treatment = 1 / (1 + np.exp(-draws[:, 0])), 1 / (1 + np.exp(-draws[:, 1]))
    beats = treatment > control
    loss = np.maximum(0.0, 1 - treatment / control)
    return beats.mean(), np.sqrt(beats.mean() * (1 - beats.mean()) / beats.size), loss.mean(), loss.std() / np.sqrt(loss.size)


@pytest.mark.parametrize("counts", [(5, 50, 12, 50), (0, 10, 3, 10), (40, 400, 52, 400), (1, 30, 0, 30),
                                    (3, 1_000_000, 9, 1_000_000)])
def test_two_arms_match_an_independent_2d_integral(counts):
    """Small samples, where the prior shapes the answer: no zero conversions, none at all, rare events."""
    yc, nc, yt, nt = counts
    draws = exact_draws(binomial_logit(yc, nc), [binomial_logit(yt, nt)], BASELINE_LOGIT_SD, 0.5, 100_000,
                        np.random.default_rng(11))
    p, p_se, loss, loss_se = _summary(draws)
    p_ref, loss_ref = _two_arm_reference(yc, nc, yt, nt)
    assert abs(p - p_ref) < 4 * p_se + 1e-4, (p, p_ref, p_se)
    assert abs(loss - loss_ref) < 4 * loss_se + 1e-5, (loss, loss_ref, loss_se)


def test_a_strong_effect_prior_is_honoured():
    """effect_sd 0.05: the posterior effect is pulled to 0, exactly as the 2-D integral says."""
    yc, nc, yt, nt = 100, 1000, 140, 1000
    draws = exact_draws(binomial_logit(yc, nc), [binomial_logit(yt, nt)], BASELINE_LOGIT_SD, 0.05, 100_000,
                        np.random.default_rng(2))
    p, p_se, _, _ = _summary(draws)
    p_ref, _ = _two_arm_reference(yc, nc, yt, nt, effect_sd=0.05)
    assert abs(p - p_ref) < 4 * p_se + 1e-4
    assert np.std(draws[:, 1] - draws[:, 0]) < 0.05


def test_large_samples_match_the_beta_closed_form():
    """At Cookie Cats' size the prior is negligible: P(beat) is the Beta-Binomial one (0.0372)."""
    yc, nc, yt, nt = COOKIE_CATS_DAY_1
    draws = exact_draws(binomial_logit(yc, nc), [binomial_logit(yt, nt)], BASELINE_LOGIT_SD, 0.5, 200_000,
                        np.random.default_rng(4))
    p, p_se, _, _ = _summary(draws)
    exact = prob_beta_greater(1 + yt, 1 + nt - yt, 1 + yc, 1 + nc - yc)
    assert abs(p - exact) < 4 * p_se + 1e-3       # 1e-3: the flat Beta prior is not the model's prior
    rates = 1 / (1 + np.exp(-draws))
    for column, (y, n) in enumerate([(yc, nc), (yt, nt)]):
        sd = np.sqrt((y + 1) * (n - y + 1) / ((n + 2) ** 2 * (n + 3)))
        assert abs(rates[:, column].mean() - (y + 1) / (n + 2)) < 5 * sd / np.sqrt(draws.shape[0]) + 1e-5
        assert abs(rates[:, column].std() / sd - 1) < 0.02


def test_three_arms_p_best_matches_beta_draws_at_large_samples():
    counts = [(4000, 20000), (4100, 20000), (4080, 20000)]
    draws = exact_draws(binomial_logit(*counts[0]), [binomial_logit(*c) for c in counts[1:]], BASELINE_LOGIT_SD,
                        0.5, 200_000, np.random.default_rng(8))
    rng = np.random.default_rng(9)
    beta = np.column_stack([rng.beta(1 + y, 1 + n - y, 2_000_000) for y, n in counts])
    ours = np.bincount(np.argmax(draws, axis=1), minlength=3) / draws.shape[0]
    reference = np.bincount(np.argmax(beta, axis=1), minlength=3) / beta.shape[0]
    se = np.sqrt(ours * (1 - ours) / draws.shape[0])
    np.testing.assert_array_less(np.abs(ours - reference), 4 * se + 2e-3)


def test_extreme_data_give_finite_draws_or_none_never_garbage():
    for counts in [(0, 0, 0, 0), (0, 1_000_000, 0, 1_000_000), (999_999, 1_000_000, 1_000_000, 1_000_000)]:
        draws = exact_draws(binomial_logit(*counts[:2]), [binomial_logit(*counts[2:])], BASELINE_LOGIT_SD, 0.5,
                            10_000, np.random.default_rng(0))
        assert draws is not None and np.isfinite(draws).all()
    broken = ArmLikelihood(lambda x: np.full(np.shape(x), np.nan), lambda x: np.full(np.shape(x), np.nan))
    assert exact_draws(broken, [binomial_logit(1, 2)], BASELINE_LOGIT_SD, 0.5, 1000, np.random.default_rng(0)) is None


def _cookie_cats_day_1():
    yc, nc, yt, nt = COOKIE_CATS_DAY_1
    return conversion_stats(["gate_30", "gate_40"], ["all users"], np.array([[nc], [nt]]),
                            np.array([[yc], [yt]]), "retention_1")


def test_default_fit_of_two_arm_conversion_is_within_0_005_of_exact_at_every_seed():
    """The issue's requirement: P(beat), P(best) and the expected loss within ±0.005 of exact at default
    settings. NUTS's 4 x 1000 draws gave P(beat) 0.027-0.045 across seeds against 0.037."""
    stats = _cookie_cats_day_1()
    metric = Metric(name="retention_1", family="conversion", column="retention_1")
    p_ref, loss_ref = _two_arm_reference(*COOKIE_CATS_DAY_1)
    for seed in range(5):
        result = fit(stats, metric, replace(SamplerSettings(), seed=seed))
        assert result.backend == EXACT and result.diagnostics.passed
        arm = compute_effects(result).overall("gate_40")
        assert abs(arm.p_beat_control - p_ref) < 0.005 and abs(arm.p_best - p_ref) < 0.005
        assert abs(arm.loss_ship_rel - loss_ref) < 0.005
        assert arm.p_beat_control_mcse < 0.0016 and arm.p_best_mcse < 0.0016


def test_the_exact_fit_has_the_models_variables_and_honours_settings():
    stats = _cookie_cats_day_1()
    metric = Metric(name="retention_1", family="conversion", column="retention_1",
                    prior=EffectPrior(effect_sd=0.5, heterogeneity_sd=0.25))
    result = fit(stats, metric, SamplerSettings(chains=2, exact_draws=10_001))
    posterior = result.idata.posterior
    assert dict(posterior.sizes) == {"chain": 2, "draw": 5001, "arm": 2, "segment": 1, "treatment": 1}
    effect = posterior["effect"].values[..., 0, 0]
    mean = posterior["mean"].values[..., 0]
    logit = np.log(mean / (1 - mean))
    np.testing.assert_allclose(effect, logit[..., 1] - logit[..., 0], atol=1e-9)
    np.testing.assert_allclose(posterior["baseline"].values[..., 0], logit[..., 0], atol=1e-9)
    assert "constant_data" in result.idata.groups()
    again = fit(stats, metric, SamplerSettings(chains=2, exact_draws=10_001))
    np.testing.assert_array_equal(again.idata.posterior["mean"].values[..., 0], mean)     # seeded: repeatable
