"""Mean family with CUPED: interval width shrinks by sqrt(1 - rho^2), estimates stay unbiased."""

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.aggregation import aggregate
from bayes_ab.errors import DataError
from bayes_ab.families.mean import mean_stats
from bayes_ab.metric import Metric
from bayes_ab.posterior import fit
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, seed=7)
RHO = 0.8
LIFT = 0.3


def revenue_users(n=8000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "treatment"], n)
    pre = rng.normal(0, 1, n)
    noise = rng.normal(0, 1, n)
    revenue = 10 + 5 * (RHO * pre + np.sqrt(1 - RHO ** 2) * noise) + LIFT * (arm == "treatment")
    return pd.DataFrame({"arm": arm, "revenue": revenue, "pre_revenue": 20 + 3 * pre})


def spec():
    return make_spec([
        {"name": "plain", "family": "mean", "column": "revenue"},
        {"name": "cuped", "family": "mean", "column": "revenue", "covariate": "pre_revenue"},
    ])


def test_cuped_shrinks_intervals_by_the_expected_factor_and_stays_unbiased():
    result = analyze(spec(), revenue_users(), sampler=SETTINGS)
    plain, cuped = (result.effects[m].overall("treatment") for m in ("plain", "cuped"))
    ratio = (cuped.abs_high - cuped.abs_low) / (plain.abs_high - plain.abs_low)
    assert ratio == pytest.approx(np.sqrt(1 - RHO ** 2), rel=0.1)
    assert cuped.abs_low < LIFT < cuped.abs_high
    assert "variance reduced by" in result.effects["cuped"].model_note


@pytest.mark.slow
def test_cuped_estimate_is_unbiased_over_repeated_experiments():
    errors, ses = [], []
    for seed in range(30):
        effect = analyze(spec(), revenue_users(seed=100 + seed), sampler=SETTINGS).effects["cuped"]
        row = effect.overall("treatment")
        errors.append(row.abs_lift - LIFT)
        ses.append((row.abs_high - row.abs_low) / (2 * 1.645))
    # mean error within 3 standard errors of its Monte Carlo spread
    assert abs(np.mean(errors)) < 3 * np.mean(ses) / np.sqrt(len(errors))
    # and the intervals are honest: the spread of estimates matches the posterior sd
    assert np.std(errors) == pytest.approx(np.mean(ses), rel=0.35)


def test_covariate_missing_for_some_users_is_refused():
    frame = revenue_users(n=200)
    frame.loc[7, "pre_revenue"] = np.nan
    with pytest.raises(DataError, match=r"'pre_revenue' \(metric 'cuped'\) has missing values"):
        aggregate(spec(), frame)


def test_sufficient_statistics_match_numpy():
    frame = revenue_users(n=500)
    stats = aggregate(spec(), frame)["cuped"]
    control = frame[frame["arm"] == "control"]
    y, x = control["revenue"].to_numpy(), control["pre_revenue"].to_numpy()
    got = stats.sel(arm="control").isel(segment=0)
    assert float(got["sum"]) == pytest.approx(y.sum())
    assert float(got["sumsq"]) == pytest.approx((y ** 2).sum())
    assert float(got["sum_xy"]) == pytest.approx((x * y).sum())
    assert float(got["sum_x2"]) == pytest.approx((x ** 2).sum())


def test_a_cell_whose_sd_follows_its_mean_does_not_pull_the_baselines_down():
    """On skewed data (spend: mostly zeros) a cell that drew no large purchase has both a low mean and a much lower
    sd. Here each segment has one such cell (mean one standard error low, sd 12 instead of 20), in the control in
    half the segments and in the treatment in the others, and no effect; the control's observed overall mean is
    the average of 10 and the low mean. A free sd per cell weighs the low cells most, which pulls every segment's
    baseline towards its low cell: the control's overall posterior sat 0.48 standard errors above its observed
    mean. With a segment's sd shared by its arms (times an arm factor) it is 0.02 from it."""
    segments, users = 8, 2000
    low = 10 - 20 / np.sqrt(users)
    ybar = np.array([[low, 10.0] * (segments // 2), [10.0, low] * (segments // 2)])
    sd = np.where(ybar < 10, 12.0, 20.0)
    n = np.full((2, segments), users)
    stats = mean_stats(["control", "treatment"], [f"s{i}" for i in range(segments)], n,
                       {"sum": n * ybar, "sumsq": (n - 1) * sd ** 2 + n * ybar ** 2}, "spend")
    result = fit(stats, Metric(name="spend", family="mean", column="spend"), SETTINGS)
    deviation = (float(result.overall_mean.isel(arm=0).mean()) - ybar[0].mean()) / (20 / np.sqrt(segments * users))
    # Monte Carlo sd of the posterior mean: the posterior sd over sqrt(ESS), under 0.03 standard errors here
    assert abs(deviation) < 0.15, deviation
    assert result.diagnostics.passed


@pytest.mark.parametrize("zero_arms", [(0,), (0, 1)], ids=["control", "both arms"])
def test_a_segment_where_nobody_spent_leaves_the_fit_sampling(zero_arms):
    """A small segment where no user spent anything has cells whose values are all equal (0): the normal's
    estimate of their sd is 0, and its within-cell likelihood grows without bound as the sd goes to 0, so a
    segment with no spend in both arms drove the fit to R-hat 10^14 (one such cell: likewise with a free sd per
    cell). Such a cell now says nothing about the spread; its sd is its segment's and arm's factors, as for the
    others."""
    n = np.array([[2000, 2000, 60], [2000, 2000, 60]])
    ybar = np.array([[1.5, 1.7, 1.0], [1.9, 2.1, 1.2]])
    sd = np.array([[14.0, 15.0, 9.0], [16.0, 17.0, 10.0]])
    for arm in zero_arms:
        ybar[arm, 2] = sd[arm, 2] = 0.0
    stats = mean_stats(["control", "treatment"], ["s0", "s1", "s2"], n,
                       {"sum": n * ybar, "sumsq": (n - 1) * sd ** 2 + n * ybar ** 2}, "spend")
    result = fit(stats, Metric(name="spend", family="mean", column="spend"), SETTINGS)
    assert result.diagnostics.passed, result.diagnostics.summary()
    observed = (n[0] * ybar[0]).sum() / n[0].sum()
    pooled_sd = np.sqrt(((n[0] - 1) * sd[0] ** 2).sum() / n[0].sum())
    deviation = (float(result.overall_mean.isel(arm=0).mean()) - observed) / (pooled_sd / np.sqrt(n[0].sum()))
    assert abs(deviation) < 0.25, deviation
