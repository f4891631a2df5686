"""Retention family: censoring-aware survival model vs the naive day-N flag, and bad input."""

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.aggregation import aggregate
from bayes_ab.families.retention import retention_milestones
from bayes_ab.errors import DataError
from bayes_ab.families.retention import kaplan_meier
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

HAZARD = {"control": 0.10, "treatment": 0.08}
SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, seed=6)


def retention_spec(horizon=7, max_day=14):
    return make_spec([{"name": "retention", "family": "retention", "column": "churn_day",
                       "observed_column": "days_observed", "horizon": horizon, "max_day": max_day}])


def users_mid_test(n=30_000, seed=0) -> pd.DataFrame:
    """Users exposed uniformly over the last 14 days; churn day geometric; censored at today."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(list(HAZARD), n)
    observed = rng.integers(0, 15, n)
    churn = rng.geometric(np.vectorize(HAZARD.get)(arm)).astype(float)
    churn[churn > observed] = np.nan                 # not seen churning (yet)
    return pd.DataFrame({"arm": arm, "churn_day": churn, "days_observed": observed})


def test_survival_model_recovers_d7_where_the_naive_flag_is_biased():
    frame = users_mid_test()
    result = analyze(retention_spec(), frame, sampler=SETTINGS)
    effects = result.effects["retention"]
    milestones = retention_milestones(result.fits["retention"]).set_index(["day", "arm"])
    assert sorted(set(milestones.index.get_level_values("day"))) == [1, 7]   # curve ends at day 14
    for arm, hazard in HAZARD.items():
        for day in (1, 7):
            row = milestones.loc[(day, arm)]
            assert row["low"] < (1 - hazard) ** day < row["high"]
    for arm, hazard in HAZARD.items():
        truth = (1 - hazard) ** 7
        row = effects.overall(arm)
        assert row.mean_low < truth < row.mean_high, (arm, row.mean_low, truth, row.mean_high)
        # naive: "retained on day 7" among everyone exposed, counting the not-yet-observable as lost
        users = frame[frame["arm"] == arm]
        naive = np.mean((users["days_observed"] >= 7) & ~(users["churn_day"] <= 7))
        assert naive < truth - 0.15
    treatment = effects.overall("treatment")
    true_lift = (0.92 / 0.90) ** 7 - 1
    assert treatment.rel_low < true_lift < treatment.rel_high


def test_life_table_matches_a_direct_count_and_kaplan_meier():
    frame = users_mid_test(n=2000, seed=1)
    stats = aggregate(retention_spec(), frame)["retention"]
    control = frame[frame["arm"] == "control"]
    for day in (1, 5, 14):
        at_risk = ((control["days_observed"] >= day) & ~(control["churn_day"] < day)).sum()
        lost = (control["churn_day"] == day).sum()
        assert int(stats["at_risk"].sel(arm="control", day=day).sum()) == at_risk
        assert int(stats["lost"].sel(arm="control", day=day).sum()) == lost
    assert int(stats["n"].sum()) == 2000
    curve = kaplan_meier(stats["at_risk"].values[0, 0], stats["lost"].values[0, 0])
    # Kaplan-Meier by its definition, from the users themselves: the product over days of the share of users
    # still observed and retained at the start of a day who are not lost on it
    churn, observed = control["churn_day"].to_numpy(), control["days_observed"].to_numpy()
    direct, survival = [], 1.0
    for day in range(1, 15):
        at_risk = np.sum((observed >= day) & ~(churn < day))
        survival *= 1 - np.sum(churn == day) / at_risk if at_risk else 1.0
        direct.append(survival)
    np.testing.assert_allclose(curve, direct, rtol=1e-12)
    assert 0.05 < curve[6] < 0.95       # a curve that moves: the product has something to check


def test_churn_beyond_the_observation_window_is_refused():
    frame = users_mid_test(n=100)
    frame.loc[0, ["churn_day", "days_observed"]] = [9, 4]
    with pytest.raises(DataError, match=r"'churn_day'.*beyond the observation window"):
        aggregate(retention_spec(), frame)


@pytest.mark.parametrize("column,value,message", [
    ("churn_day", 0, "churn days below 1"),
    ("days_observed", -2, "negative days observed"),
    ("days_observed", np.nan, "missing values"),
])
def test_bad_retention_days_are_refused(column, value, message):
    frame = users_mid_test(n=100)
    frame.loc[3, column] = value
    with pytest.raises(DataError, match=message):
        aggregate(retention_spec(), frame)


# -- covariates: the Kaplan-Meier retention adjusted by its influence function --------------------------------------

def covariate_users(n: int, seed: int, observed_days: int | None = 20, lift: float = 0.0) -> pd.DataFrame:
    """Users whose churn hazard falls with a latent activity ``z``; the covariate ``pre`` is ``z`` plus noise (it
    cannot depend on the arm); each user observed 0 .. ``observed_days`` - 1 whole days (``None``: 30, none
    censored before the horizon); two segments."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    arm = rng.integers(0, 2, n)
    hazard = 1 / (1 + np.exp(2.2 + 1.2 * z + lift * arm))
    churn = rng.geometric(hazard).astype(float)
    observed = rng.integers(0, observed_days, n) if observed_days else np.full(n, 30)
    return pd.DataFrame({"arm": np.where(arm == 0, "control", "treatment"),
                         "churn_day": np.where(churn <= observed, churn, np.nan), "days_observed": observed,
                         "retained": (churn > 7).astype(int), "pre": z + 0.5 * rng.standard_normal(n),
                         "segment": rng.integers(0, 2, n).astype(str)})


