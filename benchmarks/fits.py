"""Fits that don't block: how often the models fail their diagnostics, and whether their answers hold on real and
misspecified data. Figures go to RESULTS.md ("fits that don't block").

    .venv/bin/python benchmarks/fits.py corpus   [--seeds 5] [--first-seed 1] [--examples group_stories ...]
                                                        # every generated example x seeds x stages, Cookie Cats, ASOS
    .venv/bin/python benchmarks/fits.py asos                      # the ASOS replay's looks (examples/data)
    .venv/bin/python benchmarks/fits.py robust   [--experiments 100]
    .venv/bin/python benchmarks/fits.py segments [--sources hillstrom push cookie_cats]  # by 0 to 9 segments
    .venv/bin/python benchmarks/fits.py small    [--seeds 20]     # 1,000 segments x 60 users, no effect
    .venv/bin/python benchmarks/fits.py spend    [--seeds 40]     # simulated e-mail spend, 9 segments
    .venv/bin/python benchmarks/fits.py spreads  [--experiments 60]  # means whose cells' sds are all different

corpus: each example with a generator (EXAMPLES) with seeds 1..N, its spec's metrics and sampler, fitted on the
first 1%, 5%, 25% and 50% of the users (prefixes in the order they were generated, as exposures arrive); the
examples on real data (REAL: Cookie Cats, the e-mail campaign with covariates and with a targeting policy; one
order) at the same stages and on all rows; and the ASOS replay's looks (``asos``): the share of fits that fail
their diagnostics (R-hat, ESS, divergences), with every failure listed.
asos: the ASOS replay's looks alone -- each of the dataset's 312 experiment x metric series with the replay's spec,
at its first look with 1%, 5%, 25% and 50% of its final users and at its last.
robust: heavy-tailed counts (negative-binomial users mixed with 4% power-law traders, tail index 2.5), true +5%,
200 / 500 / 2,000 users per arm spread over 6 segments: the control's posterior mean against its observed mean
in standard errors, the 90% interval's coverage of +5%, and the share of fits that pass.
segments: Hillstrom's e-mail campaign (examples/data), conversion and spend, no segments against zip code,
channel, both (9) and past-year spend band (7), then the push example (seed 1) without segments, by tenure, by
region and by both, as specified and with its guardrail's effect prior at 0.5: diagnostics, the overall lift's
move in posterior sds, the control's posterior mean against its observed mean and against the unsegmented fit's,
in standard errors; then Cookie Cats without segments and by 3, 7 and 9 buckets of the user id (it has no
pre-treatment column: a random partition).
small: 1,000 segments of 30 users per arm, conversion 10% in both arms: the 90% interval of the overall lift
covering 0, the control's overall rate against its observed one, diagnostics.
spend: per-user spend like the e-mail campaign's (0.6% buy, lognormal purchases) in its 9 zip code x channel cells,
the e-mail raising the buying rate by a factor that differs by segment: the control's posterior mean against its
observed mean, the overall lift's 90% interval against the true lift, diagnostics.
spreads: normal values in 6 segments whose cells each have their own sd (no segment x arm product), arms 1:4 on
average: the overall effect's 90% interval against the truth.
"""

from __future__ import annotations

import argparse
import importlib.util
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
from bayes_ab.errors import DataError  # noqa: E402
from bayes_ab.families.conversion import conversion_stats  # noqa: E402
from bayes_ab.families.count import CountModel, CountParams, count_stats  # noqa: E402
from bayes_ab.families.mean import mean_stats  # noqa: E402
from bayes_ab.intervals import hdi  # noqa: E402
from bayes_ab.posterior import fit  # noqa: E402
from bayes_ab.simulation import HeavyTailedCounts  # noqa: E402
from bayes_ab.spec import Arm, Metric, SamplerSettings, load_spec, parse_spec  # noqa: E402

EXAMPLES = ("push_notification", "group_stories", "checkout", "onboarding", "city_recommendations", "latency",
            "latency_switchback")
"""The examples with a generator: fitted at each seed."""
REAL = {"cookie_cats": "cookie_cats.csv", "hillstrom_cuped": "hillstrom_womens.csv",
        "hillstrom_targeting": "hillstrom_womens.csv"}
"""The examples on real data (examples/data): fitted once, at the stages and on all their rows."""
SOURCES = EXAMPLES + tuple(REAL) + ("asos",)
STAGES = (0.01, 0.05, 0.25, 0.5)
SAMPLER = SamplerSettings(draws=1000, tune=1000, chains=4, seed=1)


def _generator(example: str):
    path = ROOT / "examples" / example / "generate.py"
    return _module(path, f"generate_{example}").generate


