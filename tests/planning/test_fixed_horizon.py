"""The fixed-horizon reference against statsmodels' power calculations and a simulated z-test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, normal_sample_size_one_tail
from statsmodels.stats.proportion import samplesize_proportions_2indep_onetail

from bayes_ab.errors import SpecError
from bayes_ab.planning import fixed_horizon_sample_size
from bayes_ab.spec import Baseline, Metric


def metric(family, direction="increase"):
    return Metric(name="m", family=family, column="m", direction=direction)


@pytest.mark.parametrize("rate, effect, ratio", [(0.03, 0.10, 1.0), (0.02, 0.20, 1.0), (0.4, -0.05, 1.0),
                                                 (0.10, 0.05, 2.0), (0.5, 0.02, 0.5)])
@pytest.mark.parametrize("family", ["conversion", "retention"])
def test_proportions_match_statsmodels_within_one_percent(family, rate, effect, ratio):
    ours = fixed_horizon_sample_size(metric(family), Baseline(rate), effect, ratio=ratio)
    diff = rate * effect
    theirs = samplesize_proportions_2indep_onetail(diff, rate, power=0.8, ratio=1 / ratio, alpha=0.05)
    # statsmodels: nobs1 is the treated arm (p1 = p2 + diff), nobs2 = ratio * nobs1 the control
    assert ours.treatment_users == pytest.approx(theirs, rel=0.01)
    assert ours.control_users == pytest.approx(theirs / ratio, rel=0.01)


@pytest.mark.parametrize("ratio", [1.0, 3.0])
def test_means_match_statsmodels_normal_ind_power(ratio):
    ours = fixed_horizon_sample_size(metric("mean"), Baseline(50.0, 20.0), 0.03, ratio=ratio)
    theirs = NormalIndPower().solve_power(effect_size=50 * 0.03 / 20.0, alpha=0.05, power=0.8, ratio=ratio)
    assert ours.control_users == pytest.approx(theirs, rel=0.01)


@pytest.mark.parametrize("dispersion", [None, 0.8, 5.0])
def test_counts_use_the_negative_binomial_variance(dispersion):
    mu, effect = 2.1, 0.05
    ours = fixed_horizon_sample_size(metric("count"), Baseline(mu, dispersion), effect)
    var = lambda m: m + (0 if dispersion is None else m * m / dispersion)   # noqa: E731
    sd = np.sqrt(var(mu) + var(mu * (1 + effect)))
    theirs = normal_sample_size_one_tail(mu * effect, 0.8, 0.025, std_null=sd)
    assert ours.control_users == pytest.approx(theirs, rel=0.01)


def test_decrease_is_good_metrics_plan_for_a_fall():
    up = fixed_horizon_sample_size(metric("conversion"), Baseline(0.1), 0.1)
    down = fixed_horizon_sample_size(metric("conversion", "decrease"), Baseline(0.1), 0.1)
    assert down.control_users < up.control_users     # a fall to 9% is easier to see than a rise to 11%


def test_the_computed_size_gives_the_stated_power_in_simulation():
    """Simulate the two-proportion z-test at the computed size: rejection rate ~ 80% (independent check)."""
    plan = fixed_horizon_sample_size(metric("conversion"), Baseline(0.03), 0.15)
    rng = np.random.default_rng(5)
    runs, n = 4000, plan.control_users
    c, t = rng.binomial(n, 0.03, runs), rng.binomial(n, 0.03 * 1.15, runs)
    pooled = (c + t) / (2 * n)
    z = (t - c) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    power = np.mean(np.abs(z) > stats.norm.isf(0.025))
    assert abs(power - 0.8) < 3 * np.sqrt(0.8 * 0.2 / runs) + 0.005


def test_days_follow_the_daily_traffic_and_split():
    plan = fixed_horizon_sample_size(metric("conversion"), Baseline(0.02), 0.2, daily_users=10_000)
    assert plan.days_at_full_traffic == pytest.approx(plan.control_users / 5_000)
    assert 20_000 < plan.control_users < 22_000        # the seed question: 70,000 per arm is ~3x this


def test_bad_input_is_named():
    with pytest.raises(SpecError, match="effect must be a non-zero"):
        fixed_horizon_sample_size(metric("conversion"), Baseline(0.1), 0.0)
    with pytest.raises(SpecError, match="leaves \\(0, 1\\)"):
        fixed_horizon_sample_size(metric("conversion"), Baseline(0.9), 0.2)
    with pytest.raises(SpecError, match="alpha and power"):
        fixed_horizon_sample_size(metric("mean"), Baseline(1.0, 1.0), 0.1, power=1.2)


@pytest.mark.parametrize("alpha, power", [(0.0, 0.8), (1.0, 0.8), (0.05, 0.0), (0.05, 1.0)])
def test_alpha_and_power_must_be_strictly_inside_zero_and_one(alpha, power):
    with pytest.raises(SpecError, match="alpha and power must be in"):
        fixed_horizon_sample_size(metric("conversion"), Baseline(0.1), 0.05, alpha=alpha, power=power)


def test_a_split_with_no_treatment_is_refused_and_the_total_is_both_arms():
    with pytest.raises(SpecError, match="ratio must be positive, got 0"):
        fixed_horizon_sample_size(metric("conversion"), Baseline(0.1), 0.05, ratio=0.0)
    plan = fixed_horizon_sample_size(metric("conversion"), Baseline(0.1), 0.05, ratio=2.0)
    assert plan.total_users == plan.control_users + plan.treatment_users and plan.treatment_users > plan.control_users


def test_a_decrease_is_good_metric_is_sized_for_a_lower_treatment_value():
    ours = fixed_horizon_sample_size(metric("conversion", "decrease"), Baseline(0.2), 0.1)
    # statsmodels: the treated arm 10% lower (0.18 against 0.2)
    theirs = samplesize_proportions_2indep_onetail(-0.02, 0.2, power=0.8, ratio=1.0, alpha=0.05)
    assert ours.control_users == pytest.approx(theirs, rel=0.01)
    up = fixed_horizon_sample_size(metric("conversion"), Baseline(0.2), 0.1)
    assert up.control_users != ours.control_users         # 0.22 has another variance than 0.18


def test_covariates_cut_the_users_by_the_variance_they_leave():
    """Regression adjustment leaving ``1 - R^2`` of the variance needs that share of the users: against
    statsmodels' two-sample normal power with the standard deviation scaled by ``sqrt(1 - R^2)``."""
    metric = Metric("revenue", "mean", "revenue")
    baseline = Baseline(10.0, 6.0)
    plain = fixed_horizon_sample_size(metric, baseline, 0.05)
    adjusted = fixed_horizon_sample_size(metric, baseline, 0.05, variance_factor=1 - 0.5 ** 2)
    effect_size = 0.5 / (6.0 * np.sqrt(0.75))
    expected = NormalIndPower().solve_power(effect_size=effect_size, alpha=0.05, power=0.8, ratio=1.0)
    assert adjusted.control_users == pytest.approx(expected, abs=1)
    assert adjusted.control_users == pytest.approx(0.75 * plain.control_users, abs=1)
    assert "covariates leaving 75% of the variance" in adjusted.text()