def covariate_spec(**extra):
    return make_spec([{"name": "retention", "family": "retention", "column": "churn_day", "covariates": ["pre"],
                       "observed_column": "days_observed", "horizon": 7, "max_day": 14, **extra}],
                     segments=("segment",))


def test_covariate_sums_give_each_cells_influence_function_as_a_per_user_computation_does():
    """A second implementation on the rows: each user's influence on the cell's Kaplan-Meier D7 retention, summed
    as the regression needs it (squares, times the covariate), equals what the life table's sums give -- also in a
    segment of recent users, none of them observed beyond day 3 (days 4 to 7 have nobody at risk)."""
    from bayes_ab.families import family_for

    frame = covariate_users(3000, seed=1)
    recent = frame["segment"] == "1"
    frame.loc[recent, "segment"] = np.where(np.arange(recent.sum()) % 2, "1", "recent")
    is_recent = frame["segment"] == "recent"
    frame.loc[is_recent, "days_observed"] = frame.loc[is_recent, "days_observed"] % 4
    frame.loc[is_recent & (frame["churn_day"] > frame["days_observed"]), "churn_day"] = np.nan
    spec = covariate_spec()
    metric = spec.metrics[0]
    stats = aggregate(spec, frame)["retention"]
    survival, within, crossed = family_for(metric).covariate_moments(stats, metric, stats["cov0"].values[..., None])
    for i, arm in enumerate(stats["arm"].values):
        for j, segment in enumerate(stats["segment"].values):
            cell = frame[(frame["arm"] == arm) & (frame["segment"] == segment)]
            exit_day = np.minimum(cell["churn_day"].fillna(cell["days_observed"]), 14).to_numpy()
            churned = cell["churn_day"].notna().to_numpy()
            influence, kept = np.zeros(len(cell)), 1.0
            terms = []
            for day in range(1, 8):
                at_risk, lost = exit_day >= day, churned & (exit_day == day)
                if not at_risk.any():                # nobody observed that long: the day changes nothing
                    continue
                hazard = lost.sum() / at_risk.sum()
                kept *= 1 - hazard
                terms.append((lost - at_risk * hazard) / (at_risk.sum() - lost.sum()))
            influence = -kept * np.sum(terms, axis=0)
            n = len(cell)
            assert 0 < kept < 1
            assert survival[i, j] == pytest.approx(kept, rel=1e-12)
            assert abs(influence.sum()) < 1e-12
            assert within[i, j] == pytest.approx(n ** 2 * (influence ** 2).sum(), rel=1e-9)
            assert crossed[i, j, 0] == pytest.approx(n * (influence * cell["pre"]).sum(), rel=1e-9)