def _fits(spec, frame: pd.DataFrame, label: str) -> list[tuple[str, str]]:
    """(fit, problem) of every metric of ``spec`` on ``frame``; problem empty when it passed. Data the analysis
    refuses (a prefix of a clustered design with one arm's clusters only) are said and give no fits."""
    try:
        analysis = analyze_stats(spec, aggregate(spec, frame))
    except DataError as exc:
        print(f"{label}: refused: {exc}", flush=True)
        return []
    return [(f"{label} {name}", "; ".join(f.diagnostics.problems)) for name, f in analysis.fits.items()]


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def asos_fits() -> list[tuple[str, str]]:
    """(fit, problem) of the ASOS replay's looks: every experiment x metric of the dataset (examples/data), with
    the replay's spec and arms, at its first look with 1%, 5%, 25% and 50% of its final users and at its last."""
    replay = _module(ROOT / "examples" / "asos_replay" / "replay.py", "asos_replay")
    frame = pd.read_csv(replay.DATA)
    template = load_spec(ROOT / "examples" / "asos_replay" / "spec.yaml")
    rows = []
    for (experiment, metric), _ in frame.groupby(["experiment_id", "metric_id"], sort=True):
        try:
            arms, points = replay.checkpoints(frame, experiment, metric)
        except DataError as exc:          # refused data, not a fit: said, and left out of the share
            print(f"asos {experiment} metric {metric}: refused: {exc}", flush=True)
            continue
        if not points:
            continue
        users = np.array([float(p.stats["metric"]["n"].sum()) for p in points])
        looks = sorted({int(np.argmax(users >= stage * users[-1])) for stage in STAGES} | {len(points) - 1})
        spec = replace(template, name=f"asos_{experiment}_metric{metric}",
                       arms=tuple(Arm(a, 1.0, i == 0) for i, a in enumerate(arms)))
        for look in looks:
            analysis = analyze_stats(spec, points[look].stats)
            rows.extend((f"{experiment} metric {metric} look {look + 1} of {len(points)} {name}",
                         "; ".join(f.diagnostics.problems)) for name, f in analysis.fits.items())
        print(f"asos {experiment} metric {metric}: {sum(bool(p) for _, p in rows)} failed of {len(rows)} so far",
              flush=True)
    return rows


def corpus(seeds: int, sources: tuple[str, ...] = SOURCES, first: int = 1) -> None:
    results: dict[str, list[tuple[str, str]]] = {}
    for example in (e for e in sources if e in EXAMPLES):
        spec, generate = load_spec(ROOT / "examples" / example / "spec.yaml"), _generator(example)
        for seed in range(first, seeds + 1):
            frame = generate(seed=seed)
            for stage in STAGES:
                part = frame.iloc[:max(int(len(frame) * stage), 50)]
                results.setdefault(example, []).extend(_fits(spec, part, f"seed {seed} stage {stage:.0%}"))
            print(f"{example} seed {seed}: {sum(bool(p) for _, p in results[example])} failed of "
                  f"{len(results[example])} so far", flush=True)
    for example in (e for e in sources if e in REAL):
        frame = pd.read_csv(ROOT / "examples" / "data" / REAL[example])
        spec = load_spec(ROOT / "examples" / example / "spec.yaml")
        for stage in STAGES + (1.0,):
            part = frame.iloc[:int(len(frame) * stage)]
            results.setdefault(example, []).extend(_fits(spec, part, f"stage {stage:.0%}"))
    if "asos" in sources:
        results["asos"] = asos_fits()
    _failures(results)


def _failures(results: dict[str, list[tuple[str, str]]]) -> None:
    """The share of fits that failed, per source and overall, then every failure."""
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


SPEND_USERS = (389, 1404, 1346, 1171, 4157, 4297, 1046, 3766, 3730)
"""Users per arm in the e-mail campaign's 9 zip code x channel cells (examples/data/hillstrom_womens.csv)."""


def _spend(rng, users=SPEND_USERS):
    """Per-user spend like the e-mail campaign's: about 0.6% of users buy, a purchase is lognormal (mean 110,
    sd 113); the e-mail raises the buying rate by a factor that differs by segment (1.2-2.2, so the arms' variance
    ratio differs by segment too). Returns the statistics, the control's values and the true overall lift."""
    segments = len(users)
    rate = rng.uniform(0.004, 0.009, segments)
    factor = rng.uniform(1.2, 2.2, segments)
    n, sums, squares, control = np.zeros((2, segments), np.int64), np.zeros((2, segments)), np.zeros((2, segments)), []
    for arm in range(2):
        for s, count in enumerate(users):
            buys = rng.random(count) < rate[s] * (factor[s] if arm else 1.0)
            y = np.where(buys, rng.lognormal(np.log(110.0) - 0.36, 0.85, count), 0.0)
            n[arm, s], sums[arm, s], squares[arm, s] = count, y.sum(), (y ** 2).sum()
            if arm == 0:
                control.append(y)
    weights = np.asarray(users, float)
    truth = (weights * rate * factor).sum() / (weights * rate).sum() - 1
    stats = mean_stats(["control", "email"], [f"s{i}" for i in range(segments)], n,
                       {"sum": sums, "sumsq": squares}, "spend")
    return stats, np.concatenate(control), truth


