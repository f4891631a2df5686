"""Ratio family: statistics, delta method, model and closed form against independent per-user computations.

The references are computed here from per-user rows, not from the family's sums: the delta-method standard
error from the linearised per-user values, and a per-user bootstrap of the relative lift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.aggregation import aggregate
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families.ratio import cell_ratios, ratio_stats
from bayes_ab.posterior import fit
from bayes_ab.planning import fixed_horizon_sample_size
from bayes_ab.spec import Baseline, SamplerSettings, parse_spec
from bayes_ab.stopping.generate import accumulator, truth
from conftest import make_spec

CLOSED_FORM = SamplerSettings(draws=4000, chains=2, backend="conjugate", seed=3)
Z90 = 1.6448536269514722


def users(n: int = 20_000, lift: float = 0.145, seed: int = 1, segments: int = 1) -> pd.DataFrame:
    """Per-user story views and DMs, correlated through the views and a heavy-tailed user propensity
    (log-normal), so the data are not what the delta-method normal assumes; true ratio lift ``lift``."""
    rng = np.random.default_rng(seed)
    treated = rng.integers(0, 2, n)
    segment = rng.integers(0, segments, n)
    views = rng.negative_binomial(1.5, 1.5 / (1.5 + 8.0 * (1 + segment)))
    propensity = rng.lognormal(-0.5, 1.0, n)                     # mean 1
    dms = rng.poisson(0.05 * (1 + lift * treated) * propensity * views)
    return pd.DataFrame({"arm": np.where(treated == 1, "treatment", "control"), "segment": segment.astype(str),
                         "views": views, "dms": dms})


def ratio_spec(segments: bool = False, **sampler):
    return make_spec(metrics=[{"name": "dms_per_view", "family": "ratio", "numerator": "dms",
                               "denominator": "views"}],
                     segments=["segment"] if segments else [], sampler=sampler or None)


def delta_reference(rows: pd.DataFrame) -> tuple[float, float]:
    """Ratio of sums and its delta-method standard error from the per-user linearisation
    ``(y - r x) / xbar`` (Deng et al. 2018, eq. 3)."""
    y, x = rows["dms"].to_numpy(float), rows["views"].to_numpy(float)
    r = y.sum() / x.sum()
    linear = (y - r * x) / x.mean()
    return r, linear.std(ddof=1) / np.sqrt(len(y))


def test_statistics_and_delta_method_match_per_user_computation():
    rows = users()
    stats = aggregate(ratio_spec(), rows)["dms_per_view"]
    ratio, se = cell_ratios(stats)
    for k, arm in enumerate(stats["arm"].values):
        part = rows[rows["arm"] == arm]
        assert int(stats["n"][k, 0]) == len(part)
        assert float(stats["sum_num_den"][k, 0]) == pytest.approx(float((part["dms"] * part["views"]).sum()))
        assert int(stats["zero_den"][k, 0]) == int((part["views"] == 0).sum())
        r, s = delta_reference(part)
        assert ratio[k, 0] == pytest.approx(r, rel=1e-12)
        assert se[k, 0] == pytest.approx(s, rel=1e-9)


def test_closed_form_interval_is_the_delta_method_interval():
    rows = users()
    stats = aggregate(ratio_spec(), rows)["dms_per_view"]
    draws = fit(stats, ratio_spec().metrics[0], CLOSED_FORM).mean.values.reshape(-1, 2)
    for k, arm in enumerate(stats["arm"].values):
        r, s = delta_reference(rows[rows["arm"] == arm])
        low, high = np.quantile(draws[:, k], [0.05, 0.95])
        # quantiles of 8,000 t draws: Monte Carlo error about 3% of the half-width
        assert low == pytest.approx(r - Z90 * s, abs=0.1 * Z90 * s)
        assert high == pytest.approx(r + Z90 * s, abs=0.1 * Z90 * s)


def test_hierarchical_lift_interval_agrees_with_the_per_user_bootstrap():
    rows = users(n=12_000, seed=5)
    result = analyze(ratio_spec(draws=1000, tune=500, chains=2), rows)
    row = result.effects["dms_per_view"].overall("treatment")
    assert result.effects["dms_per_view"].diagnostics.passed
    rng = np.random.default_rng(7)
    ratios = {}
    for arm, part in rows.groupby("arm"):
        values = part[["dms", "views"]].to_numpy(float)
        sample = rng.integers(0, len(values), (4000, len(values)), dtype=np.int32)     # 4,000 replicates
        ratios[arm] = values[sample, 0].sum(axis=1) / values[sample, 1].sum(axis=1)
    lifts = ratios["treatment"] / ratios["control"] - 1
    low, high = np.quantile(lifts, [0.05, 0.95])
    width = high - low
    # Monte Carlo error of the two widths: the bootstrap's 5%/95% quantiles of 4,000 replicates move by about
    # 2% of the width, the model's interval from ~1,500 effective draws by about 3%: 3.6% together, and 11%
    # is three of those (measured: 0.981 of the bootstrap's width)
    assert (row.rel_high - row.rel_low) == pytest.approx(width, rel=0.11)
    # the medians differ by far less: about 1% of the width each
    assert row.rel_lift == pytest.approx(np.median(lifts), abs=0.05 * width)


def test_pooled_segments_cover_the_true_lift_and_weigh_segments_by_denominator():
    rows = users(n=30_000, seed=11, segments=3)
    result = analyze(ratio_spec(segments=True, draws=1000, tune=1000, chains=2), rows)
    effects = result.effects["dms_per_view"]
    overall = effects.overall("treatment")
    assert overall.rel_low <= 0.145 <= overall.rel_high
    observed = rows.groupby("arm")[["dms", "views"]].sum()
    control = observed.loc["control", "dms"] / observed.loc["control", "views"]
    control_row = next(r for r in effects.rows if r.segment == "overall" and r.is_control)
    assert control_row.observed_mean == pytest.approx(control, rel=1e-12)      # the ratio of sums
    assert control_row.mean == pytest.approx(control, rel=0.05)


@pytest.mark.slow
def test_interval_coverage_over_simulated_experiments():
    """The 90% interval of the relative lift covers the true +14.5% in about 90% of 300 experiments whose
    users are heavy-tailed (log-normal propensity, negative-binomial views): binomial sd 1.7 points."""
    spec = ratio_spec()
    metric = spec.metrics[0]
    covered = 0
    for seed in range(300):
        stats = aggregate(spec, users(n=4_000, seed=1000 + seed))["dms_per_view"]
        draws = fit(stats, metric, SamplerSettings(draws=2000, chains=1, backend="conjugate", seed=seed)).mean
        lift = (draws.sel(arm="treatment") / draws.sel(arm="control") - 1).values.ravel()
        low, high = np.quantile(lift, [0.05, 0.95])
        covered += low <= 0.145 <= high
    assert 0.85 <= covered / 300 <= 0.95, covered


def test_zero_and_negative_values_are_handled_as_documented():
    rows = users(n=4_000)
    rows.loc[rows.index[:50], "dms"] = 2            # users with DMs but no views stay in the sums
    rows.loc[rows.index[:50], "views"] = 0
    stats = aggregate(ratio_spec(), rows)["dms_per_view"]
    assert int(stats["zero_den"].sum()) == int((rows["views"] == 0).sum())
    assert float(stats["sum_num"].sum()) == rows["dms"].sum()
    refunds = rows.assign(dms=rows["dms"].astype(float))                  # negative numerators are allowed
    refunds.loc[refunds.index[100:200], "dms"] = -1.5
    assert float(aggregate(ratio_spec(), refunds)["dms_per_view"]["sum_num"].sum()) == pytest.approx(
        refunds["dms"].sum())
    with pytest.raises(DataError, match="column 'views'.*negative denominators"):
        aggregate(ratio_spec(), rows.assign(views=rows["views"] - 100))
    empty = rows.assign(views=np.where(rows["segment"] == "0", 0, rows["views"]))
    with pytest.raises(DataError, match="zero total denominator"):
        aggregate(ratio_spec(), empty)
    with pytest.raises(DataError, match=r"arm 't', segment 'all' has a total numerator <= 0"):
        sums = {"sum_num": [[1.0], [-5.0]], "sum_den": [[20.0], [20.0]], "sum_num2": [[9.0], [9.0]],
                "sum_den2": [[90.0], [90.0]], "sum_num_den": [[5.0], [5.0]]}
        ratio_stats(["c", "t"], ["all"], np.array([[10], [10]]), sums, "m")


def test_spec_asks_for_numerator_and_denominator():
    base = {"name": "x", "arms": [{"name": "c", "control": True}, {"name": "t"}]}
    with pytest.raises(SpecError, match=r"metrics\[0\]\.denominator: is required"):
        parse_spec({**base, "metrics": [{"name": "r", "family": "ratio", "numerator": "dms"}]})
    with pytest.raises(SpecError, match=r"metrics\[0\]\.column: does not apply to family 'ratio'"):
        parse_spec({**base, "metrics": [{"name": "r", "family": "ratio", "column": "dms", "numerator": "dms",
                                         "denominator": "views"}]})
    with pytest.raises(SpecError, match=r"metrics\[0\]\.numerator: does not apply to family 'count'"):
        parse_spec({**base, "metrics": [{"name": "r", "family": "count", "column": "dms", "numerator": "dms"}]})


def test_planning_variance_matches_the_simulated_users():
    """The fixed-horizon per-user variance of the linearised ratio (r / mean denominator) against the delta
    method on 400,000 users drawn by the family's own truth."""
    metric = ratio_spec().metrics[0]
    baseline = Baseline(0.05, 8.0)
    rng = np.random.default_rng(2)
    arms = np.zeros(400_000, dtype=np.int64)
    acc = accumulator(metric, ("control", "treatment"))
    acc.add(arms, truth(metric, baseline, [1.0, 1.0]).draw(rng, arms))
    ratio, variance = acc.estimate()
    assert ratio[0] == pytest.approx(0.05, rel=0.02)
    assert variance[0] * 400_000 == pytest.approx(0.05 / 8.0, rel=0.03)
    plan = fixed_horizon_sample_size(metric, baseline, effect=0.05)
    variance = (0.05 + 0.0525) / 8.0                 # control and treatment users, one of each
    assert plan.control_users == pytest.approx((1.959964 + 0.841621) ** 2 * variance / 0.0025 ** 2, rel=0.001)


