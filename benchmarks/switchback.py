"""Switchback experiments: coverage with and without carry-over and washout, the fixed-effects regression as the
reference, and planning, through the real aggregation and analysis. Figures go to RESULTS.md ("switchbacks").

    .venv/bin/python benchmarks/switchback.py [--coverage 300] [--reference 100] [--power 1000]

Each simulated experiment is 8 regions x 14 days x 24 hourly periods on a randomised schedule (``bayes-ab schedule``:
4 regions on treatment every hour), 20 rows a cell: a region's level (sd 20% of the baseline 100), a daily cycle of
+/-30%, cell noise of sd 3 (an hour's own randomness) and the rows' own noise (sd 10), the effect +5 per row, and in
the carry-over scenarios half of the previous arm's effect lingering for one hour after each switch. The rows are
aggregated by DuckDB and analysed by bayes-ab (the spec's default effect prior).

- coverage: the share of 90% intervals of the absolute effect covering +5 (target >= 86%), without carry-over
  (washout 0), with carry-over and washout 1 (the design the issue asks for), and with carry-over but no washout
  (what the warning is for);
- reference: statsmodels OLS of the cell means on unit and period fixed effects and the treatment (cells outside
  the washout), against the posterior of the effect: point gap in posterior sds and width ratio (targets 0.2 sd and
  25%), with the default prior and with a flat one;
- power: ``bayes-ab plan``'s prediction against simulated experiments (the switchback model on simulated cells).
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
from bayes_ab.families.switchback import _positions, regression  # noqa: E402
from bayes_ab.planning.switchback import simulate_cells, simulated_power, switchback_power  # noqa: E402
from bayes_ab.spec import parse_spec  # noqa: E402

UNITS, PERIODS, ROWS, BASE, CELL_SD, ROW_SD, LIFT = 8, 14 * 24, 20, 100.0, 3.0, 10.0, 0.05


def spec(washout: int, backend: str | None = None):
    found = parse_spec({"name": "switchback", "arm_column": "arm",
                        "switchback": {"unit": "region", "time": "hour", "washout": washout},
                        "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                        "metrics": [{"name": "value", "family": "mean", "column": "value"}]})
    return found if backend is None else replace(found, sampler=replace(found.sampler, backend=backend))


def rows(seed: int, carry: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = simulate_cells(rng, UNITS, PERIODS, BASE, CELL_SD, LIFT, carry=carry, cycle=0.3, unit_sd=0.2, rows=1)
    repeated = cells.loc[cells.index.repeat(ROWS)].reset_index(drop=True)
    noise = ROW_SD * rng.standard_normal(len(repeated))
    noise -= pd.Series(noise).groupby(repeated.index // ROWS).transform("mean").to_numpy()   # cell means kept
    return pd.DataFrame({"region": repeated["unit"], "hour": repeated["period"], "arm": repeated["arm"],
                         "value": repeated["total"].to_numpy() + noise})


def _covered(job: tuple[int, float, int]) -> bool:
    seed, carry, washout = job
    s = spec(washout)
    result = analyze_stats(s, aggregate(s, rows(seed, carry)))
    e = result.effects["value"].overall("treatment")
    return bool(e.abs_low <= LIFT * BASE <= e.abs_high)


def coverage(experiments: int, carry: float, washout: int, workers: int) -> float:
    jobs = [(1_000 * washout + 17 * i + int(10 * carry), carry, washout) for i in range(experiments)]
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return float(np.mean(pool.map(_covered, jobs, chunksize=8)))


def reference(experiments: int) -> pd.DataFrame:
    import statsmodels.formula.api as smf

    found = []
    for i in range(experiments):
        frame = rows(50_000 + i, 0.5)
        for prior, backend in (("default", None), ("flat", "conjugate")):
            s = spec(1, backend)
            result = analyze_stats(s, aggregate(s, frame))
            fitted = regression(result.stats["value"])
            stats = result.stats["value"]
            # the cells the effect is estimated from: outside the washout, as the family keeps them
            cells = pd.DataFrame({"unit": stats["cell_unit"].values, "period": stats["cell_period"].values,
                                  "treated": stats["cell_arm"].values.astype(float),
                                  "y": (stats["cell_total"] / stats["cell_weight"]).values})
            cells = cells[_positions(stats)[0] >= 1]
            ols = smf.ols("y ~ C(unit) + C(period) + treated", data=cells).fit()
            draws = result.fits["value"].overall_mean
            theta = (draws.isel(arm=1) - draws.isel(arm=0)).values.ravel()
            low, high = ols.conf_int(alpha=0.1).loc["treated"]
            found.append((prior, (theta.mean() - ols.params["treated"]) / theta.std(),
                          (np.quantile(theta, 0.95) - np.quantile(theta, 0.05)) / (high - low), fitted.theta))
    return pd.DataFrame(found, columns=["prior", "gap", "width", "theta"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=int, default=300)
    parser.add_argument("--reference", type=int, default=100)
    parser.add_argument("--power", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"design: {UNITS} units x {PERIODS} hourly periods, {ROWS} rows a cell, effect +{LIFT * BASE:g} on {BASE:g}")
    if args.coverage:
        se = np.sqrt(0.09 / args.coverage)
        for carry, washout in ((0.0, 0), (0.5, 1), (0.5, 0)):
            share = coverage(args.coverage, carry, washout, args.workers)
            print(f"coverage ({args.coverage}): carry-over {carry:.0%} of the effect, washout {washout}: 90% interval "
                  f"covers the effect in {share:.1%} (MC se at 90%: {se:.1%})")
    if args.reference:
        table = reference(args.reference)
        for prior, part in table.groupby("prior"):
            print(f"reference ({args.reference}, fixed-effects OLS on the cells outside the washout): {prior} prior: "
                  f"point gap mean {part['gap'].mean():+.3f}, max |gap| {part['gap'].abs().max():.3f} posterior sd; "
                  f"width ratio median {part['width'].median():.3f} (range {part['width'].min():.3f}-"
                  f"{part['width'].max():.3f})")
    if args.power:
        for units, periods, lift, washout, carry in ((8, 48, 0.02, 0, 0.0), (8, 48, 0.02, 1, 0.5), (4, 96, 0.03, 1, 0.5),
                                                     (8, 336, 0.005, 1, 0.5)):
            predicted = switchback_power(1.0, 0.05, lift, units, periods, 0.99, washout)
            simulated = simulated_power(1.0, 0.05, lift, units, periods, 0.99, args.power, washout=washout, carry=carry,
                                        seed=11)
            se = np.sqrt(simulated * (1 - simulated) / args.power)
            print(f"power: {units} units x {periods} periods, cell sd 5% of the mean, lift {lift:+.1%}, washout {washout}, "
                  f"carry-over {carry:.0%}: predicted {predicted:.1%}, simulated {simulated:.1%} (MC se {se:.1%}), "
                  f"gap {100 * (predicted - simulated):+.1f} points")
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
