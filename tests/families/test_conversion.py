"""The hierarchical conversion model against exact Beta-Binomial answers and known truth."""

from dataclasses import replace

import numpy as np
import pytest

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.effects import compute_effects
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.models.conjugate import beta_posterior, prob_beta_greater
from bayes_ab.spec import EffectPrior, Metric, SamplerSettings

from conftest import FAST

METRIC = Metric(name="converted", family="conversion", column="converted")


def p_beat(result) -> float:
    mean = result.mean
    return float((mean.isel(arm=1) > mean.isel(arm=0)).mean())


def single_segment(rng, n=20_000, rates=(0.100, 0.104)):
    users = np.array([[n], [n]])
    return conversion_stats(["control", "treatment"], ["all users"], users,
                            rng.binomial(users, np.array(rates)[:, None]), "converted")


def exact_p_beat(stats) -> float:
    (s_c, s_t), (n_c, n_t) = stats["successes"].values[:, 0], stats["n"].values[:, 0]
    return prob_beta_greater(*beta_posterior(s_t, n_t), *beta_posterior(s_c, n_c))


def test_one_segment_agrees_with_exact_beta_binomial_and_refits_without_recompiling():
    """NUTS on the one-segment model (exact=False: it would otherwise be integrated, tests/models/test_quadrature)."""
    rng = np.random.default_rng(10)
    cache = ModelCache()
    for _ in range(2):
        stats = single_segment(rng)
        result = fit(stats, METRIC, replace(FAST, exact=False), cache)
        exact = exact_p_beat(stats)
        ess = result.diagnostics.min_ess_bulk
        # Monte Carlo error of a probability estimated from `ess` effective draws, plus a small
        # allowance for the (weak) normal-logit prior versus the flat Beta prior.
        assert abs(p_beat(result) - exact) < 4 * np.sqrt(exact * (1 - exact) / ess) + 0.01
        assert result.diagnostics.divergences == 0
    assert cache.compilations == 1


def test_pymc_backend_agrees_with_nutpie():
    stats = single_segment(np.random.default_rng(11))
    exact = exact_p_beat(stats)
    result = fit(stats, METRIC, SamplerSettings(draws=500, tune=500, chains=2, seed=1, backend="pymc", exact=False),
                 ModelCache())
    assert abs(p_beat(result) - exact) < 4 * np.sqrt(exact * (1 - exact) / result.diagnostics.min_ess_bulk) + 0.01


def segment_data(rng, true_lifts, base=0.1, users=1500):
    j = len(true_lifts)
    n = np.full((2, j), users)
    rates = np.vstack([np.full(j, base), base * (1 + np.asarray(true_lifts))])
    segments = [f"s{i}" for i in range(j)]
    return conversion_stats(["control", "treatment"], segments, n, rng.binomial(n, rates), "converted")


def test_pooling_beats_unpooled_estimates_when_segments_are_alike():
    rng = np.random.default_rng(12)
    true_lifts = np.full(8, 0.05)
    pooled_err, unpooled_err = [], []
    metric = Metric(name="converted", family="conversion", column="converted",
                    prior=EffectPrior(effect_sd=0.5, heterogeneity_sd=0.1))
    for _ in range(4):
        stats = segment_data(rng, true_lifts)
        for backend, errors in (("nutpie", pooled_err), ("conjugate", unpooled_err)):
            settings = SamplerSettings(draws=500, tune=500, chains=2, seed=2, backend=backend)
            effects = compute_effects(fit(stats, metric, settings))
            lifts = np.array([r.rel_lift for r in effects.rows if not r.is_overall and not r.is_control])
            errors.append(np.mean((lifts - true_lifts) ** 2))
    assert np.mean(pooled_err) < 0.5 * np.mean(unpooled_err)


@pytest.mark.slow
def test_segment_intervals_cover_truth_at_nominal_rate():
    """Truth drawn from the model's own prior, so 90% intervals must cover 90% of the time."""
    rng = np.random.default_rng(13)
    prior = EffectPrior(effect_sd=0.15, heterogeneity_sd=0.08)
    metric = Metric(name="converted", family="conversion", column="converted", prior=prior)
    settings = SamplerSettings(draws=1000, tune=1000, chains=2, seed=5)
    covered, total = 0, 0
    for _ in range(80):
        mu = rng.normal(0, prior.effect_sd)
        sd = abs(rng.normal(0, prior.heterogeneity_sd))
        effect = mu + sd * rng.normal(size=6)
        baseline = rng.uniform(-3.0, -1.0, size=6)
        rates = 1 / (1 + np.exp(-np.vstack([baseline, baseline + effect])))
        n = rng.integers(500, 5000, size=(2, 6))
        stats = conversion_stats(["control", "treatment"], [f"s{i}" for i in range(6)], n,
                                 rng.binomial(n, rates), "converted")
        result = fit(stats, metric, settings)
        effects = compute_effects(result, interval=0.9)
        true_rel = rates[1] / rates[0] - 1
        rows = [r for r in effects.rows if not r.is_overall and not r.is_control]
        for row, truth in zip(rows, true_rel):
            covered += row.rel_low <= truth <= row.rel_high
            total += 1
    coverage = covered / total
    # 480 intervals; binomial sd ~0.014, inflated for within-experiment correlation.
    assert abs(coverage - 0.9) < 0.045, coverage


