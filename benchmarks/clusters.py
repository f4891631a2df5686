"""Cluster-randomised experiments: error rates, coverage, a classical reference and planning, through the real
aggregation and analysis. Figures go to RESULTS.md ("cluster-randomised experiments").

    .venv/bin/python benchmarks/clusters.py [--aa 500] [--coverage 300] [--reference 100] [--power 1000]

Each simulated experiment is a per-user table: 30 clusters per arm, gamma cluster sizes (mean 200, CV 0.5),
conversion with Beta-distributed cluster rates (mean 10%, intra-cluster correlation 0.05 in both arms) and a
value per user (log-normal, a cluster-level log-normal factor of sd 0.3). Each is aggregated by DuckDB and analysed
by bayes-ab twice: as declared (``cluster_column``) and as if users were independent (the same spec without it).

- aa: no effect; the share of experiments whose 90% interval of the lift excludes 0 (target <= 12% by cluster;
  reported for the naive analysis);
- coverage: true +10% on both metrics; the share of 90% intervals of the relative lift covering it (target >= 86%);
- reference: statsmodels OLS of the per-user outcome on the arm with cluster-robust standard errors
  (``cov_type="cluster"``) against the posterior of the absolute difference: the point estimates' gap in posterior
  sds and the width ratio (targets 0.2 sd and 25%), with the spec's effect prior (the default) and with a flat
  prior (``backend: conjugate``: the data alone, as OLS);
- power: ``bayes-ab plan``'s predicted power (noncentral t) against the share of simulated experiments that reach
  P(beat control) >= 0.99 (target +/- 5 points), at three designs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.aggregation import aggregate  # noqa: E402
from bayes_ab.analysis import analyze_stats  # noqa: E402
from bayes_ab.metric import Baseline, Metric  # noqa: E402
from bayes_ab.planning.clusters import cluster_power, simulate_clusters, simulated_power  # noqa: E402
from bayes_ab.spec import parse_spec  # noqa: E402

K, MEAN_SIZE, SIZE_CV, RATE, ICC, VALUE_SD = 30, 200, 0.5, 0.10, 0.05, 0.3
SPEC = {"name": "clusters", "arm_column": "arm", "cluster_column": "cluster",
        "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [{"name": "conversion", "family": "conversion", "column": "converted", "role": "primary"},
                    {"name": "value", "family": "mean", "column": "value", "role": "secondary"}]}


def experiment(rng: np.random.Generator, lift: float) -> pd.DataFrame:
    """One per-user table of a cluster-randomised experiment with relative ``lift`` on both metrics."""
    converted, sizes = simulate_clusters(rng, K, MEAN_SIZE, RATE, ICC, lift, SIZE_CV)
    cluster = np.repeat(np.arange(2 * K), sizes)
    treated = cluster >= K
    ones = np.concatenate([rng.permutation(np.r_[np.ones(c), np.zeros(s - c)]) for c, s in zip(converted, sizes)])
    factor = np.exp(VALUE_SD * rng.standard_normal(2 * K) - VALUE_SD ** 2 / 2)[cluster]
    value = rng.lognormal(0.0, 1.0, cluster.size) * factor * np.where(treated, 1 + lift, 1.0)
    return pd.DataFrame({"cluster": cluster, "arm": np.where(treated, "treatment", "control"),
                         "converted": ones.astype(int), "value": value})


def analyse(frame: pd.DataFrame, clustered: bool, backend: str | None = None):
    raw = dict(SPEC) if clustered else {k: v for k, v in SPEC.items() if k != "cluster_column"}
    spec = parse_spec(raw)
    sampler = replace(spec.sampler, draws=1000, chains=2, **({"backend": backend} if backend else {}))
    return analyze_stats(spec, aggregate(spec, frame), sampler=sampler)


def _covered(job: tuple[int, float]) -> dict:
    seed, lift = job
    frame = experiment(np.random.default_rng(seed), lift)
    hits = {}
    for clustered in (True, False):
        result = analyse(frame, clustered)
        for m in ("conversion", "value"):
            e = result.effects[m].overall("treatment")
            hits[(m, clustered)] = bool(e.rel_low <= lift <= e.rel_high)
    return hits


def aa_and_coverage(experiments: int, lift: float, seed: int, workers: int) -> dict:
    """Share of 90% intervals excluding 0 (no effect) or covering ``lift``, by cluster and as independent users."""
    jobs = [(seed * 1_000_003 + i, lift) for i in range(experiments)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        found = pool.map(_covered, jobs, chunksize=4)
    share = {key: float(np.mean([f[key] for f in found])) for key in found[0]}
    return {key: 1 - s if lift == 0 else s for key, s in share.items()}


def reference(experiments: int, seed: int) -> list[tuple[str, float, float]]:
    import statsmodels.api as sm

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(experiments):
        frame = experiment(rng, 0.1)
        results = {"default": analyse(frame, True), "flat": analyse(frame, True, "conjugate")}
        x = sm.add_constant((frame["arm"] == "treatment").astype(float).to_numpy())
        for m, column in (("conversion", "converted"), ("value", "value")):
            fit = sm.OLS(frame[column].to_numpy(dtype=float), x).fit(cov_type="cluster",
                                                                      cov_kwds={"groups": frame["cluster"]})
            for prior, result in results.items():
                draws = result.fits[m].overall_mean
                diff = (draws.isel(arm=1) - draws.isel(arm=0)).values.ravel()
                gap = (np.mean(diff) - fit.params[1]) / np.std(diff)
                width = (np.quantile(diff, 0.95) - np.quantile(diff, 0.05)) / (2 * 1.6449 * fit.bse[1])
                rows.append((m, prior, float(gap), float(width)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=500)
    parser.add_argument("--coverage", type=int, default=300)
    parser.add_argument("--reference", type=int, default=100)
    parser.add_argument("--power", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"design: {K} clusters per arm, mean {MEAN_SIZE} users (CV {SIZE_CV}), conversion {RATE:.0%} with ICC {ICC}, "
          f"value log-normal with a cluster factor of sd {VALUE_SD}")
    if args.aa:
        found = aa_and_coverage(args.aa, 0.0, seed=1, workers=args.workers)
        se = np.sqrt(0.1 * 0.9 / args.aa)
        for m in ("conversion", "value"):
            print(f"A/A ({args.aa}): {m}: 90% interval excludes 0 in {found[(m, True)]:.1%} by cluster, "
                  f"{found[(m, False)]:.1%} as independent users (MC se at 10%: {se:.1%})")
    if args.coverage:
        found = aa_and_coverage(args.coverage, 0.1, seed=2, workers=args.workers)
        se = np.sqrt(0.1 * 0.9 / args.coverage)
        for m in ("conversion", "value"):
            print(f"+10% ({args.coverage}): {m}: 90% interval covers the truth in {found[(m, True)]:.1%} by cluster, "
                  f"{found[(m, False)]:.1%} as independent users (MC se at 90%: {se:.1%})")
    if args.reference:
        rows = pd.DataFrame(reference(args.reference, seed=3), columns=["metric", "prior", "gap", "width"])
        for (m, prior), part in rows.groupby(["metric", "prior"]):
            print(f"reference ({args.reference}, cluster-robust OLS): {m}, {prior} prior: point gap mean {part['gap'].mean():+.3f}, "
                  f"max |gap| {part['gap'].abs().max():.3f} posterior sd; width ratio median "
                  f"{part['width'].median():.3f} (range {part['width'].min():.3f}-{part['width'].max():.3f})")
    if args.power:
        metric = Metric("conversion", "conversion", column="converted")
        for k, icc, lift, size, cv in ((30, 0.05, 0.3, 200, 0.5), (30, 0.02, 0.3, 500, 0.0), (60, 0.02, 0.2, 1000, 0.6),
                                       (12, 0.02, 0.5, 500, 0.0)):
            predicted = cluster_power(metric, Baseline(RATE), lift, k, size, icc, 0.99, cv)
            simulated = simulated_power(metric, RATE, lift, icc, size, 0.99, k, args.power, seed=4, size_cv=cv)
            se = np.sqrt(simulated * (1 - simulated) / args.power)
            print(f"power: {k} clusters/arm, {size} users (CV {cv}), ICC {icc}, lift {lift:+.0%}: predicted "
                  f"{predicted:.1%}, simulated {simulated:.1%} (MC se {se:.1%}), gap {100 * (predicted - simulated):+.1f} "
                  "points")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
