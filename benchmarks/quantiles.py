"""Quantile metrics: interval coverage, agreement with a user-level bootstrap, aggregation and analysis speed.
Figures go to RESULTS.md ("quantile metrics").

    .venv/bin/python benchmarks/quantiles.py coverage  [--experiments 500]
    .venv/bin/python benchmarks/quantiles.py bootstrap [--replicates 2000]
    .venv/bin/python benchmarks/quantiles.py speed     [--rows 10000000]

coverage: the 90% interval of the relative p95 difference (treatment's p95 / control's - 1) against the true one,
over simulated experiments with a true -8% change: per-user values (log-normal, 1,000 users per arm) and per-event
values (users' log-normal effect of sd 0.6 beside the request's 0.5, 1 + Poisson(15) requests per user, 300 users
per arm), the latter also analysed naively (every request as an independent user).
bootstrap: the latency example (examples/latency, 30,000 users, 390,529 requests): the 90% interval ends of the
p50, p95 and p99 relative differences against a user-level (cluster) bootstrap percentile interval, in units of
the bootstrap interval's width.
speed: DuckDB on a Parquet file of ``--rows`` requests (100,000 users): the histogram statistics (per-user
values: one grouped query by bin; per-event values: the users' window sums) against a bare grouped COUNT(*) by
arm; then the analysis of the p95 from the histogram.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.aggregation import aggregate  # noqa: E402
from bayes_ab.analysis import analyze_stats  # noqa: E402
from bayes_ab.families.quantile import QuantileParams, bin_sql, quantile_stats, sample_quantile  # noqa: E402
from bayes_ab.metric import Metric  # noqa: E402
from bayes_ab.models.quantiles import bin_keys  # noqa: E402
from bayes_ab.spec import SamplerSettings, load_spec, parse_spec  # noqa: E402

SETTINGS = SamplerSettings(draws=2000, chains=2, seed=1, exact=False)


def numpy_stats(arms: np.ndarray, uid: np.ndarray, values: np.ndarray, p: float):
    """The family's statistics built in numpy from per-event rows (users as clusters)."""
    keys_all = bin_keys(values)
    keys, position = np.unique(keys_all, return_inverse=True)
    order = np.lexsort((keys_all, uid))
    u, k = uid[order], position[order]
    pair_start = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (k[1:] != k[:-1])])
    e = np.diff(np.r_[pair_start, len(u)]).astype(float)
    pu, pk = u[pair_start], k[pair_start]
    m = np.bincount(pu, weights=e)[pu]
    user_start = np.r_[True, pu[1:] != pu[:-1]]
    running = np.cumsum(e)
    offset = np.maximum.accumulate(np.where(user_start, running - e, 0))
    before = running - e - offset
    hist = {name: np.zeros((2, 1, len(keys))) for name in ("events", "cross", "square")}
    a = arms[pu]
    np.add.at(hist["events"], (a, 0, pk), e)
    np.add.at(hist["cross"], (a, 0, pk), e * m)
    np.add.at(hist["square"], (a, 0, pk), e * (2 * before + e))
    users = np.zeros((2, 1))
    np.add.at(users, (a[user_start], 0), 1)
    return quantile_stats(["control", "treatment"], ["all users"], keys, hist, users, "latency", p)


def interval(stats, p: float) -> tuple[float, float]:
    metric = Metric(name="latency", family="quantile", column="latency", params=QuantileParams(p))
    post = sample_quantile(stats, metric, SETTINGS)[0].posterior["overall_mean"]
    ratio = (post.sel(arm="treatment") / post.sel(arm="control")).values.ravel() - 1
    return tuple(np.quantile(ratio, [0.05, 0.95]))


def coverage(experiments: int) -> None:
    rng = np.random.default_rng(2026)
    change, p = -0.08, 0.95
    hits = {"per-user": 0, "per-event": 0, "per-event, naive": 0}
    # the true p95 of per-event values: a user effect N(0, 0.6) and a request effect N(0, 0.5), equal weights
    truth_rel = change
    start = time.time()
    for _ in range(experiments):
        arms = np.repeat([0, 1], 1000)
        values = rng.lognormal(5, 0.8, 2000) * np.where(arms == 1, 1 + change, 1)
        low, high = interval(numpy_stats(arms, np.arange(2000), values, p), p)
        hits["per-user"] += low <= truth_rel <= high
        user_arm = np.repeat([0, 1], 300)
        counts = rng.poisson(15, 600) + 1
        uid = np.repeat(np.arange(600), counts)
        values = np.exp(5 + rng.normal(0, 0.6, 600)[uid] + rng.normal(0, 0.5, len(uid))) \
            * np.where(user_arm[uid] == 1, 1 + change, 1)
        low, high = interval(numpy_stats(user_arm, uid, values, p), p)
        hits["per-event"] += low <= truth_rel <= high
        low, high = interval(numpy_stats(user_arm[uid], np.arange(len(uid)), values, p), p)
        hits["per-event, naive"] += low <= truth_rel <= high
    sd = np.sqrt(0.9 * 0.1 / experiments)
    print(f"90% interval coverage of a true {change:+.0%} p95 change over {experiments} experiments "
          f"(binomial sd {sd:.1%}; {time.time() - start:.0f} s):")
    for name, hit in hits.items():
        print(f"  {name:18s} {hit / experiments:.1%}")


