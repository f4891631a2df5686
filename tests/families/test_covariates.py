"""Regression adjustment on pre-period covariates (``covariates:``) for conversion, count and mean metrics (ratios and
retention: their own modules' tests).

Independent checks: OLS on the per-user rows (statsmodels), the theory's variance reduction ``1 - rho^2``, and
repeated simulated experiments with known truth (bias and interval coverage) whose covariate is built to correlate
with the value by a known amount and cannot depend on the arm.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.analysis import analyze
from bayes_ab.console import render_text
from bayes_ab.documents import DOCUMENTS, schema
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.families.covariates import AdjustedAccumulator, CovariateTruth, adjustment
from bayes_ab.metric import Baseline
from bayes_ab.posterior.fit import fit
from bayes_ab.report.html import render_report
from bayes_ab.sampling import Backend
from bayes_ab.spec import SamplerSettings
from bayes_ab.stopping.generate import accumulator, truth

from conftest import make_spec

FLAT = SamplerSettings(backend=Backend.CONJUGATE, draws=2000, chains=2, seed=3)
FAMILIES = {
    "conversion": ({"family": "conversion"}, Baseline(0.2)),
    "count": ({"family": "count"}, Baseline(2.0, 0.5)),          # negative binomial of shape 0.5: heavy tailed
    "mean": ({"family": "mean"}, Baseline(10.0, 6.0)),
}


def spec_for(family: str, covariates=("pre",), segments=(), **extra):
    fields, _ = FAMILIES[family]
    return make_spec([{"name": "y", "column": "y", "covariates": list(covariates), **fields, **extra}],
                     segments=segments)


def users(family: str, n: int, lift: float, rho: float, seed: int, segments: int = 1) -> pd.DataFrame:
    """``n`` users per arm whose value has mean ``baseline * (1 + lift)`` in treatment and a covariate that
    correlates with it by ``rho`` (plus a second, pure-noise covariate and a segment column)."""
    spec = spec_for(family)
    rng = np.random.default_rng(seed)
    base = truth(spec.metrics[0], FAMILIES[family][1], [1.0, 1.0 + lift])
    drawn = CovariateTruth(base, family_for(spec.metrics[0]), rho, np.random.default_rng(1))
    arms = np.repeat([0, 1], n)
    values = drawn.draw(rng, arms)
    return pd.DataFrame({"arm": np.where(arms == 0, "control", "treatment"), "y": values[:, 0], "pre": values[:, 1],
                         "noise": rng.standard_normal(arms.size),
                         "segment": rng.integers(0, segments, arms.size).astype(str)})


def difference(stats, metric) -> tuple[float, float]:
    """The flat-prior posterior mean and sd of treatment minus control (overall)."""
    posterior = fit(stats, metric, FLAT).overall_mean
    d = (posterior.sel(arm="treatment") - posterior.sel(arm="control")).values.ravel()
    return float(d.mean()), float(d.std())


@pytest.mark.parametrize("family", ["mean", "conversion"])
def test_adjusted_difference_and_its_precision_agree_with_ols(family):
    import statsmodels.formula.api as smf

    frame = users(family, 4000, 0.05, 0.6, seed=7)
    frame["t"] = (frame["arm"] == "treatment").astype(int)
    spec = spec_for(family, covariates=("pre", "noise"))
    stats = aggregate(spec, frame)["y"]
    adjusted, adjusted_sd = difference(stats, spec.metrics[0])
    raw, raw_sd = difference(stats, replace(spec.metrics[0], covariates=()))
    ols = smf.ols("y ~ t + pre + noise", frame).fit(cov_type="HC2")
    plain = smf.ols("y ~ t", frame).fit(cov_type="HC2")
    assert abs(adjusted - ols.params["t"]) < 0.1 * adjusted_sd
    reduction, ols_reduction = 1 - (adjusted_sd / raw_sd) ** 2, 1 - (ols.bse["t"] / plain.bse["t"]) ** 2
    assert reduction == pytest.approx(ols_reduction, rel=0.1)
    assert reduction > 0.25                     # the covariate matters: a test of a no-op would pass the rest


def test_adjustment_reports_the_correlation_it_was_built_with():
    frame = users("mean", 20_000, 0.0, 0.6, seed=2)
    spec = spec_for("mean")
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["y"], spec.metrics[0])
    assert found.correlation == pytest.approx(0.6, abs=0.02)
    assert found.variance_reduction == pytest.approx(0.36, abs=0.025)


def test_adjusted_cell_means_sit_at_their_segments_covariate_level():
    """Each segment's arms are compared at the segment's own covariate mean: an arm that drew users with a high
    covariate by chance is moved down by the slope times its excess, and the segment's level is kept."""
    frame = users("mean", 3000, 0.0, 0.8, seed=5, segments=3)
    spec = spec_for("mean", segments=("segment",))
    stats = aggregate(spec, frame)["y"]
    found = adjustment(family_for(spec.metrics[0]), stats, spec.metrics[0])
    for segment in stats["segment"].values:
        rows = frame[frame["segment"] == segment]
        for i, arm in enumerate(("control", "treatment")):
            cell = rows[rows["arm"] == arm]
            expected = cell["y"].mean() - found.slopes[0] * (cell["pre"].mean() - rows["pre"].mean())
            j = list(stats["segment"].values).index(segment)
            assert found.means[i, j] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_adjusted_estimates_are_unbiased_cover_and_cut_the_variance_as_theory_says(family):
    """300 simulated experiments (1,500 users per arm, true +5%, covariate correlation 0.6): the adjusted difference
    is unbiased within 3.5 Monte Carlo SE, its 90% intervals cover the truth 90% +/- 3.5 SE of a binomial share, and
    its variance over the experiments is ``1 - rho^2`` of the unadjusted one within 15% (about 2.7 SE of that ratio)."""
    spec = spec_for(family)
    rho, runs, lift = 0.6, 300, 0.05
    truth_difference = FAMILIES[family][1].value * lift
    ratio = repeated(spec, lambda seed: users(family, 1500, lift, rho, seed=1000 + seed), runs, truth_difference)
    assert ratio == pytest.approx(1 - rho ** 2, rel=0.15)


