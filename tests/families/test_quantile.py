"""Quantile family: the beta argument against a Monte Carlo Bayesian bootstrap on the raw values, users as
clusters against a user-level bootstrap, the naive per-event analysis shown over-confident in A/A tests, the
SQL histogram against a numpy one, the effect prior, the simulation truth, and bad input."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import betainc

from bayes_ab.aggregation import aggregate
from bayes_ab.analysis import analyze_stats
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.families.quantile import QuantileParams, quantile_stats, sample_quantile
from bayes_ab.metric import Baseline, Metric
from bayes_ab.models.hierarchy import prior_data
from bayes_ab.models.quantiles import (BIN_WIDTH, bin_centres, bin_edges, bin_keys, observed_quantile, quantile_cdf,
                                       quantile_draws)
from bayes_ab.spec import EffectPrior, SamplerSettings

from conftest import make_spec

FLAT = SamplerSettings(draws=4000, chains=2, seed=5, exact=False)


def clustered_stats(arms, uid, values, p, metric="lat"):
    """Statistics of per-event values built in numpy (a second implementation of the SQL's window sums):
    per user and bin the user's values there (e), in all (m) and in lower bins (before)."""
    arm_names = ["control", "treatment"]
    keys_all = bin_keys(values)
    keys = np.unique(keys_all)
    position = {k: j for j, k in enumerate(keys)}
    hist = {name: np.zeros((2, 1, len(keys))) for name in ("events", "cross", "square")}
    users = np.zeros((2, 1))
    frame = pd.DataFrame({"u": uid, "k": keys_all})
    per = frame.groupby(["u", "k"]).size().rename("e").reset_index().sort_values(["u", "k"])
    per["m"] = per.groupby("u")["e"].transform("sum")
    per["before"] = per.groupby("u")["e"].cumsum() - per["e"]
    for row in per.itertuples(index=False):
        a, j = arms[row.u], position[row.k]
        hist["events"][a, 0, j] += row.e
        hist["cross"][a, 0, j] += row.e * row.m
        hist["square"][a, 0, j] += row.e * (2 * row.before + row.e)
        users[a, 0] += row.before == 0
    return quantile_stats(arm_names, ["all users"], keys, hist, users, metric, p)


def quantile_metric(p=0.95, **extra):
    return Metric(name="lat", family="quantile", column="latency", params=QuantileParams(p, "ms"), **extra)


def test_bins_cover_values_with_one_percent_width_and_centres_map_back():
    values = np.array([0.0, 1e-7, 1e-6, 2e-6, 0.37, 1.0, 250.0, 1e6])
    keys = bin_keys(values)
    lower, upper = bin_edges(keys)
    assert keys[0] == keys[1] == keys[2] == 0
    assert np.all((values > lower) | (keys == 0)) and np.all(values <= upper * (1 + 1e-12))
    inner = keys > 0
    np.testing.assert_allclose(upper[inner] / lower[inner], 1 + BIN_WIDTH)
    np.testing.assert_array_equal(bin_keys(bin_centres(keys)), keys)
    np.testing.assert_array_equal(bin_keys(bin_centres(np.arange(4))), np.arange(4))


def test_the_bin_grid_is_fixed():
    """Aggregated rows and stored statistics keep their meaning only if the grid never moves: 1 is in bin 13,823 of
    0.1% bins above 1e-6, and everything up to 1e-6 is in bin 0."""
    assert bin_keys(np.array([1.0, 1e-6, 1.0000001e-6]))[[0, 1]].tolist() == [13_823, 0]
    assert bin_keys(np.array([1.0000001e-6]))[0] == 1
    lower, upper = bin_edges(np.array([0, 1, 2]))
    np.testing.assert_allclose(lower, [0.0, 1e-6, 1.001e-6], rtol=1e-12)
    np.testing.assert_allclose(upper, [1e-6, 1.001e-6, 1.001 ** 2 * 1e-6], rtol=1e-12)
    np.testing.assert_allclose(bin_edges(np.array([13_823]))[1], 1e-6 * 1.001 ** 13_823)


def test_sql_bins_equal_numpy_bins():
    rng = np.random.default_rng(0)
    values = np.concatenate([[0.0, 1e-6, 5e-7], rng.lognormal(3, 2, 3000)])
    frame = pd.DataFrame({"arm": np.tile(["control", "treatment"], len(values) // 2 + 1)[:len(values)],
                          "latency": values})
    spec = make_spec([{"name": "lat", "family": "quantile", "column": "latency", "quantile": 0.5}])
    stats = aggregate(spec, frame)["lat"]
    per_key = stats["events"].sum(("arm", "segment"))
    expected = pd.Series(bin_keys(values)).value_counts().sort_index()
    np.testing.assert_array_equal(stats["bin"].values, expected.index.to_numpy())
    np.testing.assert_array_equal(per_key.values, expected.to_numpy())


@pytest.mark.parametrize("p", [0.02, 0.5, 0.9])
def test_one_value_per_user_cdf_is_the_bayesian_bootstrap_beta(p):
    rng = np.random.default_rng(1)
    values = rng.lognormal(5, 0.8, 400)
    keys = np.unique(bin_keys(values))
    events = np.array([np.sum(bin_keys(values) == k) for k in keys], dtype=float)
    cdf = quantile_cdf(events, events, events, p)
    c = np.cumsum(events)
    inner = (c > 0) & (c < 400)
    np.testing.assert_allclose(cdf[inner], 1 - betainc(c[inner], 400 - c[inner], p), atol=1e-12)
    # one value per bin: the first edge has a single value below it, Beta(1, 49); the last but one a single above
    single, below = np.ones(50), np.arange(1, 50)
    np.testing.assert_allclose(quantile_cdf(single, single, single, p)[:-1], 1 - betainc(below, 50 - below, p),
                               atol=1e-12)
    assert cdf[-1] == 1.0 and np.all(np.diff(cdf) >= 0)


def test_draws_match_a_monte_carlo_bayesian_bootstrap_of_the_raw_values():
    """Dirichlet(1, ..., 1) weights on 300 users' raw values, the weighted p90 of each replicate: the family's
    draws (from the histogram alone) have the same quantiles, within Monte Carlo error and one bin."""
    rng = np.random.default_rng(2)
    values = np.sort(rng.lognormal(4, 0.7, 300))
    weights = rng.dirichlet(np.ones(300), size=20000)
    reference = values[np.argmax(np.cumsum(weights, axis=1) >= 0.9, axis=1)]
    keys = np.unique(bin_keys(values))
    events = np.array([np.sum(bin_keys(values) == k) for k in keys], dtype=float)
    draws = quantile_draws(rng, keys, quantile_cdf(events, events, events, 0.9), 20000)
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        # 20,000 draws place a quantile of the posterior to ~1% of its spread; a bin is 1% of the value
        spread = np.quantile(reference, 0.95) - np.quantile(reference, 0.05)
        assert abs(np.quantile(draws, q) - np.quantile(reference, q)) < 0.04 * spread + BIN_WIDTH * np.quantile(reference, q)


def _events(rng, users, arm_effect=1.0, frailty_sd=0.6, rate=15):
    arms = rng.integers(0, 2, users)
    frailty = rng.normal(0, frailty_sd, users)
    counts = rng.poisson(rate, users) + 1
    uid = np.repeat(np.arange(users), counts)
    values = np.exp(5 + frailty[uid] + 0.5 * rng.standard_normal(len(uid))) * np.where(arms[uid] == 1, arm_effect, 1)
    return arms, uid, values


def test_clustered_interval_matches_a_user_level_bayesian_bootstrap():
    """Several values per user, users differing strongly: the cluster-robust posterior of the p95 has the spread
    of a Dirichlet-weighted bootstrap over users (the exact Bayesian bootstrap, by Monte Carlo) within 12%."""
    rng = np.random.default_rng(3)
    arms, uid, values = _events(rng, 600)
    control = arms[uid] == 0
    order = np.argsort(values[control])
    sorted_values, sorted_users = values[control][order], uid[control][order]
    members = np.flatnonzero(arms == 0)
    index = np.searchsorted(members, sorted_users)
    reference = []
    for _ in range(2000):
        w = rng.dirichlet(np.ones(len(members)))[index]
        reference.append(sorted_values[np.argmax(np.cumsum(w) >= 0.95 * w.sum())])
    stats = clustered_stats(arms, uid, values, 0.95)
    draws = sample_quantile(stats, quantile_metric(), FLAT)[0].posterior["overall_mean"].sel(arm="control").values.ravel()
    width = np.quantile(reference, 0.95) - np.quantile(reference, 0.05)
    assert abs((np.quantile(draws, 0.95) - np.quantile(draws, 0.05)) / width - 1) < 0.12
    assert abs(np.median(draws) - np.median(reference)) < 0.1 * width


def test_sql_panel_statistics_equal_the_numpy_window_sums():
    rng = np.random.default_rng(4)
    arms, uid, values = _events(rng, 300)
    frame = pd.DataFrame({"user_id": uid, "arm": np.where(arms[uid] == 1, "treatment", "control"),
                          "request": np.arange(len(uid)), "exposure": 0, "latency": values})
    spec = make_spec([{"name": "lat", "family": "quantile", "column": "latency", "quantile": 0.95}],
                     unit_column="user_id", activity_column="request", day_column="exposure")
    from_sql = aggregate(spec, frame)["lat"]
    reference = clustered_stats(arms, uid, values, 0.95)
    for name in ("events", "cross", "square", "n"):
        np.testing.assert_allclose(from_sql[name].values, reference[name].values)


def _covers(stats, truth_ratio, p, naive=False):
    draws = sample_quantile(stats, quantile_metric(p), SamplerSettings(draws=1000, chains=2, seed=6, exact=False))[0]
    ratio = (draws.posterior["overall_mean"].sel(arm="treatment") / draws.posterior["overall_mean"].sel(arm="control"))
    low, high = np.quantile(ratio.values, [0.05, 0.95])
    return low <= truth_ratio <= high


def test_events_as_independent_users_are_over_confident_and_clusters_are_not():
    """A/A with strongly clustered requests: the 90% interval of the p95 ratio covers 1 in about 90% of 200
    experiments when users are clusters; treating each request as a user it covers far less."""
    rng = np.random.default_rng(5)
    clustered = naive = 0
    runs = 200
    for _ in range(runs):
        arms, uid, values = _events(rng, 200)
        clustered += _covers(clustered_stats(arms, uid, values, 0.95), 1.0, 0.95)
        each = np.arange(len(uid))
        naive += _covers(clustered_stats(arms[uid], each, values, 0.95), 1.0, 0.95)
    # binomial sd of a 90% coverage over 200 runs: 2.1 points
    assert 0.83 <= clustered / runs <= 0.96
    assert naive / runs < 0.75


def test_per_user_coverage_of_a_true_ratio():
    rng = np.random.default_rng(6)
    hits, runs, p = 0, 200, 0.9
    for _ in range(runs):
        arms = rng.integers(0, 2, 600)
        values = rng.lognormal(4, 0.8, 600) * np.where(arms == 1, 0.93, 1.0)
        hits += _covers(clustered_stats(arms, np.arange(600), values, p), 0.93, p)
    assert 0.83 <= hits / runs <= 0.96


def test_prior_weights_are_the_normal_and_student_t_log_densities():
    """Up to a constant per prior: the log weights differ between draws as scipy's log densities do."""
    from scipy import stats as st

    from bayes_ab.models.hierarchy import PRIOR_EFFECT_DF, PRIOR_EFFECT_MEAN, PRIOR_EFFECT_SD
    from bayes_ab.models.prior_resampling import prior_log_weights

    effects = np.array([[-0.3], [0.0], [0.05], [0.4]])
    normal = prior_log_weights(effects, {PRIOR_EFFECT_SD: np.asarray(0.2)})
    expected = st.norm.logpdf(effects[:, 0], 0, 0.2)
    np.testing.assert_allclose(normal - normal[0], expected - expected[0])
    t = prior_log_weights(effects, {PRIOR_EFFECT_SD: np.asarray(0.1), PRIOR_EFFECT_MEAN: np.asarray(0.02),
                                    PRIOR_EFFECT_DF: np.asarray(3.0)})
    expected = st.t.logpdf(effects[:, 0], 3.0, 0.02, 0.1)
    np.testing.assert_allclose(t - t[0], expected - expected[0])


def test_effect_prior_shrinks_a_noisy_effect_and_reports_its_effective_draws():
    rng = np.random.default_rng(7)
    arms = rng.integers(0, 2, 60)
    values = rng.lognormal(4, 1.0, 60) * np.where(arms == 1, 1.6, 1.0)
    stats = clustered_stats(arms, np.arange(60), values, 0.5)
    flat, _ = sample_quantile(stats, quantile_metric(0.5), FLAT)
    sceptical, ess = sample_quantile(stats, quantile_metric(0.5), FLAT, prior_data(EffectPrior(effect_sd=0.05)))
    assert abs(float(sceptical.posterior["effect_mu"].mean())) < 0.5 * abs(float(flat.posterior["effect_mu"].mean()))
    assert 0 < ess < 8000
    wide, wide_ess = sample_quantile(stats, quantile_metric(0.5), FLAT, prior_data(EffectPrior(effect_sd=50.0)))
    assert float(wide.posterior["effect_mu"].mean()) == pytest.approx(float(flat.posterior["effect_mu"].mean()), abs=0.05)
    assert wide_ess > ess


def test_analysis_reports_the_quantile_per_segment_and_overall_of_all_values():
    rng = np.random.default_rng(8)
    n = 4000
    arm = rng.integers(0, 2, n)
    segment = rng.choice(["fast", "slow"], n)
    values = rng.lognormal(np.where(segment == "slow", 6, 4), 0.5) * np.where(arm == 1, 0.9, 1.0)
    frame = pd.DataFrame({"arm": np.where(arm == 1, "treatment", "control"), "latency": values, "region": segment})
    spec = make_spec([{"name": "lat", "family": "quantile", "column": "latency", "quantile": 0.75,
                       "direction": "decrease", "unit": "ms"}], segments=("region",))
    stats = aggregate(spec, frame)["lat"]
    effects = analyze_stats(spec, {"lat": stats}).effects["lat"]
    control = effects.overall("control")
    # the overall p75 is of all values together (a mixture), not an average of the two segments' p75s
    assert control.observed_mean == pytest.approx(np.quantile(values[arm == 0], 0.75), rel=BIN_WIDTH)
    assert control.mean == pytest.approx(control.observed_mean, rel=0.03)
    assert effects.overall("treatment").rel_lift == pytest.approx(-0.1, abs=0.05)
    assert effects.diagnostics.passed and "segments not pooled" in effects.model_note
    assert "ms" in family_for(spec.metrics[0]).format_absolute(1.5, metric=spec.metrics[0])


def test_truth_has_the_baseline_quantile_and_planning_variance_is_the_sample_quantiles():
    metric = quantile_metric(0.95)
    family = family_for(metric)
    truth = family.truth(metric, Baseline(300.0, 0.7), np.array([1.0, 0.9]))
    rng = np.random.default_rng(9)
    arms = np.repeat([0, 1], 200_000)
    values = truth.draw(rng, arms)
    assert np.quantile(values[arms == 0], 0.95) == pytest.approx(300, rel=0.01)
    assert np.quantile(values[arms == 1], 0.95) == pytest.approx(270, rel=0.01)
    estimates = [np.quantile(truth.draw(rng, np.zeros(2000, dtype=int)), 0.95) for _ in range(400)]
    predicted = family.unit_variance(metric, Baseline(300.0, 0.7), 300.0) / 2000
    # the variance of 400 sample variances' worth: a sd of sqrt(2 / 399) ~ 7% of it
    assert np.var(estimates) == pytest.approx(predicted, rel=0.25)


def test_accumulator_keeps_the_histogram_the_aggregation_would():
    metric = quantile_metric(0.5)
    family = family_for(metric)
    acc = family.accumulator(metric, ("control", "treatment"), None)
    rng = np.random.default_rng(10)
    arms = rng.integers(0, 2, 1000)
    values = rng.lognormal(3, 1, 1000)
    acc.add(arms[:500], values[:500])
    acc.add(arms[500:], values[500:])
    stats = acc.stats()
    assert float(stats["events"].sum()) == 1000 and list(acc.users()) == [np.sum(arms == 0), np.sum(arms == 1)]
    means, variances = acc.estimate()
    assert means[0] == pytest.approx(np.quantile(values[arms == 0], 0.5), rel=0.02)
    assert np.all(variances > 0)
    assert observed_quantile(stats["bin"].values, stats["events"].isel(arm=0, segment=0).values, 0.5) == means[0]


@pytest.mark.parametrize("field, value, message", [
    ("quantile", None, "quantile: is required"),
    ("quantile", 1.5, "must be in \\(0, 1\\)"),
    ("novelty", True, "novelty: is not available for quantile"),
])
def test_spec_errors_name_the_field(field, value, message):
    metric = {"name": "lat", "family": "quantile", "column": "latency", "quantile": 0.95, field: value}
    if value is None:
        metric.pop(field)
    with pytest.raises(SpecError, match=message):
        make_spec([metric])


def test_negative_values_are_refused_with_the_column_and_metric():
    frame = pd.DataFrame({"arm": ["control", "treatment"] * 3, "latency": [1.0, 2.0, -3.0, 4.0, 5.0, 6.0]})
    spec = make_spec([{"name": "lat", "family": "quantile", "column": "latency", "quantile": 0.5}])
    with pytest.raises(DataError, match="column 'latency' \\(metric 'lat'\\) has negative values"):
        aggregate(spec, frame)


def test_baseline_needs_the_quantile_and_its_log_sd():
    family = family_for(quantile_metric())
    assert family.parse_baseline({"quantile": 420, "log_sd": 0.9}, "plan") == Baseline(420.0, 0.9)
    with pytest.raises(SpecError, match="'quantile' and 'log_sd'"):
        family.parse_baseline(420, "plan")


def test_plan_simulates_a_p95_guardrail_and_rolls_back_its_breach(tmp_path, capsys):
    from bayes_ab.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text("""
name: qplan
arm_column: arm
arms: [{name: control, control: true}, {name: fast}]
metrics:
  - {name: conversion, family: conversion, column: converted}
  - {name: latency_p95, family: quantile, column: latency_ms, quantile: 0.95, direction: decrease,
     role: guardrail, margin: 0.05}
plan:
  daily_users: 20000
  baseline: {conversion: 0.1, latency_p95: {quantile: 800, log_sd: 0.8}}
  effect: 0.05
  days: 8
""")
    assert main(["plan", str(spec), "--experiments", "20", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    breach = next(line for line in out.splitlines() if line.strip().startswith("guardrail breach: latency_p95") and
                  "default" in line)
    # the breach is a 15% worse p95 against a 5% margin: the rule rolls back nearly always
    rollback = float(breach.split()[5].rstrip("%"))
    assert rollback >= 80, breach


def test_draws_fill_each_bin_log_uniformly_in_proportion_to_its_probability():
    """Inversion inside a bin: with posterior mass 0.25 / 0.75 on two bins, a quarter of the draws fall in the first,
    and within each bin the log of a draw is uniform between the edges (KS test)."""
    from scipy import stats as st

    keys = np.array([5000, 5001, 5003])
    lower, upper = bin_edges(keys)
    draws = quantile_draws(np.random.default_rng(11), keys, np.array([0.25, 0.5, 1.0]), 40_000)
    which = np.searchsorted(upper, draws)
    assert np.bincount(which, minlength=3) / len(draws) == pytest.approx([0.25, 0.25, 0.5], abs=0.01)   # sd 0.003
    for k in range(3):
        position = np.log(draws[which == k] / lower[k]) / np.log(upper[k] / lower[k])
        assert st.kstest(position, "uniform").pvalue > 0.001


def test_a_quantile_among_zeros_is_located_in_the_first_bin():
    """Mostly zero values (sessions without a purchase): the median is in bin 0, [0, 1e-6], and finite."""
    keys = np.array([0, bin_keys(np.array([50.0]))[0]])
    value = observed_quantile(keys, np.array([80.0, 20.0]), 0.5)
    assert 0 <= value <= bin_edges(keys[:1])[1][0]
    draws = quantile_draws(np.random.default_rng(12), keys, np.array([1.0, 1.0]), 4000)
    assert np.all((draws >= 0) & (draws <= bin_edges(keys[:1])[1][0]))
    # uniform on [0, 1e-6] inside bin 0 (linear: its lower edge is 0): mean 5e-7, sd of the mean 4.6e-9
    assert draws.mean() == pytest.approx(5e-7, abs=2e-8)


def test_observed_quantile_interpolates_log_linearly_inside_its_bin():
    keys = np.array([5000, 5001, 5004])
    lower, upper = bin_edges(keys)
    events = np.array([1.0, 3.0, 4.0])              # shares 0.125, 0.5, 1.0 at the upper edges
    assert observed_quantile(keys, events, 0.125) == pytest.approx(upper[0], rel=1e-12)
    third = (0.25 - 0.125) / (0.5 - 0.125)           # p = 0.25 lies a third into bin 5001
    assert observed_quantile(keys, events, 0.25) == pytest.approx(lower[1] * (upper[1] / lower[1]) ** third, rel=1e-12)
    assert observed_quantile(keys, events, 0.75) == pytest.approx(lower[2] * (upper[2] / lower[2]) ** 0.5, rel=1e-12)
    assert np.isnan(observed_quantile(keys, np.zeros(3), 0.5))
    one = observed_quantile(keys, np.array([0.0, 1.0, 0.0]), 0.5)        # a single value: the middle of its bin
    assert one == pytest.approx(lower[1] * (upper[1] / lower[1]) ** 0.5, rel=1e-12)


def test_a_list_of_quantiles_declares_one_metric_each_with_the_entrys_role():
    spec = make_spec([{"name": "lat", "family": "quantile", "column": "latency", "quantiles": [0.5, 0.95, 0.999],
                       "unit": "ms", "role": "guardrail", "direction": "decrease"}])
    assert [(m.name, m.params.quantile, m.params.unit, m.role) for m in spec.metrics] == [
        ("lat_p50", 0.5, "ms", "guardrail"), ("lat_p95", 0.95, "ms", "guardrail"), ("lat_p99_9", 0.999, "ms", "guardrail")]
    rows = pd.DataFrame({"arm": ["control", "treatment"] * 50, "latency": np.arange(1.0, 101.0)})
    stats = aggregate(spec, rows)
    assert sorted(stats) == ["lat_p50", "lat_p95", "lat_p99_9"]
    assert stats["lat_p95"].attrs["quantile"] == 0.95


@pytest.mark.parametrize("fields, message", [
    ({"quantiles": [0.5], "quantile": 0.9}, "quantiles: and quantile exclude each other"),
    ({"quantiles": []}, "quantiles: must be a non-empty list"),
    ({"quantiles": [0.5, 1.5]}, "quantiles: every quantile must be a number in \\(0, 1\\), got 1.5"),
    ({"quantiles": [0.5, 0.5]}, "quantiles: lists a quantile twice"),
])
def test_a_list_of_quantiles_is_checked(fields, message):
    with pytest.raises(SpecError, match=message):
        make_spec([{"name": "lat", "family": "quantile", "column": "latency", **fields}])
