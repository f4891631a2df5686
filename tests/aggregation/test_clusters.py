"""Cluster-randomised experiments: per-cluster statistics against pandas, the design's data checks, the check
that catches an undeclared cluster design, and the analysis against cluster-robust OLS and simulation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.analysis import analyze_stats
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.families.clustered import clustered_metric
from bayes_ab.metric import Metric
from bayes_ab.planning.clusters import simulate_clusters

from conftest import make_spec

METRICS = [{"name": "conversion", "family": "conversion", "column": "converted"},
           {"name": "spend", "family": "mean", "column": "spend", "cap": 50},
           {"name": "clicks", "family": "count", "column": "clicks"},
           {"name": "per_view", "family": "ratio", "numerator": "clicks", "denominator": "views"}]


def spec(metrics=METRICS, **extra):
    return make_spec(metrics, cluster_column="city", unit_column="user_id", **extra)


def users(clusters_per_arm=12, seed=0, icc=0.05, lift=0.0):
    """Per-user rows of a cluster-randomised experiment (regions are properties of the cities)."""
    rng = np.random.default_rng(seed)
    converted, sizes = simulate_clusters(rng, clusters_per_arm, 80, 0.2, icc, lift, size_cv=0.4)
    city = np.repeat(np.arange(2 * clusters_per_arm), sizes)
    ones = np.concatenate([rng.permutation(np.r_[np.ones(c), np.zeros(s - c)]) for c, s in zip(converted, sizes)])
    factor = np.exp(0.3 * rng.standard_normal(2 * clusters_per_arm))[city]
    views = rng.poisson(5 * factor) + 1
    return pd.DataFrame({
        "user_id": np.arange(city.size), "city": [f"c{c:02d}" for c in city],
        "region": np.where(city % 3 == 0, "north", "south"),
        "arm": np.where(city >= clusters_per_arm, "treatment", "control"), "converted": ones.astype(int),
        "spend": np.round(rng.gamma(1.0, 20.0 * factor), 2), "clicks": rng.poisson(0.4 * views), "views": views})


def expected(frame: pd.DataFrame, value: pd.Series, weight: pd.Series | None = None) -> pd.DataFrame:
    """Per arm: clusters and the five sums of cluster totals, from pandas."""
    frame = frame.assign(y=value, x=1.0 if weight is None else weight)
    per_city = frame.groupby(["arm", "city"]).agg(y=("y", "sum"), x=("x", "sum")).reset_index()
    per_city = per_city.assign(yy=per_city.y ** 2, xx=per_city.x ** 2, xy=per_city.x * per_city.y)
    return per_city.groupby("arm").agg(n=("city", "size"), sum_num=("y", "sum"), sum_den=("x", "sum"),
                                       sum_num2=("yy", "sum"), sum_den2=("xx", "sum"), sum_num_den=("xy", "sum"))


def test_cluster_totals_equal_pandas_for_every_family():
    frame = users()
    stats = aggregate(spec(), frame)
    wanted = {"conversion": expected(frame, frame.converted), "spend": expected(frame, frame.spend.clip(upper=50)),
              "clicks": expected(frame, frame.clicks), "per_view": expected(frame, frame.clicks, frame.views)}
    for name, table in wanted.items():
        got = stats[name].sum("segment")
        assert stats[name].attrs["family"] == "ratio"
        for arm in ("control", "treatment"):
            for column in table.columns:
                assert float(got[column].sel(arm=arm)) == pytest.approx(float(table.loc[arm, column]), rel=1e-9), \
                    (name, arm, column)


def test_segments_are_properties_of_clusters():
    frame = users()
    stats = aggregate(spec(segments=["region"]), frame)
    n = stats["conversion"]["n"]
    assert int(n.sum()) == frame.city.nunique()
    assert int(n.sel(arm="control", segment="north")) == frame[(frame.arm == "control") &
                                                               (frame.region == "north")].city.nunique()


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(arm=np.where(f.index == 0, "treatment" if f.arm[0] == "control" else "control", f.arm)),
     "1 cluster(s) appear in more than one arm, e.g. 'c00'"),
    (lambda f: f.assign(region=np.where(f.index == 3, "east", f.region)),
     "segment column 'region' takes more than one value within cluster 'c00'"),
    (lambda f: f.assign(city=np.where(f.index == 5, None, f.city)), "column 'city' (cluster) has missing values"),
    (lambda f: f.assign(converted=np.where(f.index == 7, 2, f.converted)), "column 'converted' (metric 'conversion') "
                                                                           "is not binary"),
    (lambda f: pd.concat([f, f.iloc[[9]]]), "column 'user_id': unit id '9' appears 2 times"),
])
def test_a_broken_design_is_refused_naming_the_cluster(change, message):
    frame = change(users())
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        aggregate(spec(segments=["region"]), frame)


def test_aggregated_input_is_refused():
    with pytest.raises(DataError, match="reads per-user rows, not aggregates"):
        aggregate(spec(), users(), aggregated=True)


@pytest.mark.parametrize("metrics, extra, message", [
    ([{"name": "d7", "family": "retention", "column": "c", "observed_column": "o", "horizon": 7}],
     {}, "is a retention metric, whose values do not add up"),
    (METRICS, {"segments": ["city"]}, "'city' is already a segment column"),
    ([{"name": "spend", "family": "mean", "column": "spend", "covariate": "pre"}], {},
     r"metrics\[0\].covariate: is not available with cluster_column"),
    (METRICS, {"received_column": "got"}, "received_column: is not available with cluster_column"),
])
def test_spec_refuses_what_clusters_cannot_carry(metrics, extra, message):
    with pytest.raises(SpecError, match=message):
        spec(metrics, **extra)


def test_clustered_metric_keeps_the_declared_judgement():
    declared = spec().per_user().metrics[1]
    analysed = spec().metrics[1]
    assert (analysed.family, analysed.role, analysed.prior, analysed.rope) == ("ratio", declared.role, declared.prior,
                                                                               declared.rope)
    assert family_for(analysed).kind_of(analysed) == "mean, as a ratio of cluster totals"
    assert "capped at 50" in family_for(analysed).definition(analysed)
    with pytest.raises(ValueError):
        clustered_metric(Metric("q", "quantile", column="x"), "city")


def test_segments_that_each_hold_one_arm_are_refused_as_an_undeclared_cluster_design():
    frame = users()
    plain = make_spec(METRICS[:1], segments=["city"])
    with pytest.raises(DataError, match=r"24 of 24 segments \(city\) hold one arm only .*declare it as cluster_column"):
        aggregate(plain, frame)
    mixed = frame.assign(arm=np.random.default_rng(1).choice(["control", "treatment"], len(frame)))
    assert aggregate(plain, mixed)["conversion"].sizes["segment"] == 24    # randomised by user: no complaint


def test_srm_and_counts_are_of_clusters():
    from bayes_ab.decision.srm import srm_checks

    s = spec(METRICS[:1])
    stats = aggregate(s, users())
    check = srm_checks(stats["conversion"], s, 0.001)[0]
    assert check.detail.startswith("clusters 12, 12")
    assert s.unit_name == "clusters" and s.grouped_units


def test_few_clusters_per_arm_are_warned_about():
    s = spec(METRICS[:1])
    stats = aggregate(s, users(clusters_per_arm=6))
    warnings = family_for(s.metrics[0]).warnings(stats["conversion"], s.metrics[0])
    assert any("has 6 cluster(s) ('city'); with fewer than 10 per arm" in w for w in warnings)


def test_absolute_difference_matches_cluster_robust_ols(fast_sampler):
    """Flat prior (the data alone, as OLS): the posterior of the difference of per-user means sits on OLS's
    coefficient and its width on the cluster-robust standard error's (CR1 small-sample factor aside)."""
    sm = pytest.importorskip("statsmodels.api")
    frame = users(clusters_per_arm=30, seed=4, lift=0.2)
    s = spec(METRICS[:2])
    sampler = replace(fast_sampler, backend="conjugate", draws=20_000, chains=2)
    result = analyze_stats(s, aggregate(s, frame), sampler=sampler)
    x = sm.add_constant((frame.arm == "treatment").astype(float).to_numpy())
    for name, y in (("conversion", frame.converted), ("spend", frame.spend.clip(upper=50))):
        ols = sm.OLS(y.to_numpy(dtype=float), x).fit(cov_type="cluster", cov_kwds={"groups": frame.city})
        draws = result.fits[name].overall_mean
        diff = (draws.sel(arm="treatment") - draws.sel(arm="control")).values.ravel()
        assert abs(diff.mean() - ols.params[1]) < 0.05 * diff.std(), name
        assert diff.std() / ols.bse[1] == pytest.approx(1.0, abs=0.10), name