def repeated(spec, rows, runs: int, truth_difference: float) -> float:
    """``runs`` experiments of ``rows(seed)`` analysed with and without the covariates: asserts that the adjusted
    difference is unbiased within 3.5 Monte Carlo SE and that its 90% intervals cover the truth 90% +/- 3.5 SE of a
    binomial share; returns its variance over the experiments over the unadjusted one's."""
    metric = spec.metrics[0]
    adjusted, raw, covered = [], [], 0
    for seed in range(runs):
        stats = aggregate(spec, rows(seed))["y"]
        posterior = fit(stats, metric, FLAT).overall_mean
        d = (posterior.sel(arm="treatment") - posterior.sel(arm="control")).values.ravel()
        low, high = np.quantile(d, [0.05, 0.95])
        covered += low <= truth_difference <= high
        adjusted.append(d.mean())
        raw.append(difference(stats, replace(metric, covariates=()))[0])
    adjusted, raw = np.array(adjusted), np.array(raw)
    assert abs(adjusted.mean() - truth_difference) < 3.5 * adjusted.std() / np.sqrt(runs)
    assert abs(covered / runs - 0.9) < 3.5 * np.sqrt(0.09 / runs)
    return float(adjusted.var() / raw.var())


def ratio_users(n: int, lift: float, seed: int) -> pd.DataFrame:
    """Sessions and revenue per user driven by one activity score ``z``; the covariate is the user's pre-period
    revenue (its own sessions, the same activity). Per arm ``n`` users; treatment multiplies revenue per session by
    ``1 + lift``."""
    rng = np.random.default_rng(seed)
    arms = np.repeat([0, 1], n)
    z = rng.standard_normal(arms.size)
    sessions = 1 + rng.poisson(np.exp(1.0 + 0.6 * z))
    rate = REVENUE_PER_SESSION * np.exp(RATE_LOADING * z)
    revenue = rng.poisson(sessions * rate * np.where(arms == 1, 1.0 + lift, 1.0))
    earlier = 1 + rng.poisson(np.exp(1.0 + 0.6 * z))
    return pd.DataFrame({"arm": np.where(arms == 0, "control", "treatment"), "revenue": revenue,
                         "sessions": sessions, "pre": rng.poisson(earlier * rate)})


