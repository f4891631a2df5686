"""Slow statistical checks of every family: interval coverage with fixed truth, and
simulation-based calibration (SBC) of the treatment effect with truth drawn from the prior.

SBC (Talts et al. 2018): if parameters are drawn from the prior and data from the model, the rank of
the true value among posterior draws is uniform. Ranks are taken among 99 thinned draws and tested
for uniformity over 5 bins with a chi-square test. The treatment effect is drawn from its exact
prior; nuisance parameters (baselines, dispersion, day hazards, noise scales) are drawn from
narrower distributions than the models' weakly-informative priors so that the simulated data stay
realistic, which makes the check approximate in their direction only; at these sample sizes the
likelihood dominates them.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from bayes_ab.aggregation import aggregate
from bayes_ab.families import conversion, retention
from bayes_ab.posterior import fit
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

pytestmark = pytest.mark.slow
SETTINGS = SamplerSettings(draws=500, tune=500, chains=2, seed=8)
ARMS = np.array(["control", "treatment"])
METRICS = {
    "conversion": {"name": "m", "family": "conversion", "column": "y"},
    "count": {"name": "m", "family": "count", "column": "y", "count_model": "negative_binomial"},
    "retention": {"name": "m", "family": "retention", "column": "y", "observed_column": "seen",
                  "horizon": 7, "max_day": 7},
    "mean": {"name": "m", "family": "mean", "column": "y"},
}


def simulate(family: str, effect: float, rng: np.random.Generator, n: int,
             prior_draw: bool) -> tuple[pd.DataFrame, float]:
    """Per-user data with treatment effect ``effect`` on the family's link scale (for the mean
    family, in units of the pooled standard deviation); returns the data and the true value of
    what :func:`effect_draws` measures."""
    arm = np.repeat([0, 1], n)
    frame = pd.DataFrame({"arm": ARMS[arm]})
    if family == "conversion":
        base = rng.normal(0, conversion.BASELINE_LOGIT_SD) if prior_draw else -1.5
        frame["y"] = rng.random(2 * n) < 1 / (1 + np.exp(-(base + effect * arm)))
    elif family == "count":
        base = rng.normal(0, 1.5) + 1.0 if prior_draw else 1.5
        alpha = np.exp(rng.normal(0, 0.5, 2)) if prior_draw else np.array([1.5, 1.5])
        mu = np.exp(base + effect * arm)
        frame["y"] = rng.negative_binomial(alpha[arm], alpha[arm] / (alpha[arm] + mu))
    elif family == "retention":
        days = rng.normal(retention.DAY_MU, 1.0, 7) if prior_draw else np.full(7, -2.0)
        seen = rng.integers(3, 8, 2 * n)
        churn = np.full(2 * n, np.nan)
        alive = np.ones(2 * n, bool)
        for d in range(7):
            h = 1 / (1 + np.exp(-(days[d] + effect * arm)))
            gone = alive & (rng.random(2 * n) < h) & (seen >= d + 1)
            churn[gone] = d + 1
            alive &= ~gone
        frame["y"], frame["seen"] = churn, seen
    else:
        sigma = np.exp(rng.normal(0, 0.3, 2)) if prior_draw else np.array([1.0, 1.0])
        difference = effect * np.sqrt(np.mean(sigma ** 2))
        frame["y"] = rng.normal(3.0 + difference * arm, sigma[arm])
        return frame, difference
    return frame, effect


def effect_draws(result, family: str) -> np.ndarray:
    """Posterior draws of the treatment effect: link scale, or the mean difference for means."""
    posterior = result.idata.posterior
    if family == "mean":
        return (posterior["mean"].isel(arm=1) - posterior["mean"].isel(arm=0)).values.ravel()
    return posterior["effect"].values.ravel()


@pytest.mark.parametrize("family", ["count", "retention", "mean"])
def test_ninety_percent_intervals_cover_a_fixed_truth(family):
    rng = np.random.default_rng(20)
    spec = make_spec([METRICS[family]])
    effect, covered, reps = 0.2, 0, 100
    for _ in range(reps):
        frame, truth = simulate(family, effect, rng, 500, prior_draw=False)
        result = fit(aggregate(spec, frame)["m"], spec.metrics[0], SETTINGS)
        low, high = np.quantile(effect_draws(result, family), [0.05, 0.95])
        covered += low <= truth <= high
    # binomial sd of the coverage over 100 replications is 0.03
    assert abs(covered / reps - 0.9) < 0.09, covered


@pytest.mark.parametrize("family", ["conversion", "count", "retention", "mean"])
def test_simulation_based_calibration_of_the_treatment_effect(family):
    rng = np.random.default_rng(21)
    spec = make_spec([METRICS[family]])
    prior_sd = spec.metrics[0].prior.effect_sd
    ranks = []
    for _ in range(60):
        effect = rng.normal(0, prior_sd)
        frame, truth = simulate(family, effect, rng, 150, prior_draw=True)
        result = fit(aggregate(spec, frame)["m"], spec.metrics[0], SETTINGS)
        draws = effect_draws(result, family)
        thinned = draws[:: max(1, draws.size // 99)][:99]
        ranks.append(int(np.sum(thinned < truth)))
    counts = np.histogram(ranks, bins=5, range=(0, 100))[0]
    p = st.chisquare(counts).pvalue
    assert p > 0.001, (counts, p)