def test_without_censoring_the_adjustment_is_cuped_of_retained_at_the_horizon():
    """No user censored before day 7: Kaplan-Meier D7 retention is the share retained, each user's influence is
    retained-or-not minus it, so the adjustment equals the conversion family's on the ``retained`` column."""
    from bayes_ab.families import family_for
    from bayes_ab.families.covariates import adjustment

    frame = covariate_users(4000, seed=2, observed_days=None)
    spec = covariate_spec()
    conversion = make_spec([{"name": "retained", "family": "conversion", "column": "retained", "covariates": ["pre"]}],
                           segments=("segment",))
    found = adjustment(family_for(spec.metrics[0]), aggregate(spec, frame)["retention"], spec.metrics[0])
    cuped = adjustment(family_for(conversion.metrics[0]), aggregate(conversion, frame)["retained"],
                       conversion.metrics[0])
    np.testing.assert_allclose(found.slopes, cuped.slopes, rtol=1e-9)
    np.testing.assert_allclose(found.means, cuped.means, rtol=1e-9)
    assert found.residual_share == pytest.approx(cuped.residual_share, rel=1e-9)
    assert 0.15 < found.variance_reduction < 0.4          # the covariate matters here: a no-op fails above


def test_effective_life_tables_carry_the_adjusted_retention_with_the_residual_variance():
    """The model reads effective life tables: Kaplan-Meier D7 of each is the adjusted retention, Greenwood's
    variance shrinks by about the residual share, and the model is the binomial without its constant."""
    from bayes_ab.families import family_for
    from bayes_ab.families.covariates import adjustment, effective_statistics
    from bayes_ab.families.retention import variant

    frame = covariate_users(6000, seed=3)
    spec = covariate_spec()
    metric = spec.metrics[0]
    stats = aggregate(spec, frame)["retention"]
    family = family_for(metric)
    found = adjustment(family, stats, metric)
    effective = effective_statistics(family, stats, metric)
    np.testing.assert_allclose(kaplan_meier(effective["at_risk"].values, effective["lost"].values)[..., 6],
                               found.means, rtol=1e-9)

    def greenwood(table):
        at_risk, lost = table["at_risk"].values[..., :7], table["lost"].values[..., :7]
        return (lost / (at_risk * (at_risk - lost))).sum(axis=-1) * kaplan_meier(at_risk, lost)[..., 6] ** 2

    np.testing.assert_allclose(greenwood(effective) / greenwood(stats), found.residual_share, rtol=0.1)
    assert variant(effective, metric).endswith("effective cells") and variant(stats, metric) == "horizon 7"
    assert effective["n"].values == pytest.approx(stats["n"].values / found.residual_share, rel=1e-12)


def test_a_cell_without_churn_keeps_its_own_life_table():
    """A segment where nobody has churned yet (Kaplan-Meier 1) cannot carry an adjusted retention as a life table:
    it keeps its own, whole numbers and all, beside the adjusted cells."""
    from bayes_ab.families import family_for
    from bayes_ab.families.covariates import effective_statistics

    frame = covariate_users(3000, seed=4)
    quiet = frame["segment"] == "1"
    frame.loc[quiet, "churn_day"] = np.nan
    spec = covariate_spec()
    metric = spec.metrics[0]
    stats = aggregate(spec, frame)["retention"]
    effective = effective_statistics(family_for(metric), stats, metric)
    for name in ("n", "at_risk", "lost"):
        np.testing.assert_array_equal(effective[name].sel(segment="1").values, stats[name].sel(segment="1").values)
        assert not np.allclose(effective[name].sel(segment="0").values, stats[name].sel(segment="0").values)


def test_fractional_life_tables_use_the_binomial_likelihood_without_its_constant():
    """The model of an effective (fractional) life table: at any point its log density differs from the binomial
    model's on the same whole counts by exactly the binomial constant sum log C(R, L) (users held as floats and
    counts nudged by 1e-9, as effective cells are, to take the fractional branch)."""
    from scipy.special import gammaln

    from bayes_ab.families.retention import build_model

    metric = retention_spec(max_day=7).metrics[0]
    stats = aggregate(retention_spec(max_day=7), users_mid_test(3000, seed=2))["retention"]
    nudged = stats.assign(n=stats["n"].astype(float), at_risk=stats["at_risk"] + 1e-9, lost=stats["lost"] + 1e-9)
    whole, fractional = build_model(stats, metric), build_model(nudged, metric)
    point = whole.initial_point()
    point = {name: value + 0.1 * np.arange(value.size).reshape(value.shape) / max(value.size, 1)
             for name, value in point.items()}
    R, L = stats["at_risk"].values.astype(float), stats["lost"].values.astype(float)
    constant = (gammaln(R + 1) - gammaln(L + 1) - gammaln(R - L + 1)).sum()
    # the Python backend: compiling two C functions for one evaluation each would take longer than the test
    difference = (whole.compile_logp(mode="FAST_COMPILE")(point)
                  - fractional.compile_logp(mode="FAST_COMPILE")(point))
    assert difference == pytest.approx(constant, abs=1e-3)


