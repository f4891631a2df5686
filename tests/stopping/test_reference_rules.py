"""The reference rules: the mSPRT statistic against numerical integration and its always-valid level,
the delta-method lift against simulation, and the effect-prior resampling against a conjugate answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats as st

from bayes_ab.spec import Baseline
from bayes_ab.stopping.generate import accumulator, factors_for, truth
from bayes_ab.stopping.rules import msprt_log_likelihood_ratio, relative_lift_z, with_effect_prior

from conftest import make_spec

ARMS = ("control", "treatment")


@pytest.mark.parametrize("lift, variance, tau", [(0.01, 1e-4, 0.05), (-0.03, 4e-4, 0.05), (0.002, 1e-6, 0.02)])
def test_msprt_ratio_equals_the_mixture_integral(lift, variance, tau):
    """Lambda = integral of N(lift | theta, V) N(theta | 0, tau^2) d theta / N(lift | 0, V)."""
    sd = math.sqrt(variance)
    numerator, _ = integrate.quad(lambda t: st.norm.pdf(lift, t, sd) * st.norm.pdf(t, 0, tau),
                                  -20 * tau, 20 * tau, points=[lift], limit=400)
    expected = math.log(numerator / st.norm.pdf(lift, 0, sd))
    assert msprt_log_likelihood_ratio(lift, variance, tau) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_msprt_keeps_its_level_under_continuous_monitoring():
    """Simulated null paths (an estimate whose variance falls like 1/n, looked at 60 times): the share
    that ever crosses log(1/alpha) stays below alpha."""
    rng = np.random.default_rng(0)
    paths, looks, alpha, tau = 4000, 60, 0.1, 0.05
    increments = rng.normal(0, 1, size=(paths, looks))
    n = np.arange(1, looks + 1)
    estimate = np.cumsum(increments, axis=1) / n * 0.02          # mean of n unit draws, scaled
    variance = 0.02 ** 2 / n
    crossed = np.zeros(paths, dtype=bool)
    for j in range(looks):
        crossed |= np.array([msprt_log_likelihood_ratio(e, variance[j], tau) for e in estimate[:, j]]) >= math.log(1 / alpha)
    rate = crossed.mean()
    assert rate < alpha + 2 * math.sqrt(alpha * (1 - alpha) / paths), rate
    # and it is not vacuous: a fixed z-test at 1.645 looked at 60 times crosses far more often
    assert (np.abs(estimate) / np.sqrt(variance) > 1.645).any(axis=1).mean() > 2 * alpha


def test_delta_method_lift_variance_matches_simulation():
    metric = make_spec(metrics=[{"name": "m", "column": "m", "family": "conversion"}]).metrics[0]
    world = truth(metric, Baseline(0.1), factors_for(metric, 0.05, 2))
    rng = np.random.default_rng(3)
    lifts, variances = [], []
    for _ in range(400):
        acc = accumulator(metric, ARMS)
        arms = np.repeat([0, 1], 20_000)
        acc.add(arms, world.draw(rng, arms))
        lift, variance = relative_lift_z(acc, True)
        lifts.append(lift)
        variances.append(variance)
    assert abs(np.mean(lifts) - 0.05) < 4 * np.std(lifts) / math.sqrt(400)
    # the delta-method variance agrees with the spread of the estimates within their sampling error
    assert np.var(lifts) / np.mean(variances) == pytest.approx(1.0, abs=4 * math.sqrt(2 / 399))


def test_effect_prior_resampling_matches_a_normal_posterior():
    """A mean metric with a known normal likelihood: resampled draws must match the conjugate normal
    posterior of the effect with a N(0, effect_sd) prior (in pooled standard deviations)."""
    metric = make_spec(metrics=[{"name": "m", "column": "m", "family": "mean",
                                 "prior": {"effect_sd": 0.05}}]).metrics[0]
    acc = accumulator(metric, ARMS)
    rng = np.random.default_rng(4)
    arms = np.repeat([0, 1], 400)
    acc.add(arms, rng.normal(np.where(arms == 0, 0.0, 0.2), 1.0))       # observed effect ~0.2 sd, se ~0.07
    draws = acc.posterior(rng, 200_000)
    reweighted = with_effect_prior(acc, metric, draws, rng)
    mean, variance = acc.estimate()
    sd = math.sqrt(np.mean(variance) * 400)                   # pooled sd, the model's effect unit
    observed, se = (mean[1] - mean[0]) / sd, math.sqrt(variance.sum()) / sd
    precision = 1 / se ** 2 + 1 / 0.05 ** 2
    expected_mean, expected_sd = observed / se ** 2 / precision, math.sqrt(1 / precision)
    effect = (reweighted[:, 1] - reweighted[:, 0]) / sd
    assert effect.mean() == pytest.approx(expected_mean, abs=0.05 * expected_sd + 4 * expected_sd / math.sqrt(5000))
    assert effect.std() == pytest.approx(expected_sd, rel=0.05)


def test_the_multi_metric_references_run_beside_the_default_rule():
    from bayes_ab.stopping import compare_rules

    guarded = make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"},
                 {"name": "crash", "family": "conversion", "column": "crash", "role": "guardrail",
                  "direction": "decrease", "margin": 0.2}],
        ramp=[{"percent": 50, "min_days": 1}, {"percent": 100}],
        plan={"daily_users": 40_000, "days": 6, "effect": 0.08, "experiments": 20,
              "baseline": {"conv": 0.1, "crash": 0.05}})
    result = compare_rules(guarded, rules=("fixed_horizon", "risk_aware", "holm", "benjamini_hochberg"), seed=3)
    for name in ("risk_aware", "holm", "benjamini_hochberg"):
        rule = result.rule(name)
        # a large true +8% on 120,000 users per arm: every experiment ships; a 40% crash rise: none does
        assert rule.scenario("planned effect").rates["ship"] == 1.0, name
        assert rule.scenario("guardrail breach: crash").rates["ship"] == 0.0, name
        assert rule.scenario("harmful").rates["rollback"] == 1.0, name
