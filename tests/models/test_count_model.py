"""Count family: exact histogram likelihood, Poisson special case, heavy tails (Cookie Cats)."""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.data import aggregate, count_stats
from bayes_ab.errors import DataError
from bayes_ab.models import fit
from bayes_ab.models.count import BASELINE_LOG_SD, LOG_ALPHA_SD, dispersion_test
from bayes_ab.models.conjugate import sample_count
from bayes_ab.spec import Metric, SamplerSettings

from conftest import COOKIE_CATS, make_spec

SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, seed=4)


def count_metric(**kw):
    return Metric(name="trades", family="count", column="trades", **kw)


def histogram_stats(samples: dict[str, np.ndarray]):
    values = np.unique(np.concatenate(list(samples.values())))
    hist = np.array([[[np.sum(x == v) for v in values]] for x in samples.values()])
    return count_stats(list(samples), ["all users"], values, hist, "trades")


def test_histogram_likelihood_equals_per_user_likelihood():
    rng = np.random.default_rng(1)
    samples = {"control": rng.negative_binomial(1.5, 1.5 / (1.5 + 3.0), 150),
               "treatment": rng.negative_binomial(1.5, 1.5 / (1.5 + 3.6), 150)}
    stats = histogram_stats(samples)
    metric = count_metric(count_model="negative_binomial")
    aggregated = fit(stats, metric, SETTINGS).mean.values.reshape(-1, 2)
    # the same model written per user, independently: one NB term per user
    with pm.Model():
        baseline = pm.Normal("baseline", 0.0, BASELINE_LOG_SD)
        effect = pm.Normal("effect", 0.0, metric.prior.effect_sd)
        log_alpha = pm.Normal("log_alpha", 0.0, LOG_ALPHA_SD, shape=2)
        for k, (arm, x) in enumerate(samples.items()):
            pm.NegativeBinomial(f"y_{arm}", mu=pm.math.exp(baseline + k * effect),
                                alpha=pm.math.exp(log_alpha[k]), observed=x)
        idata = pm.sample(1000, tune=1000, chains=2, random_seed=2, progressbar=False,
                          nuts_sampler="nutpie")
    post = idata.posterior
    per_user = np.column_stack([np.exp(post["baseline"]).values.ravel(),
                                np.exp(post["baseline"] + post["effect"]).values.ravel()])
    se = np.sqrt(aggregated.var(axis=0) / 500 + per_user.var(axis=0) / 500)  # conservative ESS 500
    assert np.all(np.abs(aggregated.mean(axis=0) - per_user.mean(axis=0)) < 4 * se)
    assert np.allclose(aggregated.std(axis=0), per_user.std(axis=0), rtol=0.15)


def test_poisson_special_case_agrees_with_gamma_poisson_closed_form():
    rng = np.random.default_rng(2)
    samples = {"control": rng.poisson(2.0, 3000), "treatment": rng.poisson(2.1, 3000)}
    stats = histogram_stats(samples)
    metric = count_metric()
    assert dispersion_test(stats)[1] > 0.05
    model_fit = fit(stats, metric, SETTINGS)
    assert model_fit.diagnostics.passed
    exact = sample_count(stats, metric, SamplerSettings(draws=100_000, chains=1, seed=3)).posterior["mean"]
    mcmc = model_fit.mean
    p_exact = float((exact.isel(arm=1) > exact.isel(arm=0)).mean())
    p_mcmc = float((mcmc.isel(arm=1) > mcmc.isel(arm=0)).mean())
    ess = model_fit.diagnostics.min_ess_bulk
    assert abs(p_mcmc - p_exact) < 4 * np.sqrt(p_exact * (1 - p_exact) / ess) + 0.01
    sd = exact.std(("chain", "draw")).values
    assert np.all(np.abs(mcmc.mean(("chain", "draw")).values - exact.mean(("chain", "draw")).values)
                  < 4 * sd / np.sqrt(ess))


