"""The first analysis of an experiment in a fresh process: empty model cache, after `bayes-ab warmup`, and warm,
beside GrowthBook's gbstats and tea-tasting on the same file, each as its own process in the same run.

Experiments: the push example (200,000 users, 2 arms, 6 segments, 3 metrics), Hillstrom's e-mail campaign
(`examples/data/hillstrom_womens.csv`, 42,613 customers, 2 arms, 7 segments by past-year spend: visit, conversion,
spend) and Group Stories (60,000 users, 3 segments, 8 metrics: ratio, count, conversion, retention).

bayes-ab, per experiment, each a new `bayes-ab analyze` process:
- **empty cache**: a new `BAYES_AB_CACHE_DIR` (the machine's library caches -- numba's for the libraries,
  PyTensor's -- stay as they are: a worker image carries them, see the scheduled check-ins guide);
- **after warmup**: a new cache, `bayes-ab warmup` on the same data (timed apart), then analyze;
- **warm**: analyze again on the filled cache;
- **after another experiment's warmup**: a new cache, `bayes-ab warmup` of *another* experiment of the same
  metrics -- the rows without the last value of the first segment column, so another segment count (6 -> 3, 7 -> 6,
  3 -> 2) -- then analyze this one: the first analysis of a new experiment on a worker that has seen its
  families (structures are compiled per class of sizes, not per size).
gbstats (Bayesian effect test per metric on the overall per-arm sums) and tea-tasting (`Experiment(...).analyze`,
its default frequentist tests) read the same file with pandas and compute every metric they have a form for:
means and proportions (both), ratios (tea-tasting's RatioOfMeans); neither has a retention form, and gbstats'
ratio needs the covariance which its row API takes pre-aggregated, so those metrics are left out of their
timings (said in the output). Neither fits segments; bayes-ab fits the hierarchy.

Usage: ``.venv/bin/python benchmarks/first_run.py [--compare-python /path/to/python-with-gbstats-and-tea-tasting]``
(without it only bayes-ab is timed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "bayes_ab.cli"]
NEW = "after another experiment's warmup"

HILLSTROM_SPEC = {
    "name": "hillstrom_email", "arm_column": "segment", "segments": ["history_segment"],
    "arms": [{"name": "No E-Mail", "control": True}, {"name": "Womens E-Mail"}],
    "metrics": [{"name": "visit", "family": "conversion", "column": "visit"},
                {"name": "conversion", "family": "conversion", "column": "conversion"},
                {"name": "spend", "family": "mean", "column": "spend"}],
}

COMPARE = r'''
import sys, time, json
started = time.perf_counter()
import pandas as pd
tool, path, arm_column, control, metrics = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
done = []
if tool == "gbstats":
    from gbstats.bayesian.tests import EffectBayesianABTest, EffectBayesianConfig
    from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic
    groups = frame.groupby(arm_column)
    for m in metrics:
        if m["family"] not in ("conversion", "count", "mean"):
            continue
        column = m["column"]
        sums = groups[column].agg(["count", "sum"])
        squares = groups[column].apply(lambda v: float((v.astype(float) ** 2).sum()))
        def stat(arm):
            n, s = int(sums.loc[arm, "count"]), float(sums.loc[arm, "sum"])
            if m["family"] == "conversion":
                return ProportionStatistic(n=n, sum=s)
            return SampleMeanStatistic(n=n, sum=s, sum_squares=float(squares.loc[arm]))
        for arm in sums.index:
            if str(arm) != control:
                EffectBayesianABTest(stat(control), stat(arm), EffectBayesianConfig()).compute_result()
        done.append(m["name"])
else:
    import tea_tasting as tt
    chosen = {}
    for m in metrics:
        if m["family"] in ("conversion", "count", "mean"):
            chosen[m["name"]] = tt.Mean(m["column"])
        elif m["family"] == "ratio":
            chosen[m["name"]] = tt.RatioOfMeans(m["numerator"], m["denominator"])
    frame = frame.rename(columns={arm_column: "variant"})
    tt.Experiment(chosen).analyze(frame, control=control, all_variants=True)
    done = list(chosen)
print(json.dumps({"seconds": time.perf_counter() - started, "metrics": done}))
'''


def _timed(command: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env={**os.environ, **(env or {})}, check=True, capture_output=True, text=True,
                   timeout=1800)
    return time.perf_counter() - started


def _experiments(work: Path) -> list[tuple[str, Path, Path]]:
    """(name, spec, data) of the three experiments, generating the data that are generated."""
    push_data = ROOT / "examples" / "push_notification" / "data" / "users.parquet"
    if not push_data.exists():
        subprocess.run([sys.executable, str(ROOT / "examples" / "push_notification" / "generate.py"), "--out",
                        str(push_data)], check=True)
    stories = work / "group_stories.parquet"
    subprocess.run([sys.executable, str(ROOT / "examples" / "group_stories" / "generate.py"), "--out", str(stories)],
                   check=True, capture_output=True)
    email_spec = work / "hillstrom.yaml"
    email_spec.write_text(yaml.safe_dump(HILLSTROM_SPEC))
    return [("push (200,000 users, 6 segments, 3 metrics)", ROOT / "examples" / "push_notification" / "spec.yaml",
             push_data),
            ("e-mail (42,613 customers, 7 segments, 3 metrics)", email_spec,
             ROOT / "examples" / "data" / "hillstrom_womens.csv"),
            ("Group Stories (60,000 users, 3 segments, 8 metrics)", ROOT / "examples" / "group_stories" / "spec.yaml",
             stories)]


def _sibling(spec: dict, data: Path, work: Path) -> Path:
    """The rows of another experiment of the same metrics: without the last value of the first segment column."""
    import pandas as pd

    frame = pd.read_parquet(data) if data.suffix == ".parquet" else pd.read_csv(data)
    column = spec["segments"][0]
    last = sorted(frame[column].dropna().astype(str).unique())[-1]
    out = work / f"sibling-{data.stem}.parquet"
    frame[frame[column].astype(str) != last].to_parquet(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-python", help="a Python with gbstats and tea-tasting installed")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bayes-ab-first-run-"))
    rows = []
    for name, spec_path, data in _experiments(work):
        spec = yaml.safe_load(spec_path.read_text())
        analyze = CLI + ["analyze", str(spec_path), "--data", str(data), "--models-dir", str(work / "models")]
        cold_cache = {"BAYES_AB_CACHE_DIR": str(work / f"cold-{len(rows)}")}
        empty = _timed(analyze, cold_cache)
        warm = _timed(analyze, cold_cache)
        warmed_cache = {"BAYES_AB_CACHE_DIR": str(work / f"warmed-{len(rows)}")}
        warmup = _timed(CLI + ["warmup", str(spec_path), "--data", str(data)], warmed_cache)
        after = _timed(analyze, warmed_cache)
        sibling_cache = {"BAYES_AB_CACHE_DIR": str(work / f"sibling-{len(rows)}")}
        _timed(CLI + ["warmup", str(spec_path), "--data", str(_sibling(spec, data, work))], sibling_cache)
        new = _timed(analyze, sibling_cache)
        row = {"experiment": name, "empty cache": empty, "warmup": warmup, "after warmup": after, "warm": warm,
               NEW: new}
        if args.compare_python:
            control = next(a["name"] for a in spec["arms"] if a.get("control"))
            for tool in ("gbstats", "tea-tasting"):
                started = time.perf_counter()
                arm_column = spec.get("arm_column", "arm")
                done = subprocess.run([args.compare_python, "-c", COMPARE, tool, str(data), arm_column, control,
                                       json.dumps(spec["metrics"])], check=True, capture_output=True, text=True,
                                      timeout=600)
                inside = json.loads(done.stdout.strip().splitlines()[-1])
                row[tool] = time.perf_counter() - started
                row[f"{tool} metrics"] = len(inside["metrics"])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| experiment | bayes-ab, empty cache | `warmup` | bayes-ab after warmup | after another experiment's "
          "warmup | bayes-ab warm | gbstats | tea-tasting |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        others = " | ".join(f"{r[t]:.1f} s ({r[t + ' metrics']} metrics)" if t in r else "-"
                            for t in ("gbstats", "tea-tasting"))
        print(f"| {r['experiment']} | {r['empty cache']:.1f} s | {r['warmup']:.1f} s | {r['after warmup']:.1f} s | "
              f"{r[NEW]:.1f} s | {r['warm']:.1f} s | {others} |")


if __name__ == "__main__":
    main()