def bootstrap(replicates: int) -> None:
    module_spec = importlib.util.spec_from_file_location("latency", ROOT / "examples/latency/generate.py")
    generator = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generator)
    rows = generator.generate()
    spec = load_spec(ROOT / "examples/latency/spec.yaml")
    start = time.time()
    result = analyze_stats(spec, aggregate(spec, rows))
    print(f"analysis of the example: {time.time() - start:.2f} s (aggregation included)")
    rng = np.random.default_rng(7)
    users = rows.groupby("user_id")["arm"].first()
    arms = {arm: users.index[users == arm].to_numpy() for arm in generator.ARMS}
    per_arm = {}
    for arm in generator.ARMS:
        part = rows[rows["arm"] == arm].sort_values("latency_ms")
        ids = part["user_id"].to_numpy()
        per_arm[arm] = (part["latency_ms"].to_numpy(), np.searchsorted(arms[arm], ids))
    quantiles = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}
    draws = {name: [] for name in quantiles}
    start = time.time()
    for _ in range(replicates):
        found = {}
        for arm, (values, index) in per_arm.items():
            weight = np.bincount(rng.integers(0, len(arms[arm]), len(arms[arm])), minlength=len(arms[arm]))[index]
            cumulative = np.cumsum(weight)
            found[arm] = {name: values[np.searchsorted(cumulative, p * cumulative[-1])] for name, p in quantiles.items()}
        for name in quantiles:
            draws[name].append(found["fast_api"][name] / found["control"][name] - 1)
    print(f"user-level bootstrap, {replicates} replicates ({time.time() - start:.0f} s); interval ends in units of "
          "the bootstrap interval's width:")
    for name in quantiles:
        low, high = np.quantile(draws[name], [0.05, 0.95])
        row = result.effects[name].overall("fast_api")
        width = high - low
        off = (f"ends off by {(row.rel_low - low) / width:+.2f} and {(row.rel_high - high) / width:+.2f} widths "
               if width > 0 else "the bootstrap interval is a point (one value): ends off by ")
        print(f"  {name}: bootstrap {low:+.2%} to {high:+.2%}; bayes-ab {row.rel_low:+.2%} to {row.rel_high:+.2%}; "
              f"{off}({abs(row.rel_low - low) * 100:.2f} and {abs(row.rel_high - high) * 100:.2f} points)")


def speed(rows: int) -> None:
    import duckdb

    rng = np.random.default_rng(3)
    users = 100_000
    uid = np.sort(rng.integers(0, users, rows))
    arm = np.where(rng.integers(0, 2, users) == 1, "treatment", "control")[uid]
    frame = pd.DataFrame({"user_id": uid, "arm": arm, "request_id": np.arange(rows), "exposure_day": 0,
                          "latency": rng.lognormal(5, 0.8, rows).round(1)})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "requests.parquet"
        frame.to_parquet(path, index=False)
        del frame
        metric = {"name": "p95", "family": "quantile", "column": "latency", "quantile": 0.95}
        base = {"name": "speed", "arm_column": "arm", "arms": [{"name": "control", "control": True},
                                                               {"name": "treatment"}], "metrics": [metric]}
        per_user = parse_spec(base)
        per_event = parse_spec({**base, "unit_column": "user_id", "activity_column": "request_id",
                                "day_column": "exposure_day"})
        con = duckdb.connect()

        def timed(run, repeats=3):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                out = run()
                best = min(best, time.perf_counter() - start)
            return best, out

        bare, _ = timed(lambda: con.execute(f"SELECT arm, COUNT(*) FROM read_parquet('{path}') GROUP BY arm").fetchall())
        key = bin_sql("latency")
        by_bin, _ = timed(lambda: con.execute(
            f"SELECT arm, {key} AS k, COUNT(*) FROM read_parquet('{path}') GROUP BY 1, 2").fetchall())
        by_user_bin, _ = timed(lambda: con.execute(
            f"SELECT arm, k, COUNT(*), SUM(e) FROM (SELECT user_id, arm, {key} AS k, COUNT(*) AS e "
            f"FROM read_parquet('{path}') GROUP BY 1, 2, 3) GROUP BY 1, 2").fetchall())
        grouped_users, _ = timed(lambda: con.execute(
            f"SELECT arm, COUNT(*) FROM (SELECT user_id, arm FROM read_parquet('{path}') GROUP BY 1, 2) GROUP BY 1").fetchall())
        flat, stats = timed(lambda: aggregate(per_user, path))
        clustered, clustered_stats = timed(lambda: aggregate(per_event, path))
        analysis, _ = timed(lambda: analyze_stats(per_event, clustered_stats))
    print(f"{rows:,} rows, {users:,} users, DuckDB {duckdb.__version__}; best of 3:")
    print(f"  bare COUNT(*) grouped by arm:                 {bare:.2f} s")
    print(f"  COUNT(*) grouped by user, then by arm:         {grouped_users:.2f} s")
    print(f"  bare COUNT(*) grouped by arm and bin:          {by_bin:.2f} s")
    print(f"  bare COUNT(*) grouped by user and bin, then by arm and bin: {by_user_bin:.2f} s")
    print(f"  aggregate(), one value per row:                {flat:.2f} s ({flat / by_bin:.1f}x the grouping by bin; "
          "data checks and unit checks included)")
    print(f"  aggregate(), users as clusters (panel):        {clustered:.2f} s "
          f"({clustered / by_user_bin:.1f}x the grouping by user and bin; the panel's checks included)")
    print(f"  analysis of the p95 from the histogram:        {analysis:.2f} s "
          f"({clustered_stats['p95'].sizes['bin']} bins)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("coverage", "bootstrap", "speed"))
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    if args.what == "coverage":
        coverage(args.experiments)
    elif args.what == "bootstrap":
        bootstrap(args.replicates)
    else:
        speed(args.rows)


if __name__ == "__main__":
    main()