RATE_LOADING = 0.5         # how strongly activity raises revenue per session (and so the linearised ratio)
REVENUE_PER_SESSION = 2.0
RATIO = {"name": "y", "family": "ratio", "numerator": "revenue", "denominator": "sessions", "covariates": ["pre"]}


@pytest.mark.slow
def test_ratio_adjustment_is_unbiased_covers_and_removes_the_linearised_variance_the_covariate_predicts():
    """The joint linearisation: over 300 experiments the adjusted ratio difference is unbiased and covers, and its
    variance is the unadjusted one's times ``1 - corr(u, pre)^2``, ``u = (revenue - r sessions) / mean sessions``
    the linearised ratio, measured on 400,000 simulated control users."""
    spec = make_spec([RATIO])
    big = ratio_users(200_000, 0.0, seed=99)
    r = big["revenue"].sum() / big["sessions"].sum()
    u = (big["revenue"] - r * big["sessions"]) / big["sessions"].mean()
    theory = 1 - np.corrcoef(u, big["pre"])[0, 1] ** 2
    truth_difference = REVENUE_PER_SESSION * 0.05 * _control_ratio_factor()
    ratio = repeated(spec, lambda seed: ratio_users(2000, 0.05, seed=500 + seed), 300, truth_difference)
    assert ratio == pytest.approx(theory, rel=0.15)
    assert theory < 0.5