def test_aa_intervals_by_cluster_hold_their_level_where_independent_users_do_not():
    """200 A/A experiments (12 clusters per arm, ICC 0.05): the cluster analysis's 90% interval (closed form, as
    one segment is analysed without pooling) excludes 0 about 10% of the time -- 20% would be 3.5 binomial se away
    -- while the same users as independent units exclude it far more often."""
    metric = make_spec(METRICS[:1]).metrics[0]
    analysed = clustered_metric(metric, "city")
    ratio, rate = family_for(analysed), family_for(metric)
    rng = np.random.default_rng(5)
    excluded = {"clusters": 0, "users": 0}
    for _ in range(200):
        converted, sizes = simulate_clusters(rng, 12, 80, 0.2, 0.05, 0.0, size_cv=0.4)
        arms = np.repeat([0, 1], 12)
        sums = ratio.accumulator_type(analysed, ("control", "treatment"), None)
        sums.add(arms, np.column_stack([converted, sizes]).astype(float))
        naive = rate.accumulator_type(metric, ("control", "treatment"), None)
        per_user = np.repeat(arms, sizes)
        naive.add(per_user, np.concatenate([np.r_[np.ones(c), np.zeros(s - c)] for c, s in zip(converted, sizes)]))
        for key, acc in (("clusters", sums), ("users", naive)):
            draws = acc.posterior(rng, 4000)
            lift = draws[:, 1] / draws[:, 0] - 1
            low, high = np.quantile(lift, [0.05, 0.95])
            excluded[key] += not low <= 0 <= high
    assert excluded["clusters"] / 200 <= 0.16
    assert excluded["users"] / 200 >= 0.30


def test_no_warehouse_sql_for_a_cluster_design():
    from bayes_ab.aggregation.warehouse import warehouse_query

    with pytest.raises(DataError, match="a spec with cluster_column is analysed from its rows"):
        warehouse_query(spec(), "events", "postgres")
