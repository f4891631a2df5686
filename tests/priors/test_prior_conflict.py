"""A learned prior cannot hide harm: its scale is floored where past results cannot tell it from zero, and a new
experiment's data far in its tail are flagged, shown beside the posterior and never acted on.
References: Monte Carlo draws from the prior predictive; the profile likelihood on a grid; closed-form counts."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_ab.analysis import analyze
from bayes_ab.decision import recommend
from bayes_ab.effects.conflict import PriorConflict
from bayes_ab.effects.sentence import sentence
from bayes_ab.learned_prior import CONFLICT_P, predictive_tail, scale_mixture
from bayes_ab.metric import LearnedEffectPrior
from bayes_ab.priors.learn import PROFILE_DROP, learn_effects, marginal_log_density
from bayes_ab.spec import parse_spec

from conftest import EXAMPLES, FAST

EIGHT = np.array([-0.01, 0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03])
"""Eight ordinary past results (-1%..+3%) with standard errors of 1%: their scatter is their noise."""


@pytest.mark.parametrize("df", [None, 1.0, 4.0])
def test_the_predictive_tail_is_the_share_of_simulated_estimates_as_far_out(df):
    prior = LearnedEffectPrior("normal" if df is None else "student_t", 0.001, 0.004, df, 10, "p.yaml", "d")
    rng = np.random.default_rng(5)
    n = 400_000
    theta = prior.location + prior.scale * (rng.standard_normal(n) if df is None else rng.standard_t(df, n))
    for estimate, se in ((0.01, 0.003), (-0.02, 0.01), (0.03, 0.02)):
        simulated = np.mean(np.abs(theta + rng.normal(0, se, n) - prior.location) >= abs(estimate - prior.location))
        tail = predictive_tail(prior, estimate, se)
        assert abs(tail - simulated) < 4 * np.sqrt(simulated * (1 - simulated) / n) + 1e-4, (estimate, se)


def test_a_spread_the_results_cannot_detect_gets_the_upper_end_of_its_profile_interval():
    """The normal form's profile likelihood (location at its weighted mean) on a fine grid of scales: the chosen
    scale is where it has dropped by 1.92 above the maximum; a detected spread keeps its maximum."""
    s = np.full(8, 0.01)
    learned = learn_effects(EIGHT, s, cross_validate=False).normal
    grid = np.exp(np.linspace(np.log(1e-6), np.log(0.2), 20_001))

    def profile(tau):
        w = 1 / (tau ** 2 + s ** 2)
        return marginal_log_density("normal", EIGHT, s, float(np.sum(w * EIGHT) / np.sum(w)), tau).sum()

    values = np.array([profile(t) for t in grid])
    assert values.max() - values[0] < PROFILE_DROP                  # zero is inside the 95% interval
    upper = grid[np.argmax(grid > grid[values.argmax()]) + np.argmax(values[grid > grid[values.argmax()]]
                                                                      < values.max() - PROFILE_DROP) - 1]
    assert learned.fitted_scale is not None and learned.fitted_scale < learned.scale
    assert learned.scale == pytest.approx(upper, rel=1e-3)
    assert learned.fitted_scale == pytest.approx(grid[values.argmax()], rel=1e-3)

    rng = np.random.default_rng(2)
    spread = rng.normal(0.01, 0.03, 60) + rng.normal(0, 0.01, 60)
    detected = learn_effects(spread, np.full(60, 0.01), cross_validate=False)
    assert detected.normal.fitted_scale is None and detected.normal.scale == pytest.approx(0.03, rel=0.3)


SPEC = {"name": "halved", "arms": [{"name": "control", "control": True}, {"name": "push"}],
        "metrics": [{"name": "conv", "family": "conversion", "column": "conv"}]}


def _analysis(learned: LearnedEffectPrior, control: int = 200, treated: int = 100):
    spec = parse_spec(SPEC)
    metric = spec.metrics[0]
    spec = replace(spec, metrics=(replace(metric, prior=replace(metric.prior, learned=learned)),))
    rows = pd.DataFrame({"arm": ["control", "push"], "users": [2000, 2000], "conv": [control, treated]})
    return analyze(spec, rows, aggregated=True, sampler=replace(FAST, draws=1000, tune=1000))


@pytest.mark.parametrize("form", ["normal", "student_t"])
def test_a_prior_learned_from_eight_results_never_calls_halving_conversion_an_increase(form):
    """10% -> 5% on 4,000 users, with the prior ``priors learn`` makes of the eight results (either form): the
    sentence leads with the data's -50%, the conflict is flagged, and the rule does not ship or advance."""
    learned_effects = learn_effects(EIGHT, np.full(8, 0.01))
    chosen = learned_effects.normal if form == "normal" else learned_effects.student_t
    assert chosen.scale >= 0.015                     # floored: the maximum-likelihood scale was below 1%
    prior = LearnedEffectPrior(form, chosen.location, chosen.scale, chosen.df, 8, "p.yaml", "2026-12-03")
    result = _analysis(prior)
    effects = result.effects["conv"]
    conflict = effects.conflict("push")
    assert conflict is not None and conflict.p_value < CONFLICT_P
    assert conflict.data_lift == pytest.approx(-0.5, abs=0.03)        # 100/2000 against 200/2000
    text = sentence(effects, "push")
    assert text.startswith("PRIOR-DATA CONFLICT: the data alone say -") and "prior-data conflict (push)" in text
    for stage, days in ((1, 0), (50, 7)):
        rec = recommend(result, stage=stage, days=days)
        assert rec.action not in ("ship", "advance"), rec.text()
        assert any(c.name == "prior-data conflict (conv)" and not c.passed for c in rec.reasons)