def _control_ratio_factor() -> float:
    """E[sessions e^{b z}] / E[sessions]: the control's revenue per session over its base rate (sessions and the
    revenue rate share z), by a large simulation."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal(4_000_000)
    sessions = 1 + rng.poisson(np.exp(1.0 + 0.6 * z))
    return float((sessions * np.exp(RATE_LOADING * z)).mean() / sessions.mean())


def test_ratio_covariate_statistics_and_adjustment_match_a_per_user_regression():
    """The ratio's adjusted difference equals the per-user regression of the linearised ratio on the covariate
    (one slope, pooled within arms), written out on the rows."""
    frame = ratio_users(3000, 0.05, seed=3)
    spec = make_spec([RATIO])
    stats = aggregate(spec, frame)["y"]
    found = adjustment(family_for(spec.metrics[0]), stats, spec.metrics[0])
    residuals, covariates = [], []
    for arm in ("control", "treatment"):
        rows = frame[frame["arm"] == arm]
        r = rows["revenue"].sum() / rows["sessions"].sum()
        u = (rows["revenue"] - r * rows["sessions"]) / rows["sessions"].mean()
        residuals.append(u - u.mean())
        covariates.append(rows["pre"] - rows["pre"].mean())
    u, z = np.concatenate(residuals), np.concatenate(covariates)
    slope = (u * z).sum() / (z * z).sum()
    assert found.slopes[0] == pytest.approx(slope, rel=1e-9)
    for i, arm in enumerate(("control", "treatment")):
        rows = frame[frame["arm"] == arm]
        expected = rows["revenue"].sum() / rows["sessions"].sum() - slope * (rows["pre"].mean() - frame["pre"].mean())
        assert found.means[i, 0] == pytest.approx(expected, rel=1e-9)


def test_summary_console_and_report_carry_the_adjustment_and_the_unadjusted_lift(tmp_path):
    frame = users("conversion", 3000, 0.1, 0.5, seed=4)
    spec = spec_for("conversion")
    result = analyze(spec, frame, sampler=FLAT)
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    document = json.loads(json.dumps(result.document(), default=float))
    registry = Registry().with_resources((schema(k)["$id"], Resource.from_contents(schema(k))) for k in DOCUMENTS)
    Draft202012Validator(schema("analysis"), registry=registry).validate(document)
    adjusted = document["metrics"]["y"]["adjustment"]
    assert adjusted["covariates"] == ["pre"] and 0.15 < adjusted["variance_reduction"] < 0.35
    assert adjusted["unadjusted"][0]["arm"] == "treatment"
    text = render_text(result)
    assert "variance reduced by" in text and "Without the covariates (treatment)" in text
    assert "Without the covariates (treatment)" in render_report(result)


def test_count_with_covariates_uses_the_robust_likelihood():
    frame = users("count", 2000, 0.05, 0.5, seed=3)
    spec = spec_for("count")
    result = analyze(spec, frame, sampler=FLAT)
    assert "robust likelihood" in result.effects["y"].model_note
    assert "no count distribution" in result.effects["y"].model_note


@pytest.mark.parametrize("change, message", [
    ({"family": "quantile", "quantile": 0.9}, "does not apply to family 'quantile'"),
    ({"covariates": ["y"]}, "the metric's own column"),
    ({"covariates": ["pre", "pre"]}, "lists a column twice"),
    ({"covariates": []}, "non-empty list"),
    ({"family": "count", "count_model": "poisson"}, "need count_model robust or auto"),
    ({"family": "mean", "covariate": "other"}, "cannot be combined with 'covariate'"),
])
def test_spec_refuses_covariates_where_they_cannot_apply(change, message):
    fields = {"name": "y", "family": "conversion", "column": "y", "covariates": ["pre"], **change}
    with pytest.raises(SpecError, match=message):
        make_spec([fields])


def test_spec_refuses_covariates_on_clusters_and_panels():
    metric = {"name": "y", "family": "conversion", "column": "y", "covariates": ["pre"]}
    with pytest.raises(SpecError, match="covariates.*not available with cluster_column"):
        make_spec([metric], cluster_column="city")
    with pytest.raises(SpecError, match="has covariates, which need one row per user"):
        make_spec([metric], activity_column="day", day_column="exposed", unit_column="user")


def test_text_and_missing_covariates_are_refused_with_one_line():
    frame = users("mean", 200, 0.0, 0.5, seed=1)
    frame["pre"] = frame["pre"].astype(object)
    frame.loc[3, "pre"] = None
    with pytest.raises(DataError, match=r"column 'pre' \(metric 'y'\) has missing values"):
        aggregate(spec_for("mean"), frame)
    frame.loc[3, "pre"] = "high"
    with pytest.raises(DataError, match=r"column 'pre' \(metric 'y'\) has non-numeric values"):
        aggregate(spec_for("mean"), frame)


def test_aggregated_rows_give_the_per_user_statistics():
    from bayes_ab.aggregation.warehouse import warehouse_query

    frame = users("conversion", 500, 0.1, 0.5, seed=9, segments=2)
    frame["pre"] = np.round(frame["pre"] * 4) / 4                # exact sums in any order
    spec = spec_for("conversion", segments=("segment",))
    import duckdb

    query = warehouse_query(spec, "users", "duckdb")
    connection = duckdb.connect()
    connection.register("users", frame)
    rows = connection.execute(query.sql).df()
    per_user, grouped = aggregate(spec, frame)["y"], aggregate(spec, rows, aggregated=True)["y"]
    for name in per_user.data_vars:
        np.testing.assert_allclose(grouped[name].values, per_user[name].values, rtol=1e-12)


def test_statistics_without_the_covariate_sums_are_refused():
    spec = spec_for("mean")
    stats = aggregate(spec, users("mean", 100, 0.0, 0.5, seed=1))["y"].drop_vars("value_cov0")
    with pytest.raises(DataError, match="lack the covariate sums"):
        adjustment(family_for(spec.metrics[0]), stats, spec.metrics[0])


def test_simulated_users_have_the_requested_correlation_and_a_covariate_independent_of_the_arm():
    spec = spec_for("conversion")
    conversion = family_for(spec.metrics[0])
    drawn = CovariateTruth(truth(spec.metrics[0], Baseline(0.115), [1.0, 1.5]), conversion, 0.5,
                           np.random.default_rng(0))
    arms = np.repeat([0, 1], 100_000)
    values = drawn.draw(np.random.default_rng(1), arms)
    control = values[arms == 0]
    assert np.corrcoef(control[:, 0], control[:, 1])[0, 1] == pytest.approx(0.5, abs=0.01)
    # the covariate's distribution is the same in both arms (within 4 standard errors of a mean of 100,000)
    assert abs(values[arms == 1, 1].mean() - control[:, 1].mean()) < 4 * np.sqrt(2 / 100_000)
    with pytest.raises(DataError, match="cannot be simulated"):
        CovariateTruth(truth(spec.metrics[0], Baseline(0.01), [1.0, 1.0]), conversion, 0.9, np.random.default_rng(0))


def test_simulator_posterior_is_narrower_by_the_residual_share():
    """The ramp simulator's adjusted accumulator: its arms' posterior variance is ``1 - rho^2`` of the unadjusted
    accumulator's on the same users."""
    spec = spec_for("mean")
    metric = spec.metrics[0]
    drawn = CovariateTruth(truth(metric, Baseline(10.0, 6.0), [1.0, 1.05]), family_for(metric), 0.6,
                           np.random.default_rng(0))
    adjusted = accumulator(metric, ("control", "treatment"), truth=drawn)
    plain = accumulator(metric, ("control", "treatment"))
    assert isinstance(adjusted, AdjustedAccumulator)
    arms = np.random.default_rng(2).integers(0, 2, 40_000)
    values = drawn.draw(np.random.default_rng(3), arms)
    adjusted.add(arms, values)
    plain.add(arms, values[:, 0])
    ratio = adjusted.estimate()[1] / plain.estimate()[1]
    np.testing.assert_allclose(ratio, 1 - 0.6 ** 2, rtol=0.05)
    assert adjusted.posterior(np.random.default_rng(4), 20_000).var(axis=0) == pytest.approx(
        adjusted.estimate()[1], rel=0.1)


