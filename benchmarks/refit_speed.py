"""Re-fit speed of the compiled 20-segment conversion model, against pm.sample on the same model.

Prints: compile time, median re-fit seconds (nutpie, compiled once, new data each time, default
sampler settings of the spec), and the median wall time of pm.sample on the same model and data,
with its own defaults and with the re-fit's settings, plus the ratios.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings

import numpy as np
import pymc as pm

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.families import registry
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.models.hierarchy import prior_data
from bayes_ab.spec import Metric, SamplerSettings

warnings.filterwarnings("ignore")
logging.getLogger("pymc").setLevel(logging.ERROR)
SEGMENTS = 20
REFITS = 5


def simulated(rng: np.random.Generator):
    n = rng.integers(2_000, 20_000, size=(2, SEGMENTS))
    base = rng.uniform(0.03, 0.2, size=SEGMENTS)
    rates = np.vstack([base, base * (1 + rng.normal(0.04, 0.02, size=SEGMENTS))])
    return conversion_stats(["control", "treatment"], [f"segment_{i:02d}" for i in range(SEGMENTS)],
                            n, rng.binomial(n, rates), "conversion")


def main() -> None:
    rng = np.random.default_rng(2026)
    metric = Metric(name="conversion", family="conversion", column="converted")
    settings = SamplerSettings()
    cache = ModelCache()
    start = time.perf_counter()
    fit(simulated(rng), metric, settings, cache)
    first = time.perf_counter() - start
    refits, divergences = [], []
    for i in range(REFITS):
        stats = simulated(rng)
        start = time.perf_counter()
        result = fit(stats, metric, SamplerSettings(seed=i), cache)
        refits.append(time.perf_counter() - start)
        divergences.append(result.diagnostics.divergences)
    model = registry()["conversion"].build_model(stats, metric)
    pm_times, pm_same = [], []
    for i in range(2):
        with model:
            pm.set_data({"n": stats["n"].values, "successes": stats["successes"].values,
                         **prior_data(metric.prior)})
            start = time.perf_counter()
            pm.sample(progressbar=False, random_seed=i, compute_convergence_checks=False)
            pm_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                      target_accept=settings.target_accept, progressbar=False, random_seed=i,
                      compute_convergence_checks=False)
            pm_same.append(time.perf_counter() - start)
    refit = statistics.median(refits)
    print(f"cores: {os.cpu_count()}; model: 2 arms x {SEGMENTS} segments; structures prepared: "
          f"{cache.compilations} ({cache.from_disk} loaded from the disk cache)")
    print(f"first fit incl. compilation (or the load from the disk cache): {first:.1f} s")
    print(f"re-fit (nutpie, {settings.chains} chains x {settings.draws} draws + {settings.tune} tune, "
          f"target_accept {settings.target_accept}): median {refit:.2f} s over {REFITS} "
          f"(min {min(refits):.2f}, max {max(refits):.2f}); divergences per fit {divergences}")
    print(f"pm.sample defaults on the same model: median {statistics.median(pm_times):.1f} s over "
          f"{len(pm_times)} calls")
    print(f"pm.sample with the re-fit's settings ({settings.chains} chains, target_accept "
          f"{settings.target_accept}): median {statistics.median(pm_same):.1f} s")
    print(f"speed ratio pm.sample defaults / re-fit: {statistics.median(pm_times) / refit:.0f}x "
          f"(pm.sample defaults draw {min(4, max(2, os.cpu_count() or 1))} chains here, the re-fit "
          f"{settings.chains})")
    print(f"speed ratio pm.sample same settings / re-fit: {statistics.median(pm_same) / refit:.0f}x")


if __name__ == "__main__":
    main()
