"""Calibration of the count family where the negative binomial is wrong. Figures go to README and RESULTS.md.

    .venv/bin/python benchmarks/count_calibration.py [--splits 1000] [--nb-splits 100] [--experiments 1000]

1. A/A on Cookie Cats (random halvings of the control arm gate_30, capped at 1,000 rounds and uncapped):
   the share of 90% intervals of the relative lift that exclude zero (nominal 10%), for the robust
   likelihood's closed form, Welch's z-interval, and the negative binomial model (MCMC, fewer splits).
2. Coverage of the true +5% lift by 90% intervals on simulated heavy-tailed counts (negative-binomial users
   mixed with 4% power-law active traders, tail index 2.5; 20,000 users per arm), same three methods.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.families.count import count_stats  # noqa: E402
from bayes_ab.effects.compute import hdi  # noqa: E402
from bayes_ab.posterior import fit  # noqa: E402
from bayes_ab.families.count import CountModel, CountParams, sample_count  # noqa: E402
from bayes_ab.simulation import HeavyTailedCounts  # noqa: E402
from bayes_ab.spec import Metric, SamplerSettings  # noqa: E402

ROBUST = Metric(name="count", family="count", column="count")
NEGATIVE_BINOMIAL = Metric(name="count", family="count", column="count",
                           params=CountParams(CountModel.NEGATIVE_BINOMIAL))
MCMC = SamplerSettings(draws=500, tune=500, chains=2, seed=1, retry_target_accept=None)


def interval(a: np.ndarray, b: np.ndarray, method: str, seed: int) -> tuple[float, float]:
    """90% interval of mean(b) / mean(a) - 1 by ``method``: robust, welch or negative_binomial."""
    if method == "welch":
        lift = b.mean() / a.mean() - 1
        se = np.sqrt(b.var(ddof=1) / b.size / a.mean() ** 2 + a.var(ddof=1) / a.size * b.mean() ** 2 / a.mean() ** 4)
        return lift - 1.645 * se, lift + 1.645 * se
    values, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    hist = np.stack([np.bincount(codes[:a.size], minlength=len(values)),
                     np.bincount(codes[a.size:], minlength=len(values))])[:, None, :]
    stats = count_stats(["a", "b"], ["all users"], values, hist, "count")
    if method == "robust":
        draws = sample_count(stats, ROBUST, SamplerSettings(draws=2000, chains=1, seed=seed)).posterior["mean"]
    else:
        draws = fit(stats, NEGATIVE_BINOMIAL, MCMC).mean
    return hdi((draws.isel(arm=1) / draws.isel(arm=0) - 1).values.ravel(), 0.9)


def a_a(x: np.ndarray, splits: int, method: str) -> float:
    rng = np.random.default_rng(1)
    excluded = 0
    for i in range(splits):
        half = rng.permutation(x.size) < x.size // 2
        low, high = interval(x[half], x[~half], method, i)
        excluded += low > 0 or high < 0
    return excluded / splits


def coverage(experiments: int, method: str) -> float:
    heavy = HeavyTailedCounts(0.6, 0.5, 0.04, 20.0)
    rng = np.random.default_rng(31)
    covered = 0
    for i in range(experiments):
        low, high = interval(heavy.draw(rng, 20_000), heavy.draw(rng, 20_000, 1.05), method, i)
        covered += low <= 0.05 <= high
    return covered / experiments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", type=int, default=1000)
    parser.add_argument("--nb-splits", type=int, default=100)
    parser.add_argument("--experiments", type=int, default=1000)
    args = parser.parse_args()
    frame = pd.read_csv(ROOT / "examples" / "data" / "cookie_cats.csv")
    control = frame.loc[frame["version"] == "gate_30", "sum_gamerounds"].to_numpy()
    print("A/A on Cookie Cats gate_30: share of 90% intervals excluding zero (nominal 10%)")
    for label, x in (("capped at 1,000", np.minimum(control, 1000)), ("uncapped", control)):
        for method, n in (("robust", args.splits), ("welch", args.splits), ("negative_binomial", args.nb_splits)):
            start = time.perf_counter()
            rate = a_a(x, n, method)
            se = np.sqrt(max(rate * (1 - rate), 0.01) / n)
            print(f"  {label:16} {method:18} {rate:6.1%} (+/- {se:.1%}, {n} splits, {time.perf_counter() - start:.0f} s)",
                  flush=True)
    print("Coverage of the true +5% by 90% intervals, heavy-tailed counts (nominal 90%)")
    for method, n in (("robust", args.experiments), ("welch", args.experiments), ("negative_binomial", args.nb_splits)):
        rate = coverage(n, method)
        print(f"  {method:18} {rate:6.1%} (+/- {np.sqrt(rate * (1 - rate) / n):.1%}, {n} experiments)", flush=True)


if __name__ == "__main__":
    main()
