"""The switchback family: its regression against statsmodels' fixed-effects OLS, the carry-over it measures,
coverage with and without a washout on simulated switchbacks, and its warnings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ab.errors import DataError
from bayes_ab.families.switchback import Switchback, regression, sample_switchback, switchback_stats
from bayes_ab.metric import EffectPrior, Metric
from bayes_ab.planning.switchback import simulate_cells
from bayes_ab.sampling import SamplerSettings

METRIC = Metric("latency", Switchback.name)


def stats_of(cells: pd.DataFrame, washout: int = 0):
    units = sorted(cells["unit"].unique())
    return switchback_stats("latency", ["control", "treatment"], units,
                            cells["unit"].map({u: k for k, u in enumerate(units)}).to_numpy(),
                            cells["period"].to_numpy(), (cells["arm"] == "treatment").to_numpy().astype(int),
                            cells["total"].to_numpy(), cells["weight"].to_numpy(), washout)


def test_effect_and_its_interval_equal_fixed_effects_ols():
    sm = pytest.importorskip("statsmodels.formula.api")
    cells = simulate_cells(np.random.default_rng(1), 6, 60, 100.0, 5.0, 0.03, cycle=0.3, unit_sd=0.2)
    stats = stats_of(cells)
    frame = cells.assign(y=cells["total"] / cells["weight"], treated=(cells["arm"] == "treatment").astype(float))
    ols = sm.ols("y ~ C(unit) + C(period) + treated", data=frame).fit()
    fitted = regression(stats)
    assert fitted.theta == pytest.approx(ols.params["treated"], rel=1e-9)
    draws = sample_switchback(stats, METRIC, SamplerSettings(chains=2, draws=20_000, seed=3))[0].posterior["mean"]
    theta = (draws.isel(arm=1) - draws.isel(arm=0)).values.ravel()
    low, high = ols.conf_int(alpha=0.1).loc["treated"]
    assert np.quantile(theta, 0.05) == pytest.approx(low, abs=0.03 * (high - low))
    assert np.quantile(theta, 0.95) == pytest.approx(high, abs=0.03 * (high - low))
    # the control's level: OLS's fitted values with the treatment off, averaged over the cells by their rows
    level = np.average(ols.predict(frame.assign(treated=0.0)), weights=frame["weight"])
    assert fitted.control == pytest.approx(level, rel=1e-9)
    assert float(draws.isel(arm=0).mean()) == pytest.approx(level, abs=0.01 * (high - low))


def test_carry_over_is_measured_and_the_washout_keeps_it_out_of_the_effect():
    rng = np.random.default_rng(2)
    cells = simulate_cells(rng, 8, 200, 100.0, 2.0, -0.1, carry=0.5, cycle=0.3, unit_sd=0.2)
    truth = -0.1 * 100.0
    with_washout, without = regression(stats_of(cells, washout=1)), regression(stats_of(cells, washout=0))
    assert with_washout.carry == pytest.approx(0.5 * truth, abs=4 * with_washout.carry_se)
    assert with_washout.theta == pytest.approx(truth, abs=4 * np.sqrt(with_washout.sigma2 * with_washout.scale[0, 0]))
    # without the washout the lingering arm pulls the effect towards 0, and the family says so
    assert abs(without.theta) < abs(truth) - 1.0
    warnings = Switchback().warnings(stats_of(cells, washout=0),
                                     Metric("latency", Switchback.name, params=None))
    assert any("set switchback.washout" in w for w in warnings)


@pytest.mark.parametrize("carry, washout", [(0.0, 0), (0.5, 1)])
def test_ninety_percent_intervals_cover_the_effect(carry, washout):
    """200 simulated switchbacks (8 units x 72 periods, daily cycle, unit levels): coverage within 3.5 binomial se of
    90% (2.1 points)."""
    rng = np.random.default_rng(10 + washout)
    covered = 0
    for _ in range(200):
        cells = simulate_cells(rng, 8, 72, 100.0, 3.0, 0.05, carry=carry, cycle=0.3, unit_sd=0.2)
        draws = sample_switchback(stats_of(cells, washout), METRIC,
                                  SamplerSettings(chains=1, draws=2000, seed=int(rng.integers(1 << 30))))[0]
        theta = (draws.posterior["mean"].isel(arm=1) - draws.posterior["mean"].isel(arm=0)).values.ravel()
        low, high = np.quantile(theta, [0.05, 0.95])
        covered += low <= 5.0 <= high
    assert 0.825 <= covered / 200 <= 0.975


def test_the_effect_prior_pulls_a_noisy_effect_towards_zero():
    cells = simulate_cells(np.random.default_rng(4), 4, 30, 100.0, 20.0, 0.2, cycle=0.3)
    stats = stats_of(cells)
    flat = sample_switchback(stats, METRIC, SamplerSettings(chains=2, draws=4000, seed=1))[0].posterior["mean"]
    sceptical = Metric("latency", Switchback.name, prior=EffectPrior(effect_sd=0.02))
    pulled, ess = Switchback().exact_posterior(stats, sceptical, SamplerSettings(chains=2, draws=4000, seed=1))
    lift = lambda d: float((d.isel(arm=1) / d.isel(arm=0) - 1).mean())        # noqa: E731
    assert abs(lift(pulled.posterior["mean"])) < abs(lift(flat)) and 0 < ess <= 8000


def test_a_sceptical_prior_on_a_few_noisy_hours_still_gives_a_passing_effective_size():
    """Two units over 6 hours, noise 80% of the level, a prior of sd 0.02 on the log lift: the flat-prior
    posterior is so much wider than the prior that the usual 4 proposals per draw kept an effective size of 248 (a
    failed fit, as the latency switchback's first hours did); more proposals are drawn until it passes."""
    cells = simulate_cells(np.random.default_rng(4), 2, 6, 100.0, 80.0, 0.2, cycle=0.3)
    sceptical = Metric("latency", Switchback.name, prior=EffectPrior(effect_sd=0.02))
    _, ess = Switchback().exact_posterior(stats_of(cells), sceptical, SamplerSettings(chains=2, draws=1000, seed=1))
    assert 400 <= ess <= 2000


def test_bad_cells_are_refused():
    cells = simulate_cells(np.random.default_rng(5), 4, 10, 100.0, 2.0, 0.0)
    with pytest.raises(DataError, match="has no rows or a zero denominator"):
        stats_of(cells.assign(weight=np.where(cells.index == 3, 0.0, cells["weight"])))
    with pytest.raises(DataError, match="arm 'treatment' has no switchback cells"):
        stats_of(cells.assign(arm="control"))
    one_period = cells[cells["period"] == 0]
    with pytest.raises(DataError, match="leaves the effect unidentified"):
        regression(stats_of(one_period))


def test_a_longer_washout_leaves_out_the_periods_counted_from_each_switch():
    """Cells left out with washout 2, against a count by pandas: per unit, the cells less than 2 periods after the
    unit's last switch (a unit's first period is not after a switch)."""
    cells = simulate_cells(np.random.default_rng(6), 5, 80, 100.0, 2.0, 0.05, cycle=0.3)
    fitted = regression(stats_of(cells, washout=2))
    expected = 0
    for _, unit in cells.sort_values("period").groupby("unit"):
        since = None
        for arm, previous in zip(unit["arm"].iloc[1:], unit["arm"].iloc[:-1]):
            since = 0 if arm != previous else (None if since is None else since + 1)
            expected += since is not None and since < 2
    assert fitted.left_out == expected and fitted.cells + fitted.left_out == len(cells)


def test_two_units_are_enough_and_the_prior_keeps_most_draws():
    cells = simulate_cells(np.random.default_rng(7), 2, 60, 100.0, 2.0, 0.05, cycle=0.3)
    stats = stats_of(cells)
    assert stats.sizes["unit"] == 2
    _, ess = Switchback().exact_posterior(stats, METRIC, SamplerSettings(chains=2, draws=2000, seed=1))
    assert 2000 < ess <= 4000          # the default prior (sd 0.5 on the log lift) barely weighs a 5% effect
    with pytest.raises(DataError, match="at least 2 units"):
        stats_of(cells[cells["unit"] == "u0"])


def test_residuals_correlated_over_time_are_warned_about():
    """A drift of each unit's own (AR(1), correlation 0.8 hour to hour) that the period effects do not share: the
    lag-1 autocorrelation of the residuals is found and warned about; independent cell noise is not."""
    rng = np.random.default_rng(8)
    cells = simulate_cells(rng, 6, 120, 100.0, 0.5, 0.05, cycle=0.3)
    drift = np.zeros((120, 6))
    for p in range(1, 120):
        drift[p] = 0.8 * drift[p - 1] + rng.standard_normal(6)
    drifting = cells.assign(total=cells["total"] + 100 * drift.ravel())
    quiet, drifted = regression(stats_of(cells)), regression(stats_of(drifting))
    assert abs(quiet.autocorrelation) < 0.2 and drifted.autocorrelation > 0.5
    warnings = Switchback().warnings(stats_of(drifting), METRIC)
    assert any("correlate at" in w and "too narrow" in w for w in warnings)
    assert not any("correlate at" in w for w in Switchback().warnings(stats_of(cells), METRIC))


def test_draws_without_a_relative_lift_get_no_prior_weight():
    """A control level near 0 with noisy cells: some flat-prior draws have a non-positive mean, where the log lift
    the prior weighs is undefined. Such draws must not be kept by the effect prior (a NaN effect once counted as
    the prior's most likely value and was kept first)."""
    cells = simulate_cells(np.random.default_rng(9), 4, 24, 0.5, 4.0, 0.0)
    stats = stats_of(cells)
    flat = sample_switchback(stats, METRIC, SamplerSettings(chains=1, draws=4000, seed=2))[0].posterior["mean"]
    assert float((flat <= 0).any("arm").mean()) > 0.1          # the proposals do hold such draws
    weighted, _ = Switchback().exact_posterior(stats, METRIC, SamplerSettings(chains=1, draws=4000, seed=2))
    assert bool((weighted.posterior["mean"] > 0).all())