def test_auto_picks_negative_binomial_for_overdispersed_counts_and_recovers_lift():
    rng = np.random.default_rng(3)
    samples = {"control": rng.negative_binomial(0.8, 0.8 / (0.8 + 4.0), 4000),
               "treatment": rng.negative_binomial(0.8, 0.8 / (0.8 + 4.4), 4000)}
    stats = histogram_stats(samples)
    result = analyze(make_spec([{"name": "trades", "family": "count", "column": "trades"}]),
                     pd.DataFrame({"arm": np.repeat(list(samples), 4000),
                                   "trades": np.concatenate(list(samples.values()))}),
                     sampler=SETTINGS)
    effects = result.effects["trades"]
    assert effects.model_note.startswith("negative binomial likelihood (overdispersed")
    row = effects.overall("treatment")
    assert row.rel_low < 0.10 < row.rel_high
    assert int(result.stats["trades"]["n"].sum()) == 8000 and stats.sizes["value"] > 20


@pytest.fixture(scope="module")
def cookie_cats():
    return pd.read_csv(COOKIE_CATS)


def game_rounds(frame, family, **extra):
    spec = make_spec([{"name": "rounds", "family": family, "column": "sum_gamerounds", **extra}],
                     arm_column="version", arms=("gate_30", "gate_40"))
    effects = analyze(spec, frame, sampler=SETTINGS).effects["rounds"]
    return effects.overall("gate_40"), effects.model_note


def test_cookie_cats_counts_are_sensible_with_and_without_the_outlier_while_the_normal_mean_is_not(cookie_cats):
    outlier = cookie_cats["sum_gamerounds"].idxmax()
    assert cookie_cats.loc[outlier, "sum_gamerounds"] == 49_854
    trimmed = cookie_cats.drop(index=outlier)
    (count_all, note_all), (count_trim, note_trim) = game_rounds(cookie_cats, "count"), game_rounds(trimmed, "count")
    (mean_all, _), (mean_trim, _) = game_rounds(cookie_cats, "mean"), game_rounds(trimmed, "mean")
    for row in (count_all, count_trim):
        assert np.isfinite([row.rel_lift, row.rel_low, row.rel_high]).all()
        assert -0.15 < row.rel_low < row.rel_high < 0.15
    width = lambda r: r.rel_high - r.rel_low  # noqa: E731
    # One player moves the normal-mean interval far more than the count model's. Closed form for
    # the normal mean: sqrt((sd_c^2 + sd_t^2) / (sd_c'^2 + sd_t^2)) = sqrt((256^2 + 104^2) / (2 * 104^2))
    # ~ 1.9 (the outlier inflates control's sd from 104 to 256 rounds).
    assert width(mean_all) / width(mean_trim) > 1.5
    assert width(count_all) / width(count_trim) < 1.15
    # ...which is why the count model warns that the tail decides (the outlier alone raises gate_30's
    # mean by (49,854 - 51.3) / 44,700 = 1.11 rounds, about 2.3 standard errors) and offers a cap
    assert "WARNING: one user of arm 'gate_30' with 49,854" in note_all
    assert "WARNING" not in note_trim
    (capped, note_capped) = game_rounds(cookie_cats, "count", cap=1000)
    assert "capped at 1000" in note_capped and "WARNING" not in note_capped
    assert abs(capped.rel_lift - count_trim.rel_lift) < 0.01


def test_bad_counts_are_refused():
    frame = pd.DataFrame({"arm": ["control", "treatment"] * 3, "trades": [1, 2, -1, 0, 3, 1]})
    spec = make_spec([{"name": "trades", "family": "count", "column": "trades"}])
    with pytest.raises(DataError, match=r"'trades'.*negative counts"):
        aggregate(spec, frame)
    frame["trades"] = [1, 2, 1.5, 0, 3, 1]
    with pytest.raises(DataError, match=r"'trades'.*non-integer counts"):
        aggregate(spec, frame)
