"""Aggregated (sufficient statistics) model vs a per-user Bernoulli PyMC model.

Both models have the same priors and parameters; the per-user model has one Bernoulli term per
user. At 1M users the per-user model is too slow to run here in full, so it runs on a random
subsample (USERS_PER_USER_MODEL) and its time is scaled linearly in users (each gradient
evaluation is linear in rows); the aggregated model is timed on the full 1M. The posteriors are
compared on the subsample, where both models see identical data.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import nutpie
import pymc as pm
import pytensor.tensor as pt

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.families.conversion import BASELINE_LOGIT_SD
from bayes_ab.spec import Metric, SamplerSettings

warnings.filterwarnings("ignore")
USERS = 1_000_000
USERS_PER_USER_MODEL = 100_000
SEGMENTS = 6
SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, seed=1)


def per_user_model(arm: np.ndarray, segment: np.ndarray, converted: np.ndarray, metric: Metric) -> pm.Model:
    coords = {"segment": list(range(SEGMENTS)), "treatment": ["treatment"]}
    with pm.Model(coords=coords) as model:
        baseline = pm.Normal("baseline", 0.0, BASELINE_LOGIT_SD, dims="segment")
        mu = pm.Normal("effect_mu", 0.0, metric.prior.effect_sd, dims="treatment")
        sd = pm.HalfNormal("effect_sd", metric.prior.heterogeneity_sd, dims="treatment")
        z = pm.Normal("effect_z", 0.0, 1.0, dims=("treatment", "segment"))
        effect = mu[0] + sd[0] * z[0]
        logit_p = baseline[segment] + pt.switch(pt.eq(arm, 1), effect[segment], 0.0)
        pm.Bernoulli("obs", logit_p=logit_p, observed=converted)
        pm.Deterministic("treatment_rate", pm.math.sigmoid(baseline + effect), dims="segment")
    return model


def main() -> None:
    rng = np.random.default_rng(5)
    metric = Metric(name="conversion", family="conversion", column="converted")
    segment = rng.integers(0, SEGMENTS, USERS)
    arm = rng.integers(0, 2, USERS)
    base = np.linspace(0.05, 0.15, SEGMENTS)
    converted = (rng.random(USERS) < base[segment] * (1 + 0.05 * arm)).astype("int8")

    def stats_of(idx):
        n = np.zeros((2, SEGMENTS)); s = np.zeros((2, SEGMENTS))
        np.add.at(n, (arm[idx], segment[idx]), 1)
        np.add.at(s, (arm[idx], segment[idx]), converted[idx])
        return conversion_stats(["control", "treatment"], [str(j) for j in range(SEGMENTS)], n, s, "conversion")

    cache = ModelCache()
    fit(stats_of(np.arange(USERS)), metric, SETTINGS, cache)          # compile
    start = time.perf_counter()
    full = fit(stats_of(np.arange(USERS)), metric, SETTINGS, cache)
    aggregated_seconds = time.perf_counter() - start

    sub = rng.choice(USERS, USERS_PER_USER_MODEL, replace=False)
    small = fit(stats_of(sub), metric, SETTINGS, cache)
    model = per_user_model(arm[sub], segment[sub], converted[sub], metric)
    compiled = nutpie.compile_pymc_model(model)
    start = time.perf_counter()
    idata = nutpie.sample(compiled, draws=SETTINGS.draws, tune=SETTINGS.tune, chains=SETTINGS.chains,
                          cores=2, seed=1, target_accept=SETTINGS.target_accept, progress_bar=False)
    per_user_seconds = time.perf_counter() - start
    scaled = per_user_seconds * USERS / USERS_PER_USER_MODEL

    agg_rate = small.idata.posterior["mean"].sel(arm="treatment")
    per_rate = idata.posterior["treatment_rate"]
    diff_mean = np.abs(agg_rate.mean(("chain", "draw")).values - per_rate.mean(("chain", "draw")).values)
    sd = agg_rate.std(("chain", "draw")).values
    print(f"aggregated model on {USERS:,} users: {aggregated_seconds:.2f} s "
          f"(divergences {full.diagnostics.divergences})")
    print(f"per-user Bernoulli model on {USERS_PER_USER_MODEL:,} users: {per_user_seconds:.1f} s; "
          f"scaled linearly to {USERS:,}: {scaled:.0f} s")
    print(f"speed ratio (per-user scaled / aggregated): {scaled / aggregated_seconds:.0f}x")
    print(f"same posterior on the subsample: max |difference of treatment-rate means| = "
          f"{diff_mean.max():.2e} = {np.max(diff_mean / sd):.2f} posterior sd")


if __name__ == "__main__":
    main()