def spend(seeds: int) -> None:
    """Simulated e-mail spend in 9 segments: the control's posterior against its observed mean, the overall lift's
    90% interval against the truth, diagnostics."""
    metric = Metric(name="spend", family="mean", column="spend")
    offs, covered, passed = [], 0, 0
    for seed in range(seeds):
        stats, control, truth = _spend(np.random.default_rng(seed))
        result = fit(stats, metric, SAMPLER)
        overall = result.overall_mean
        standard_error = control.std(ddof=1) / np.sqrt(len(control))
        offs.append((float(overall.isel(arm=0).mean()) - control.mean()) / standard_error)
        low, high = hdi((overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel(), 0.9)
        covered += low <= truth <= high
        passed += result.diagnostics.passed
        print(f"seed {seed}: control {offs[-1]:+.2f} SE from observed, lift {truth:+.1%} in [{low:+.1%}, {high:+.1%}], "
              f"{result.diagnostics.summary()}", flush=True)
    print(f"control off by {np.mean(offs):+.2f} SE on average (MC se {np.std(offs) / np.sqrt(seeds):.2f}), at most "
          f"{np.max(np.abs(offs)):.2f}; 90% intervals cover the truth in {covered} of {seeds}; "
          f"fits passing {passed} of {seeds}")


def spreads(experiments: int) -> None:
    """Misspecified spreads: 6 segments of normal values, every cell its own sd (log sd spread 0.6), arms 1:4 on
    average, the effect 0.1 in every segment; the overall effect's 90% interval against the truth."""
    metric = Metric(name="y", family="mean", column="y")
    sampler = SamplerSettings(draws=1000, tune=1000, chains=2, seed=1)
    covered = passed = 0
    for seed in range(experiments):
        rng = np.random.default_rng(100 + seed)
        segments = 6
        users = np.stack([rng.integers(100, 800, segments), rng.integers(400, 3200, segments)])
        sd = np.exp(rng.normal(0, 0.6, (2, segments)))
        mean = np.stack([rng.normal(5, 1, segments)] * 2)
        mean[1] += 0.1
        sums, squares = np.zeros((2, segments)), np.zeros((2, segments))
        for arm in range(2):
            for s in range(segments):
                y = rng.normal(mean[arm, s], sd[arm, s], users[arm, s])
                sums[arm, s], squares[arm, s] = y.sum(), (y ** 2).sum()
        truth = (users.sum(0) / users.sum() * (mean[1] - mean[0])).sum()
        stats = mean_stats(["control", "treatment"], [f"s{i}" for i in range(segments)], users,
                           {"sum": sums, "sumsq": squares}, "y")
        result = fit(stats, metric, sampler)
        overall = result.overall_mean
        low, high = hdi((overall.isel(arm=1) - overall.isel(arm=0)).values.ravel(), 0.9)
        covered += low <= truth <= high
        passed += result.diagnostics.passed
    print(f"90% intervals cover the truth in {covered} of {experiments} (MC se {np.sqrt(0.09 / experiments):.0%}); "
          f"fits passing {passed} of {experiments}")


def hillstrom() -> pd.DataFrame:
    frame = pd.read_csv(ROOT / "examples" / "data" / "hillstrom_womens.csv")
    frame["arm"] = np.where(frame["segment"] == "No E-Mail", "control", "email")
    frame["band"] = frame["history_segment"].str[:1]
    frame["user"] = np.arange(len(frame))
    return frame


def _invariance(frame: pd.DataFrame, spec_for, groupings: list[list[str]]) -> None:
    """Each metric's overall lift and control mean with no segments and with each grouping: the lift's move in
    posterior sds of the unsegmented fit, the control's posterior mean against its observed mean and against the
    unsegmented fit's (a sceptical effect prior moves the control from its observed mean with or without segments:
    the second is what segmenting did), in SEs."""
    reference = {}
    print("| segments | metric | overall lift (sd) | moved, posterior sds | control - observed (SE) "
          "| control - unsegmented (SE) | fit |")
    print("|---|---|---|---|---|---|---|")
    for by in groupings:
        spec = spec_for(by)
        control = frame[frame[spec.arm_column] == spec.control.name]
        stats = aggregate(spec, frame)
        for metric in spec.metrics:
            values = control[metric.column].astype(float)
            result = fit(stats[metric.name], metric, SAMPLER)
            overall = result.overall_mean
            lift = (overall.isel(arm=1) / overall.isel(arm=0) - 1).values.ravel()
            standard_error = values.std() / np.sqrt(len(values))
            control_mean = float(overall.isel(arm=0).mean())
            reference.setdefault(metric.name, (lift.mean(), lift.std(), control_mean))
            moved = (lift.mean() - reference[metric.name][0]) / reference[metric.name][1]
            off = (control_mean - values.mean()) / standard_error
            shifted = (control_mean - reference[metric.name][2]) / standard_error
            label = " x ".join(by) or "none"
            count = stats[metric.name].sizes["segment"]
            print(f"| {label} ({count}) | {metric.name} | {lift.mean():+.1%} ({lift.std():.1%}) | {moved:+.2f} | "
                  f"{off:+.2f} | {shifted:+.2f} | {result.diagnostics.summary().split(' - ')[-1]} |", flush=True)


SEGMENT_SOURCES = ("hillstrom", "push", "cookie_cats")


def segments(sources: tuple[str, ...] = SEGMENT_SOURCES) -> None:
    if "hillstrom" in sources:
        _hillstrom_segments()
    if "push" in sources:
        _push_segments()
    if "cookie_cats" in sources:
        _cookie_cats_segments()


def _hillstrom_segments() -> None:
    frame = hillstrom()

    def spec_for(by):
        return parse_spec({"name": "hillstrom", "arm_column": "arm", "unit_column": "user", "segments": by,
                           "arms": [{"name": "control", "control": True}, {"name": "email"}],
                           "metrics": [{"name": "conversion", "family": "conversion", "column": "conversion"},
                                       {"name": "spend", "family": "mean", "column": "spend"}]})

    _invariance(frame, spec_for, [[], ["zip_code"], ["channel"], ["zip_code", "channel"], ["band"]])
    print()


def _push_segments() -> None:
    """The push example (generated, seed 1): its own segments, one at a time and together; then the same with the
    guardrail's effect prior at the primaries' default, 0.5 (its sceptical 0.1 pulls the arms together with or
    without segments)."""
    import yaml

    document = yaml.safe_load((ROOT / "examples" / "push_notification" / "spec.yaml").read_text())
    for key in ("received_column", "compliance"):
        document.pop(key, None)
    frame = _generator("push_notification")(seed=1)
    groupings = [[], ["tenure"], ["region"], ["tenure", "region"]]
    _invariance(frame, lambda by: parse_spec({**document, "segments": by}), groupings)
    widened = {**document, "metrics": [{**m, "prior": {"effect_sd": 0.5}} if m.get("role") == "guardrail" else m
                                       for m in document["metrics"]]}
    print()
    _invariance(frame, lambda by: parse_spec({**widened, "segments": by}), groupings)
    print()


def _cookie_cats_segments() -> None:
    """Cookie Cats (examples/data) has no pre-treatment column, so its segments are buckets of the user id (3, 7
    and 9): a random partition, across which nothing should move."""
    import yaml

    frame = pd.read_csv(ROOT / "examples" / "data" / "cookie_cats.csv")
    for count in (3, 7, 9):
        frame[f"bucket_{count}"] = "b" + (frame["userid"] % count).astype(str)
    document = yaml.safe_load((ROOT / "examples" / "cookie_cats" / "spec.yaml").read_text())
    _invariance(frame, lambda by: parse_spec({**document, "segments": by}),
                [[], ["bucket_3"], ["bucket_7"], ["bucket_9"]])


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
    parser.add_argument("part", choices=("corpus", "asos", "robust", "segments", "small", "spend", "spreads"))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--experiments", type=int, default=None, help="robust: 100 by default; spreads: 60")
    parser.add_argument("--first-seed", type=int, default=None,
                        help="corpus and small: seeds from this one on (by default corpus from 1, small from 0)")
    parser.add_argument("--sources", nargs="+", choices=SEGMENT_SOURCES, default=SEGMENT_SOURCES,
                        help="segments: these data sets only")
    parser.add_argument("--examples", nargs="+", choices=SOURCES, default=SOURCES,
                        help="corpus: these sources only (generated examples, real-data examples, asos)")
    args = parser.parse_args()
    if args.part == "corpus":
        corpus(args.seeds or 5, tuple(args.examples), 1 if args.first_seed is None else args.first_seed)
    elif args.part == "asos":
        _failures({"asos": asos_fits()})
    elif args.part == "robust":
        robust(args.experiments or 100)
    elif args.part == "segments":
        segments(tuple(args.sources))
    elif args.part == "spend":
        spend(args.seeds or 40)
    elif args.part == "spreads":
        spreads(args.experiments or 60)
    else:
        small(args.seeds or 20, 0 if args.first_seed is None else args.first_seed)


if __name__ == "__main__":
    main()
