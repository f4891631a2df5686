"""Fits that don't block: how often the models fail their diagnostics, and whether their answers hold on real and
misspecified data. Figures go to RESULTS.md ("fits that don't block").

    .venv/bin/python benchmarks/fits.py corpus   [--seeds 5] [--first-seed 1] [--examples group_stories ...]
                                                                  # every generated example x seeds x stages, Cookie Cats
    .venv/bin/python benchmarks/fits.py robust   [--experiments 100]
    .venv/bin/python benchmarks/fits.py segments                  # the e-mail campaign by 0, 3, 3, 7 and 9 segments
    .venv/bin/python benchmarks/fits.py small    [--seeds 20]     # 1,000 segments x 60 users, no effect

corpus: each example's generator with seeds 1..N, its spec's metrics and sampler, fitted on the first 1%, 5%, 25%
and 50% of the users (prefixes in the order they were generated, as exposures arrive), plus Cookie Cats (real,
one order) at the same stages: the share of fits that fail their diagnostics (R-hat, ESS, divergences), with
every failure listed.
robust: heavy-tailed counts (negative-binomial users mixed with 4% power-law traders, tail index 2.5), true +5%,
200 / 500 / 2,000 users per arm spread over 6 segments: the control's posterior mean against its observed mean
in standard errors, the 90% interval's coverage of +5%, and the share of fits that pass.
segments: Hillstrom's e-mail campaign (examples/data), conversion and spend, no segments against zip code,
channel, both (9) and past-year spend band (7), then the push example (seed 1) without segments, by tenure, by
region and by both: diagnostics, the overall lift's move in posterior sds, the control's posterior mean against
its observed mean in standard errors. (Cookie Cats has no pre-treatment column to segment by.)
small: 1,000 segments of 30 users per arm, conversion 10% in both arms: the 90% interval of the overall lift
covering 0, the control's overall rate against its observed one, diagnostics.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.aggregation import aggregate  # noqa: E402
from bayes_ab.analysis import analyze_stats  # noqa: E402
from bayes_ab.families.conversion import conversion_stats  # noqa: E402
from bayes_ab.families.count import CountModel, CountParams, count_stats  # noqa: E402
from bayes_ab.intervals import hdi  # noqa: E402
from bayes_ab.posterior import fit  # noqa: E402
from bayes_ab.simulation import HeavyTailedCounts  # noqa: E402
from bayes_ab.spec import Metric, SamplerSettings, load_spec, parse_spec  # noqa: E402

EXAMPLES = ("push_notification", "group_stories", "checkout", "onboarding")
STAGES = (0.01, 0.05, 0.25, 0.5)
SAMPLER = SamplerSettings(draws=1000, tune=1000, chains=4, seed=1)


def _generator(example: str):
    path = ROOT / "examples" / example / "generate.py"
    spec = importlib.util.spec_from_file_location(f"generate_{example}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def _fits(spec, frame: pd.DataFrame, label: str) -> list[tuple[str, str]]:
    """(fit, problem) of every metric of ``spec`` on ``frame``; problem empty when it passed."""
    analysis = analyze_stats(spec, aggregate(spec, frame))
    return [(f"{label} {name}", "; ".join(f.diagnostics.problems)) for name, f in analysis.fits.items()]


def corpus(seeds: int, examples: tuple[str, ...] = EXAMPLES, first: int = 1) -> None:
    results: dict[str, list[tuple[str, str]]] = {}
    for example in examples:
        spec, generate = load_spec(ROOT / "examples" / example / "spec.yaml"), _generator(example)
        for seed in range(first, seeds + 1):
            frame = generate(seed=seed)
            for stage in STAGES:
                part = frame.iloc[:max(int(len(frame) * stage), 50)]
                results.setdefault(example, []).extend(_fits(spec, part, f"seed {seed} stage {stage:.0%}"))
            print(f"{example} seed {seed}: {sum(bool(p) for _, p in results[example])} failed of "
                  f"{len(results[example])} so far", flush=True)
    cats = pd.read_csv(ROOT / "examples" / "data" / "cookie_cats.csv")
    spec = load_spec(ROOT / "examples" / "cookie_cats" / "spec.yaml")
    for stage in STAGES + (1.0,) if examples == EXAMPLES else ():
        results.setdefault("cookie_cats", []).extend(_fits(spec, cats.iloc[:int(len(cats) * stage)], f"stage {stage:.0%}"))
    total = failed = 0
    print("\n| example | fits | failed | share |\n|---|---|---|---|")
    for example, rows in results.items():
        bad = [r for r in rows if r[1]]
        total, failed = total + len(rows), failed + len(bad)
        print(f"| {example} | {len(rows)} | {len(bad)} | {len(bad) / len(rows):.1%} |")
    print(f"| all | {total} | {failed} | {failed / total:.2%} |")
    for example, rows in results.items():
        for label, problem in rows:
            if problem:
                print(f"  {example} {label}: {problem}")


def _heavy_counts(rng, n: int, segments: int):
    heavy = HeavyTailedCounts(0.6, 0.5, 0.04, 20.0)
    x = [heavy.draw(rng, n), heavy.draw(rng, n, 1.05)]
    values = np.unique(np.concatenate(x))
    hist = np.zeros((2, segments, len(values)), int)
    for arm in range(2):
        np.add.at(hist, (arm, rng.integers(segments, size=n), np.searchsorted(values, x[arm])), 1)
    return count_stats(["control", "treatment"], [f"s{i}" for i in range(segments)], values, hist, "trades"), x[0]


def robust(experiments: int) -> None:
    metric = Metric(name="trades", family="count", column="trades", params=CountParams(CountModel.ROBUST))
    print("| users per arm | control mean - observed (SE), average | largest | 90% coverage of +5% | fits passing |")
    print("|---|---|---|---|---|")
    for n in (200, 500, 2000):
        rng = np.random.default_rng(5)
        deviation, covered, passed = [], 0, 0
        for i in range(experiments):
            stats, control = _heavy_counts(rng, n, 6)
            result = fit(stats, metric, SamplerSettings(draws=1000, tune=1000, chains=2, seed=i))
            overall = result.overall_mean
            deviation.append((float(overall.isel(arm=0).mean()) - control.mean())
                             / (control.std(ddof=1) / np.sqrt(n)))
            low, high = hdi((overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel(), 0.9)
            covered += low <= 0.05 <= high
            passed += result.diagnostics.passed
        print(f"| {n:,} | {np.mean(deviation):+.2f} | {np.max(np.abs(deviation)):.2f} | "
              f"{covered / experiments:.0%} (MC se {np.sqrt(0.09 / experiments):.0%}) | {passed / experiments:.0%} |",
              flush=True)


def hillstrom() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "examples" / "data" / "hillstrom_womens.csv")
    frame["arm"] = np.where(frame["segment"] == "No E-Mail", "control", "email")
    frame["band"] = frame["history_segment"].str[:1]
    frame["user"] = np.arange(len(frame))
    return frame


def _invariance(frame: pd.DataFrame, spec_for, groupings: list[list[str]]) -> None:
    """Each metric's overall lift and control mean with no segments and with each grouping: the lift's move in
    posterior sds of the unsegmented fit, the control's posterior mean against its observed mean in SEs."""
    reference = {}
    print("| segments | metric | overall lift (sd) | moved, posterior sds | control - observed (SE) | fit |")
    print("|---|---|---|---|---|---|")
    for by in groupings:
        spec = spec_for(by)
        control = frame[frame[spec.arm_column] == spec.control.name]
        stats = aggregate(spec, frame)
        for metric in spec.metrics:
            values = control[metric.column].astype(float)
            result = fit(stats[metric.name], metric, SAMPLER)
            overall = result.overall_mean
            lift = (overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel()
            reference.setdefault(metric.name, (lift.mean(), lift.std()))
            moved = (lift.mean() - reference[metric.name][0]) / reference[metric.name][1]
            off = (float(overall.isel(arm=0).mean()) - values.mean()) / (values.std() / np.sqrt(len(values)))
            label = " x ".join(by) or "none"
            count = stats[metric.name].sizes["segment"]
            print(f"| {label} ({count}) | {metric.name} | {lift.mean():+.1%} ({lift.std():.1%}) | {moved:+.2f} | "
                  f"{off:+.2f} | {result.diagnostics.summary().split(' - ')[-1]} |", flush=True)


def segments() -> None:
    frame = hillstrom()

    def spec_for(by):
        return parse_spec({"name": "hillstrom", "arm_column": "arm", "unit_column": "user", "segments": by,
                           "arms": [{"name": "control", "control": True}, {"name": "email"}],
                           "metrics": [{"name": "conversion", "family": "conversion", "column": "conversion"},
                                       {"name": "spend", "family": "mean", "column": "spend"}]})

    _invariance(frame, spec_for, [[], ["zip_code"], ["channel"], ["zip_code", "channel"], ["band"]])
    # the push example (generated, seed 1): its own segments, one at a time and together
    import yaml

    document = yaml.safe_load((ROOT / "examples" / "push_notification" / "spec.yaml").read_text())
    for key in ("received_column", "compliance"):
        document.pop(key, None)
    frame = _generator("push_notification")(seed=1)
    print()
    _invariance(frame, lambda by: parse_spec({**document, "segments": by}),
                [[], ["tenure"], ["region"], ["tenure", "region"]])


def small(seeds: int, first: int = 0) -> None:
    metric = Metric(name="converted", family="conversion", column="converted")
    covers, offs, passed = 0, [], 0
    for seed in range(first, seeds):
        rng = np.random.default_rng(seed)
        users = np.full((2, 1000), 30)
        conversions = rng.binomial(users, 0.1)
        stats = conversion_stats(["control", "treatment"], [f"s{i}" for i in range(1000)], users, conversions,
                                 "converted")
        start = time.perf_counter()
        result = fit(stats, metric, SAMPLER)
        overall = result.overall_mean
        low, high = hdi((overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel(), 0.9)
        rate = conversions[0].sum() / users[0].sum()
        off = (float(overall.isel(arm=0).mean()) - rate) / np.sqrt(rate * (1 - rate) / users[0].sum())
        covers, passed = covers + (low <= 0 <= high), passed + result.diagnostics.passed
        offs.append(off)
        print(f"seed {seed}: 90% interval {low:+.1%} to {high:+.1%}, control {off:+.2f} SE from observed, "
              f"{result.diagnostics.summary()} ({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"interval covers 0: {covers} of {seeds}; control off by {np.mean(offs):+.2f} SE on average, at most "
          f"{np.max(np.abs(offs)):.2f}; fits passing {passed} of {seeds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("corpus", "robust", "segments", "small"))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--first-seed", type=int, default=None,
                        help="corpus and small: seeds from this one on (by default corpus from 1, small from 0)")
    parser.add_argument("--examples", nargs="+", choices=EXAMPLES, default=EXAMPLES,
                        help="corpus: these generated examples only (Cookie Cats only with all of them)")
    args = parser.parse_args()
    if args.part == "corpus":
        corpus(args.seeds or 5, tuple(args.examples), 1 if args.first_seed is None else args.first_seed)
    elif args.part == "robust":
        robust(args.experiments)
    elif args.part == "segments":
        segments()
    else:
        small(args.seeds or 20, 0 if args.first_seed is None else args.first_seed)


if __name__ == "__main__":
    main()