def test_covariate_outcome_is_retained_at_the_horizon():
    """A user who churns on the horizon day is not retained at it (Kaplan-Meier counts that day's loss)."""
    from bayes_ab.families import family_for

    metric = retention_spec().metrics[0]
    np.testing.assert_array_equal(family_for(metric).covariate_outcome(metric, np.array([1, 6, 7, 8, 30])),
                                  [0, 0, 0, 1, 1])


@pytest.mark.slow
def test_adjusted_retention_is_unbiased_covers_and_has_the_variance_it_reports():
    """200 simulated mid-test experiments (3,000 users, a third censored before day 7, no effect): the adjusted D7
    difference (flat closed form on the effective life tables) is unbiased within 3.5 Monte Carlo SE, its 90%
    intervals cover 0 90% +/- 3.5 SE of a binomial share, and its variance over the experiments is the residual
    share the analysis reports of the unadjusted one's, within 15%."""
    from dataclasses import replace

    from bayes_ab.families import family_for
    from bayes_ab.families.covariates import adjustment
    from bayes_ab.posterior.fit import fit
    from bayes_ab.sampling import Backend

    flat = SamplerSettings(backend=Backend.CONJUGATE, draws=2000, chains=2, seed=3)
    spec = covariate_spec()
    metric = spec.metrics[0]
    runs, adjusted, raw, covered, shares = 200, [], [], 0, []

    def difference(stats, which):
        posterior = fit(stats, which, flat).overall_mean
        return (posterior.sel(arm="treatment") - posterior.sel(arm="control")).values.ravel()

    for seed in range(runs):
        stats = aggregate(spec, covariate_users(3000, seed=100 + seed))["retention"]
        d = difference(stats, metric)
        low, high = np.quantile(d, [0.05, 0.95])
        covered += low <= 0.0 <= high
        adjusted.append(d.mean())
        raw.append(difference(stats, replace(metric, covariates=())).mean())
        shares.append(adjustment(family_for(metric), stats, metric).residual_share)
    adjusted, raw = np.array(adjusted), np.array(raw)
    assert abs(adjusted.mean()) < 3.5 * adjusted.std() / np.sqrt(runs)
    assert abs(covered / runs - 0.9) < 3.5 * np.sqrt(0.09 / runs)
    assert adjusted.var() / raw.var() == pytest.approx(np.mean(shares), rel=0.15)
    assert np.mean(shares) < 0.9                     # the adjustment removes something


def test_simulated_retention_covariate_correlates_with_retained_and_narrows_the_posterior():
    """Planning: the covariate's correlation is with retained-or-not at the horizon, and the simulator's adjusted
    life tables give posteriors narrower by about the residual share than the plain ones on the same users."""
    from bayes_ab.families import family_for
    from bayes_ab.families.covariates import CovariateTruth
    from bayes_ab.metric import Baseline
    from bayes_ab.stopping.generate import accumulator, truth

    metric = retention_spec().metrics[0]
    drawn = CovariateTruth(truth(metric, Baseline(0.4), [1.0, 1.0]), family_for(metric), 0.5,
                           np.random.default_rng(0))
    arms = np.random.default_rng(1).integers(0, 2, 100_000)
    values = drawn.draw(np.random.default_rng(2), arms)
    assert np.corrcoef(values[:, 0] > 7, values[:, 1])[0, 1] == pytest.approx(0.5, abs=0.01)
    adjusted = accumulator(metric, ("control", "treatment"), truth=drawn)
    plain = accumulator(metric, ("control", "treatment"))
    rng = np.random.default_rng(3)
    for day in range(20):                         # 20 daily cohorts: the early ones followed to day 14
        arms = rng.integers(0, 2, 2000)
        values = drawn.draw(rng, arms)
        adjusted.add(arms, values)
        plain.add(arms, values[:, 0].astype(np.int64))
    ratio = adjusted.estimate()[1] / plain.estimate()[1]
    assert np.all((ratio > 0.7) & (ratio < 0.85)), ratio      # 1 - 0.5^2 = 0.75 for fully observed users
    np.testing.assert_allclose(adjusted.estimate()[0], plain.estimate()[0], atol=0.02)