def rows_regression(frame: pd.DataFrame, value: str, covariates: list[str], cells: list[str]):
    """The pooled within-cell regression written out on the rows: slopes, the residual share after degrees of
    freedom, and the multiple correlation."""
    centred = frame.groupby(cells)[[value, *covariates]].transform(lambda c: c - c.mean())
    y, x = centred[value].to_numpy(), centred[covariates].to_numpy()
    slopes = np.linalg.lstsq(x, y, rcond=None)[0]
    groups = frame.groupby(cells).ngroups
    residual = ((y - x @ slopes) ** 2).sum() / (len(frame) - groups - len(covariates))
    explained = 1 - ((y - x @ slopes) ** 2).sum() / (y ** 2).sum()
    return slopes, residual / ((y ** 2).sum() / (len(frame) - groups)), np.sqrt(explained)


@pytest.mark.parametrize("family", ["mean", "conversion", "count"])
def test_slopes_share_and_correlation_equal_the_regression_on_the_rows(family):
    """Covariates far from 0 (a level of 40 and of -7) and one that falls as the value rises: every number of the
    adjustment equals the row-level regression within cells (arm x segment), to rounding."""
    frame = users(family, 1500, 0.1, 0.6, seed=12, segments=3)
    frame["pre"] = 40.0 + 3.0 * frame["pre"]
    frame["negative"] = -7.0 - frame["pre"] / 6 + np.random.default_rng(0).standard_normal(len(frame))
    spec = spec_for(family, covariates=("pre", "negative"), segments=("segment",))
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["y"], spec.metrics[0])
    slopes, share, correlation = rows_regression(frame, "y", ["pre", "negative"], ["arm", "segment"])
    np.testing.assert_allclose(found.slopes, slopes, rtol=1e-8)
    assert found.residual_share == pytest.approx(share, rel=1e-9)
    assert found.correlation == pytest.approx(correlation, rel=1e-9)
    alone = spec_for(family, covariates=("negative",), segments=("segment",))
    one = adjustment(family_for(alone.metrics[0]), aggregate(alone, frame)["y"], alone.metrics[0])
    assert one.correlation < 0 and one.correlation == pytest.approx(
        -rows_regression(frame, "y", ["negative"], ["arm", "segment"])[2], rel=1e-9)


