"""Decisions that hold on any plan (issue 32): calibration per plan, and the default rule across many guardrails.

    python benchmarks/calibration.py                      # everything (about 90 minutes on 2 cores)
    python benchmarks/calibration.py --only push --experiments 1000

For each example plan: ``calibrate`` on seed 0 (timed), then the chosen thresholds and the defaults are judged
on *fresh* simulated experiments (seed 1, recorded the same way), so the rates below are out of sample. For the
synthetic plans (one primary, 1 / 4 / 10 identical guardrails): the default thresholds' false-rollback and
false-ship rates, and a breach of the first guardrail (the guardrails are alike, so it stands for each).
Rates are shares of ``--experiments`` experiments per scenario, with binomial standard errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bayes_ab.planning.calibration import calibrate  # noqa: E402
from bayes_ab.spec import load_spec, parse_spec  # noqa: E402
from bayes_ab.stopping.recording import outcomes, record  # noqa: E402

EXAMPLES = {"push": ROOT / "examples" / "push_notification" / "spec.yaml",
            "group_stories": ROOT / "examples" / "group_stories" / "spec.yaml",
            "checkout": ROOT / "examples" / "planning" / "checkout_button.yaml"}


def line(name: str, result) -> str:
    return "  ".join(f"{o} {result.rate(o):6.1%} (+/- {result.standard_error(o):.1%})"
                     for o in ("ship", "rollback")) + f"  median ship day {result.median_day('ship'):g}  [{name}]"


def example(name: str, experiments: int, workers: int) -> None:
    spec = load_spec(EXAMPLES[name])
    # the spec's own decision: block (a calibration stored in it) is left out: calibrate from the defaults
    spec = replace(spec, decision=replace(type(spec.decision)(), max_power_stage=spec.decision.max_power_stage))
    start = time.perf_counter()
    found = calibrate(spec, experiments=experiments, seed=0, workers=workers)
    took = time.perf_counter() - start
    print(f"== {name}: calibrated on {experiments:,} experiments per scenario in {took:.0f} s")
    print(found.text())
    fresh = record(spec, experiments=experiments, seed=1, workers=workers)
    print(f"-- judged on fresh experiments (seed 1, {experiments:,} per scenario):")
    for scenario, run in fresh.items():
        print(f"   {scenario}")
        print("     calibrated: " + line(scenario, outcomes(run, found.thresholds)))
        print("     defaults:   " + line(scenario, outcomes(run, spec.decision)))
    sys.stdout.flush()


def guardrails(count: int, experiments: int, workers: int, correlation: float) -> None:
    metrics = [{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}]
    metrics += [{"name": f"g{k}", "family": "conversion", "column": f"g{k}", "role": "guardrail",
                 "direction": "decrease", "margin": 0.1} for k in range(1, count + 1)]
    spec = parse_spec({"name": f"guardrails_{count}", "arms": [{"name": "control", "control": True},
                                                                {"name": "treatment"}],
                       "metrics": metrics,
                       "plan": {"daily_users": 20000, "days": 28, "effect": 0.05, "correlation": correlation,
                                "baseline": {"conv": 0.115, **{f"g{k}": 0.02 for k in range(1, count + 1)}}}})
    start = time.perf_counter()
    runs = record(spec, experiments=experiments, seed=0, workers=workers,
                  scenario_names=("no effect", "guardrail breach: g1"))
    print(f"== {count} guardrail(s), correlation {correlation:g}, default thresholds, {experiments:,} experiments "
          f"per scenario ({time.perf_counter() - start:.0f} s)")
    for scenario, run in runs.items():
        print(f"   {scenario:22} " + line(scenario, outcomes(run, spec.decision)))
    sys.stdout.flush()


def segments(experiments: int, count: int = 12) -> None:
    """A/A experiments with ``count`` segments through the real analysis (the pooled model, nutpie): the share
    where some segment is flagged as confidently harmed at the maximum-power stage."""
    import numpy as np
    import pandas as pd

    from bayes_ab.analysis import analyze
    from bayes_ab.decision import recommend
    from bayes_ab.posterior import ModelCache
    from bayes_ab.spec import SamplerSettings

    spec = parse_spec({"name": "segments_aa", "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                       "segments": ["segment"],
                       "metrics": [{"name": "conv", "family": "conversion", "column": "conv"}]})
    cache, rng, flagged = ModelCache(), np.random.default_rng(12), 0
    settings = SamplerSettings(draws=1000, tune=1000, chains=4, seed=5)
    start = time.perf_counter()
    for i in range(experiments):
        users = rng.multinomial(60_000, np.full(2 * count, 1 / (2 * count)))
        rows = pd.DataFrame({"arm": np.repeat(["control", "treatment"], count),
                             "segment": np.tile([f"s{k:02d}" for k in range(count)], 2), "users": users,
                             "conv": rng.binomial(users, 0.1)})
        result = analyze(spec, rows, aggregated=True, sampler=replace(settings, seed=i), cache=cache)
        rec = recommend(result, stage=50, days=7)
        flagged += bool(rec.targeted_segments) or any(r.name == "segments confidently harmed" for r in rec.reasons)
    share = flagged / experiments
    print(f"== A/A with {count} segments (60,000 users, 10% conversion, pooled model): some segment flagged harmed "
          f"in {share:.1%} (+/- {np.sqrt(share * (1 - share) / experiments):.1%}) of {experiments} experiments "
          f"({time.perf_counter() - start:.0f} s)")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[],
                        help="push, group_stories, checkout, guardrails, segments")
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    wanted = args.only or ["push", "checkout", "guardrails", "segments", "group_stories"]
    for name in wanted:
        if name == "segments":
            segments(min(args.experiments, 300))
        elif name == "guardrails":
            for count in (1, 4, 10):
                guardrails(count, args.experiments, args.workers, 0.3)
            guardrails(10, args.experiments, args.workers, 0.0)
        else:
            example(name, args.experiments, args.workers)


if __name__ == "__main__":
    main()