@pytest.mark.slow
def test_marginalised_model_matches_the_plain_hierarchy_it_integrates():
    """Second implementation: the same priors and log-scale Gaussian cells as a plain PyMC model with every
    segment effect and baseline sampled (non-centred), on three arms and four segments whose lifts differ
    (where the plain model samples well); posterior means and sds of effect_mu and effect agree."""
    import pymc as pm

    from bayes_ab.families.ratio import Ratio

    rng = np.random.default_rng(4)
    frames = []
    for s, lift in enumerate((0.0, 0.1, 0.2, 0.3)):
        for arm, factor in (("control", 0.0), ("treatment", 1.0), ("third", -0.5)):
            views = rng.negative_binomial(1.5, 1.5 / 9.5, 700)
            frames.append(pd.DataFrame({"arm": arm, "segment": str(s), "views": views,
                                        "dms": rng.poisson(0.05 * (1 + factor * lift) * views)}))
    spec = make_spec(metrics=[{"name": "r", "family": "ratio", "numerator": "dms", "denominator": "views"}],
                     segments=["segment"], arms=("control", "treatment", "third"))
    stats = aggregate(spec, pd.concat(frames))["r"]
    metric = spec.metrics[0]
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=5)
    ours = fit(stats, metric, settings)
    assert ours.diagnostics.passed, ours.diagnostics.summary()
    data = Ratio().model_data(stats)
    with pm.Model(coords={"treatment": ["treatment", "third"], "segment": list("0123")}):
        mu = pm.Normal("effect_mu", 0.0, metric.prior.effect_sd, dims="treatment")
        sd = pm.HalfNormal("effect_sd", metric.prior.heterogeneity_sd, dims="treatment")
        effect = mu[:, None] + sd[:, None] * pm.Normal("z", 0.0, 1.0, dims=("treatment", "segment"))
        baseline = pm.Normal("baseline", 0.0, 10.0, dims="segment")
        predicted = pm.math.concatenate([baseline[None, :], baseline[None, :] + effect], axis=0)
        pm.Normal("y", predicted, np.sqrt(data["log_var"]), observed=data["log_ratio"])
        pm.Deterministic("effect", effect, dims=("treatment", "segment"))
        plain = pm.sample(1000, tune=1000, chains=2, random_seed=6, target_accept=0.95, progressbar=False,
                          compute_convergence_checks=False).posterior
    for name in ("effect_mu", "effect"):
        a, b = ours.idata.posterior[name], plain[name]
        sd = b.std(("chain", "draw"))
        # posterior means agree within a few Monte Carlo errors (ESS about a thousand: error ~ sd / 30)
        assert (np.abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw"))) / sd).values.max() < 0.15
        assert np.abs((a.std(("chain", "draw")) / sd).values - 1).max() < 0.15


def test_a_ratio_primary_can_be_planned_and_simulated():
    """The planner and the rule comparison run on simulated ratio users: a +20% ratio lift with 20,000 users
    a day is shipped in every one of 8 experiments, and nothing is shipped without an effect."""
    from bayes_ab.planning import plan_experiment, plan_settings

    spec = ratio_spec()
    plan = plan_settings(spec, daily_users=20_000, effect=0.2, days=14, experiments=8,
                         baseline={"dms_per_view": {"ratio": 0.05, "denominator": 8.0}})
    result = plan_experiment(spec, plan, seed=2)
    assert result.fixed_horizon[0].control_users > 0
    assert result.simulated.scenario("planned effect").experiments == 8
    assert result.assurance(14, "planned effect", ("ship",)) == 1.0
    assert result.assurance(14, "no effect", ("ship",)) == 0.0
    with pytest.raises(SpecError, match="'ratio' and 'denominator'"):
        plan_settings(spec, daily_users=20_000, baseline={"dms_per_view": 0.05})


def test_report_shows_a_ratio_metric_with_escaped_column_names():
    """The HTML report renders a ratio metric like any other; the column names the model note quotes are
    data-derived text and are escaped."""
    from bayes_ab.analysis import analyze_stats
    from bayes_ab.report import render_report

    rows = users(n=4_000).rename(columns={"dms": "<b>dms</b>"})
    spec = make_spec(metrics=[{"name": "dms_per_view", "family": "ratio", "numerator": "<b>dms</b>",
                               "denominator": "views"}])
    stats = aggregate(spec, rows)
    html = render_report(analyze_stats(spec, stats, sampler=SamplerSettings(draws=500, chains=2,
                                                                            backend="conjugate")))
    assert "dms_per_view" in html and "sum(&lt;b&gt;dms&lt;/b&gt;) / sum(views)" in html
    assert "<b>dms</b>" not in html


def test_a_denominator_one_user_carries_is_warned_about_and_ordinary_data_is_not():
    from bayes_ab.families import family_for

    spec = ratio_spec()
    metric = spec.metrics[0]
    rows = users(2_000)
    assert family_for(metric).warnings(aggregate(spec, rows)[metric.name], metric) == ()
    column = metric.params.denominator
    rows.loc[rows.index[rows["arm"] == "treatment"][0], column] = 1e9       # a logging error
    found = family_for(metric).warnings(aggregate(spec, rows)[metric.name], metric)
    assert len(found) == 1 and found[0].startswith(f"arm 'treatment': the denominator ({column!r}) is as concentrated "
                                                   "as if 1.0 of its")