def test_a_covariate_constant_within_cells_adjusts_nothing_and_costs_no_degree_of_freedom():
    frame = users("mean", 800, 0.0, 0.6, seed=4, segments=2)
    frame["segment_code"] = frame["segment"].astype(float) + 3       # constant within every cell
    both = spec_for("mean", covariates=("pre", "segment_code"), segments=("segment",))
    alone = spec_for("mean", covariates=("pre",), segments=("segment",))
    family = family_for(both.metrics[0])
    with_constant = adjustment(family, aggregate(both, frame)["y"], both.metrics[0])
    without = adjustment(family, aggregate(alone, frame)["y"], alone.metrics[0])
    assert with_constant.slopes[1] == 0.0
    assert with_constant.slopes[0] == pytest.approx(without.slopes[0], rel=1e-9)
    assert with_constant.residual_share == pytest.approx(without.residual_share, rel=1e-12)


def test_a_covariate_that_is_the_outcome_keeps_a_finite_precision_and_a_constant_value_adjusts_nothing():
    frame = users("mean", 300, 0.0, 0.5, seed=2)
    frame["copy"] = 2 * frame["y"] + 1
    spec = spec_for("mean", covariates=("copy",))
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["y"], spec.metrics[0])
    assert found.residual_share == pytest.approx(1e-6)
    frame["y"] = 5.0
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec_for("mean"), frame)["y"], spec.metrics[0])
    assert (found.residual_share, found.correlation) == (1.0, 0.0)


def test_covariate_sums_too_large_for_doubles_are_refused():
    frame = users("mean", 100, 0.0, 0.5, seed=1, segments=2)
    frame.loc[frame["segment"] == "1", "pre"] *= 1e200            # one segment's sums overflow, the other's do not
    frame = frame.assign(segment=frame["segment"])
    with pytest.raises(DataError, match="covariate sums are not finite"):
        aggregate(spec_for("mean", segments=("segment",)), frame)


def test_aggregated_rows_with_an_impossible_covariate_square_are_refused():
    from bayes_ab.aggregation.warehouse import warehouse_query
    import duckdb

    frame = users("mean", 200, 0.0, 0.5, seed=9, segments=2)
    frame["pre"] = np.round(frame["pre"] * 4) / 4
    spec = spec_for("mean", segments=("segment",))
    connection = duckdb.connect()
    connection.register("users", frame)
    rows = connection.execute(warehouse_query(spec, "users", "duckdb").sql).df()
    small = rows.copy()
    small.loc[0, ["users", "y", "y_sq", "pre", "pre_sq", "y_x_pre"]] = [1, 0.0, 0.0, 0.5, 0.25, 0.0]
    aggregate(spec, small, aggregated=True)                         # a square below 1 is a square
    rows.loc[0, "pre_sq"] = -1.0
    with pytest.raises(DataError, match="column 'pre_sq' .*has negative sums"):
        aggregate(spec, rows, aggregated=True)


def test_aggregated_rows_may_carry_negative_cross_products_of_covariates():
    from bayes_ab.aggregation.warehouse import warehouse_query
    import duckdb

    frame = users("mean", 200, 0.0, 0.5, seed=9, segments=2)
    frame["pre"] = np.round(frame["pre"] * 4) / 4
    frame["negative"] = -frame["pre"] - 1
    spec = spec_for("mean", covariates=("pre", "negative"), segments=("segment",))
    connection = duckdb.connect()
    connection.register("users", frame)
    rows = connection.execute(warehouse_query(spec, "users", "duckdb").sql).df()
    assert (rows["pre_x_negative"] < 0).all()
    grouped = aggregate(spec, rows, aggregated=True)["y"]
    np.testing.assert_allclose(grouped["cov0_cov1"].values, aggregate(spec, frame)["y"]["cov0_cov1"].values)