def lift_draws(result) -> np.ndarray:
    overall = result.overall_mean
    return (overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel()


@pytest.mark.parametrize("heterogeneity", [0.0, 0.3])
def test_large_cells_as_normals_agree_with_the_exact_binomial_hierarchy(monkeypatch, heterogeneity):
    """Three segments of 8,000 users per arm (at least 50 conversions and non-conversions per cell): the
    normal-cells model and the exact binomial hierarchy give the same overall lift (mean within 0.1 posterior
    sd, sd within 6%), with segments alike and with segments that differ."""
    import bayes_ab.families.conversion as conversion

    rng = np.random.default_rng(4)
    rates = np.array([[0.05, 0.12, 0.3]]) * np.exp(np.array([[0.0], [0.05]]) + heterogeneity * rng.normal(size=(1, 3)) * [[0], [1]])
    users = np.full((2, 3), 8000)
    stats = conversion_stats(["control", "treatment"], ["a", "b", "c"], users, rng.binomial(users, rates), "converted")
    assert conversion.normal_cells(stats)
    settings = SamplerSettings(draws=1500, tune=1000, chains=2, seed=2)
    normal = lift_draws(fit(stats, METRIC, settings))
    monkeypatch.setattr(conversion, "NORMAL_CELL_EVENTS", 10 ** 9)
    assert not conversion.normal_cells(stats)
    exact = lift_draws(fit(stats, METRIC, settings))
    assert abs(normal.mean() - exact.mean()) < 0.1 * exact.std()
    assert normal.std() == pytest.approx(exact.std(), rel=0.06)


def test_small_cells_keep_the_exact_likelihood():
    users = np.array([[800, 800], [800, 800]])
    stats = conversion_stats(["control", "treatment"], ["a", "b"], users, np.array([[40, 60], [45, 70]]), "converted")
    from bayes_ab.families.conversion import Conversion, normal_cells

    assert not normal_cells(stats) and Conversion().variant(stats, METRIC) == "binomial"
    assert "approximated" not in Conversion().describe(stats, METRIC)


def test_many_small_segments_leave_the_control_rate_and_the_lift_where_the_data_put_them():
    """300 segments of 20 users per arm at 10%, no effect: each segment's baseline is pooled with the others',
    so the control's overall rate sits within 0.25 standard errors of its observed value and the overall lift
    within half a posterior sd of the observed one. With a separate baseline per segment each small segment's
    rate was pulled by its own prior: the control sat 0.46 SE above its observed rate."""
    rng = np.random.default_rng(3)
    users = np.full((2, 300), 20)
    conversions = rng.binomial(users, 0.1)
    stats = conversion_stats(["control", "treatment"], [f"s{i}" for i in range(300)], users, conversions,
                             "converted")
    result = fit(stats, METRIC, SamplerSettings(draws=500, tune=500, chains=2, seed=4, retry_target_accept=None))
    rate = conversions.sum(axis=1) / users.sum(axis=1)
    control = float(result.overall_mean.isel(arm=0).mean())
    assert abs(control - rate[0]) < 0.25 * np.sqrt(rate[0] * (1 - rate[0]) / users[0].sum())
    lift = lift_draws(result)
    assert abs(lift.mean() - (rate[1] / rate[0] - 1)) < 0.5 * lift.std()


def test_baselines_are_pooled_from_ten_segments_on_and_separate_below():
    """A few segments keep their own baselines (the spread of 3 levels diverged in 15 Group Stories fits of 160);
    many share a pooled prior."""
    from bayes_ab.families.conversion import binomial_model
    from bayes_ab.models.hierarchy import POOLED_BASELINE_SEGMENTS

    def free(segments: int) -> set[str]:
        users = np.full((2, segments), 30)
        stats = conversion_stats(["control", "treatment"], [f"s{i}" for i in range(segments)], users,
                                 np.full((2, segments), 3), "converted")
        return {rv.name for rv in binomial_model(stats, METRIC).free_RVs}

    assert POOLED_BASELINE_SEGMENTS == 10
    assert {"baseline_mu", "baseline_sd", "baseline_z"} <= free(10) and "baseline" not in free(10)
    assert "baseline" in free(9) and not {"baseline_mu", "baseline_sd"} & free(9)