def test_data_the_prior_expects_raise_no_conflict_and_no_learned_prior_no_check():
    prior = LearnedEffectPrior("normal", 0.0, 0.05, None, 30, "p.yaml", "2026-12-03")
    effects = _analysis(prior, 200, 210).effects["conv"]
    assert effects.conflict("push") is None and effects.prior_checks[0].p_value > 0.5
    assert not sentence(effects, "push").startswith("PRIOR-DATA")
    rows = pd.DataFrame({"arm": ["control", "push"], "users": [2000, 2000], "conv": [200, 100]})
    default = analyze(parse_spec(SPEC), rows, aggregated=True, sampler=replace(FAST, draws=500, tune=500))
    assert default.effects["conv"].prior_checks == () and default.effects["conv"].conflict("push") is None


def test_the_asos_prior_flags_a_twelve_percent_estimate():
    """The prior learned from the 78 real ASOS experiments (metric 1: Student-t, df about 1, scale about 0.1%)
    against +12% measured with a 4% standard error (1,000 vs 1,120 conversions of 10,000)."""
    sys.path.insert(0, str(EXAMPLES / "priors"))
    from asos_loo import DATA, arm_results

    arms = arm_results(pd.read_csv(DATA), 1)
    chosen = learn_effects(arms["final"].to_numpy(), arms["final_se"].to_numpy(), cross_validate=False).chosen
    prior = LearnedEffectPrior(chosen.form, chosen.location, chosen.scale, chosen.df, 78, "asos.yaml", "2026-12-03")
    assert chosen.scale < 0.005 and chosen.fitted_scale is None          # a detected, narrow spread
    assert predictive_tail(prior, 0.12, 0.04) < CONFLICT_P
    assert predictive_tail(prior, 0.003, 0.04) > 0.5


def test_a_conflict_is_a_predictive_tail_below_one_percent():
    def check(p):
        return PriorConflict("push", -0.5, -0.6, -0.4, p)

    assert CONFLICT_P == 0.01
    assert check(0.0099).conflicts and not check(0.01).conflicts and not check(0.015).conflicts


@pytest.mark.parametrize("df", [0.7, 1.0, 1.5, 3.0, 8.0, 30.0, 50.0, 400.0])
def test_the_mixture_of_normals_is_the_t_density_from_its_centre_to_a_thousand_scales(df):
    mixture = scale_mixture(df)
    assert 40 <= mixture.multipliers.size <= 200
    assert np.exp(mixture.log_weights).sum() == pytest.approx(1.0, abs=1e-12)
    x = np.array([0.0, 0.5, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0])
    density = (np.exp(mixture.log_weights)[:, None]
               * stats.norm.pdf(x, 0.0, np.sqrt(mixture.multipliers)[:, None])).sum(axis=0)
    t = stats.t.pdf(x, df)
    meaningful = t > 1e-250
    np.testing.assert_allclose(density[meaningful], t[meaningful], rtol=1e-3)