def test_simulator_adjusts_only_once_every_arm_has_three_users():
    spec = spec_for("mean")
    metric = spec.metrics[0]
    drawn = CovariateTruth(truth(metric, Baseline(10.0, 6.0), [1.0, 1.0]), family_for(metric), 0.6,
                           np.random.default_rng(0))
    adjusted = accumulator(metric, ("control", "treatment"), truth=drawn)
    values = drawn.draw(np.random.default_rng(1), np.array([0, 0, 0, 1, 1]))
    adjusted.add(np.array([0, 0, 0, 1, 1]), values)
    assert adjusted.effective() is adjusted.inner
    more = drawn.draw(np.random.default_rng(2), np.array([1]))
    adjusted.add(np.array([1]), more)
    assert adjusted.effective() is not adjusted.inner
    assert adjusted.users().tolist() == [3, 3]


def test_cells_of_one_user_and_empty_cells():
    """A segment whose control has one user and whose treatment has none: the one user's cell keeps its own value
    (it is at its segment's covariate mean), the empty cell's adjusted mean is 0, and the other segments' numbers
    are the row regression's."""
    frame = users("mean", 600, 0.0, 0.6, seed=6, segments=2)
    frame["pre"] = 10.0 + frame["pre"]
    lonely = pd.DataFrame({"arm": ["control"], "y": [42.0], "pre": [13.0], "noise": [0.0], "segment": ["solo"]})
    frame = pd.concat([frame, lonely], ignore_index=True)
    spec = spec_for("mean", segments=("segment",))
    stats = aggregate(spec, frame)["y"]
    found = adjustment(family_for(spec.metrics[0]), stats, spec.metrics[0])
    solo = list(stats["segment"].values).index("solo")
    assert found.means[0, solo] == pytest.approx(42.0, rel=1e-12)
    assert found.means[1, solo] == 0.0
    slopes, share, _ = rows_regression(frame, "y", ["pre"], ["arm", "segment"])
    assert found.slopes[0] == pytest.approx(slopes[0], rel=1e-9)
    assert found.residual_share == pytest.approx(share, rel=1e-9)


def test_small_scales_keep_their_slope_and_the_sign_of_their_correlation():
    """Values and covariates in thousandths (sums of squares far below 1) are adjusted as at any scale."""
    frame = users("mean", 150, 0.0, 0.6, seed=8)
    frame[["y", "pre"]] *= 1e-3
    spec = spec_for("mean")
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["y"], spec.metrics[0])
    slopes, share, correlation = rows_regression(frame, "y", ["pre"], ["arm"])
    assert found.slopes[0] == pytest.approx(slopes[0], rel=1e-9) and found.slopes[0] > 0
    assert found.correlation == pytest.approx(correlation, rel=1e-9) and found.correlation > 0


def test_only_constant_covariates_leave_the_variance_whole():
    frame = users("mean", 300, 0.0, 0.6, seed=3)
    frame["constant"] = 4.0
    spec = spec_for("mean", covariates=("constant",))
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["y"], spec.metrics[0])
    assert found.slopes.tolist() == [0.0] and found.residual_share == 1.0


def test_too_few_users_for_the_regression_leave_the_variance_whole():
    """Three users in two cells leave no degree of freedom for a slope: nothing is claimed. Four leave one: the
    share is the row regression's."""
    three = pd.DataFrame({"arm": ["control", "control", "treatment"], "y": [1.0, 3.0, 2.0], "pre": [0.0, 1.0, 5.0],
                          "noise": 0.0, "segment": "0"})
    spec = spec_for("mean")
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, three)["y"], spec.metrics[0])
    assert (found.residual_share, found.correlation) == (1.0, 0.0)
    four = pd.concat([three, pd.DataFrame({"arm": ["treatment"], "y": [4.0], "pre": [6.5], "noise": 0.0,
                                            "segment": "0"})], ignore_index=True)
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, four)["y"], spec.metrics[0])
    assert found.residual_share == pytest.approx(rows_regression(four, "y", ["pre"], ["arm"])[1], rel=1e-9)


HILLSTROM = {"name": "y", "family": "mean", "column": "spend", "covariates": [
    "history", {"column": "zip_code", "levels": ["Surburban", "Rural", "Urban"]},
    {"column": "channel", "levels": ["Web", "Phone", "Multichannel"]}]}


def hillstrom() -> pd.DataFrame:
    from conftest import EXAMPLES

    return pd.read_csv(EXAMPLES / "data" / "hillstrom_womens.csv").rename(columns={"segment": "arm"})


def test_categorical_covariates_are_0_1_terms_per_level_against_ols_with_dummies():
    """Hillstrom's zip-code type and channel as categorical covariates (levels declared, the first the reference):
    the slopes are those of OLS with dummy variables and arm effects, and the adjusted difference OLS's within 0.1
    posterior sd."""
    import statsmodels.formula.api as smf

    frame = hillstrom()
    spec = make_spec([HILLSTROM], arms=("No E-Mail", "Womens E-Mail"))
    stats = aggregate(spec, frame)["y"]
    metric = spec.metrics[0]
    found = adjustment(family_for(metric), stats, metric)
    assert found.covariates == ("history", "zip_code=Rural", "zip_code=Urban", "channel=Phone",
                                "channel=Multichannel")
    ols = smf.ols("spend ~ C(arm) + history + C(zip_code, Treatment('Surburban')) + "
                  "C(channel, Treatment('Web'))", frame).fit(cov_type="HC2")
    expected = [ols.params["history"], ols.params["C(zip_code, Treatment('Surburban'))[T.Rural]"],
                ols.params["C(zip_code, Treatment('Surburban'))[T.Urban]"],
                ols.params["C(channel, Treatment('Web'))[T.Phone]"],
                ols.params["C(channel, Treatment('Web'))[T.Multichannel]"]]
    np.testing.assert_allclose(found.slopes, expected, rtol=1e-6)
    posterior = fit(stats, metric, FLAT).overall_mean
    d = (posterior.isel(arm=1) - posterior.isel(arm=0)).values.ravel()
    assert abs(d.mean() - ols.params["C(arm)[T.Womens E-Mail]"]) < 0.1 * d.std()


def test_categorical_covariate_values_outside_the_levels_are_refused_and_aggregated_rows_carry_the_terms():
    from bayes_ab.aggregation.warehouse import warehouse_query
    import duckdb

    frame = hillstrom().head(3000).copy()
    spec = make_spec([HILLSTROM], arms=("No E-Mail", "Womens E-Mail"))
    connection = duckdb.connect()
    connection.register("users", frame)
    rows = connection.execute(warehouse_query(spec, "users", "duckdb").sql).df()
    assert {"zip_code=Rural", "zip_code=Urban_x_channel=Phone", "spend_x_channel=Multichannel"} <= set(rows.columns)
    per_user, grouped = aggregate(spec, frame)["y"], aggregate(spec, rows, aggregated=True)["y"]
    for name in per_user.data_vars:
        np.testing.assert_allclose(grouped[name].values, per_user[name].values, rtol=1e-9)
    frame.loc[5, "channel"] = "Fax"
    with pytest.raises(DataError, match=r"column 'channel' \(metric 'y'\) has values outside its covariate levels "
                                        r"\(Web, Phone, Multichannel\)"):
        aggregate(spec, frame)


@pytest.mark.parametrize("entry, message", [
    ({"column": "channel", "levels": ["Web"]}, "at least two levels"),
    ({"column": "channel", "levels": ["Web", "Web"]}, "lists a level twice"),
    ({"column": "channel", "levels": ["Web", "Phone"], "order": 1}, "unknown field"),
    ({"levels": ["Web", "Phone"]}, "column: is required"),
])
def test_spec_refuses_malformed_categorical_covariates(entry, message):
    with pytest.raises(SpecError, match=message):
        make_spec([{"name": "y", "family": "mean", "column": "spend", "covariates": [entry]}])


def test_one_categorical_covariate_may_be_given_without_a_list():
    spec = make_spec([{"name": "y", "family": "mean", "column": "spend",
                       "covariates": {"column": "channel", "levels": ["Web", "Phone"]}}])
    assert spec.metrics[0].covariate_terms == ("channel=Phone",)
    with pytest.raises(SpecError, match=r"metrics\[0\]\.covariates\[0\]\.levels: must list at least two levels"):
        make_spec([{"name": "y", "family": "mean", "column": "spend",
                    "covariates": {"column": "channel", "levels": ["Web"]}}])
