"""Targeting policies: calibration on known truth, off-policy bias on logs built from Hillstrom's customers, and the
Hillstrom example. Figures go to RESULTS.md ("targeting policies").

    .venv/bin/python benchmarks/targeting.py [--coverage 300] [--logs 200] [--rule 200] [--workers 2]

- coverage: randomised conversion experiments of 6,000 users whose effect depends on the features
  (``bayes_ab.targeting.simulated.policy_experiment``), analysed with the default settings (gradient-boosting
  T-learner, 5 folds); the share of 90% intervals holding the true value of the top-20% and top-50% policies
  (the mean true effect over the users each treats, times their share) and of treating everyone (target 86-94%);
- logs: sends that were *not* randomised to 10,000 of Hillstrom's customers drawn anew each time
  (``sending_logs``: sends favour the customers who visit anyway); the doubly-robust and IPW values of sending to
  everyone and to the sender's top 20%, with the logged propensity and with a cross-fitted model of it, against
  the truth: the mean error in Monte-Carlo standard errors (target: within 1), and the same customers' randomised
  sends estimated by the same code as the reference;
- rule (linear T-learner: the segment policies need no more): how often the rule's targeting step
  (``targeting_better``) turns a rollout into a targeted one, with no
  effect, an effect everywhere, and one segment unaffected or harmed (target: <= 5% where treating everyone is
  as good; the share of runs that leave out exactly the harmed segment where it is harmed);
- hillstrom: the example's policy tables (examples/hillstrom_targeting).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.spec import load_spec, parse_spec  # noqa: E402
from bayes_ab.targeting.experiment import analyze_targeting  # noqa: E402
from bayes_ab.targeting.logs import LogColumns, evaluate_logged, labelled_decisions  # noqa: E402
from bayes_ab.targeting.simulated import policy_experiment, segmented_experiment, sending_logs  # noqa: E402
from bayes_ab.targeting.value import segment_rollout  # noqa: E402

SPEC = parse_spec({"name": "targeting", "arm_column": "arm",
                   "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                   "metrics": [{"name": "converted", "family": "conversion", "column": "converted"}],
                   "targeting": {"features": ["x1", "x2", "x3", "x4"], "top": [0.2, 0.5]}})
FEATURES = ("history", "recency", "womens", "newbie", "score")
POLICIES = ("top_0.2", "top_0.5", "treat_all")
HILLSTROM = ROOT / "examples" / "data" / "hillstrom_womens.csv"


def one_coverage(seed: int) -> dict:
    frame, tau = policy_experiment(6_000, seed)
    table = analyze_targeting(SPEC, frame, draws=2_000).tables[0]
    out = {}
    for name in POLICIES:
        p = table.policy(name)
        truth = float(np.mean(table.assignments[name] * tau))
        out[name] = (p.low <= truth <= p.high, p.value - truth, p.high - p.low, p.difference - truth)
    return out


RULE_SPEC = parse_spec({"name": "rule", "arm_column": "arm", "segments": ["seg"],
                        "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                        "metrics": [{"name": "converted", "family": "conversion", "column": "converted"}],
                        "targeting": {"features": ["noise", "seg"], "helps": [0.8, 0.95], "learner": "linear"}})
SHARES = {"a": 0.4, "b": 0.4, "c": 0.2}
SCENARIOS = {"no effect": {"a": 0.0, "b": 0.0, "c": 0.0},
             "+2 points everywhere": {"a": 0.02, "b": 0.02, "c": 0.02},
             "+3 points, segment c unaffected": {"a": 0.03, "b": 0.03, "c": 0.0},
             "+3 points, segment c harmed -3": {"a": 0.03, "b": 0.03, "c": -0.03},
             "+3 points, segment c harmed -1": {"a": 0.03, "b": 0.03, "c": -0.01}}


def one_rule(job: tuple[str, int, int]) -> tuple[str, int, bool, tuple[str, ...]]:
    scenario, n, seed = job
    frame = segmented_experiment(n, seed, SCENARIOS[scenario], SHARES)
    table = analyze_targeting(RULE_SPEC, frame, draws=2_000).tables[0]
    rollout = segment_rollout(table, RULE_SPEC.decision.targeting_better)
    return scenario, n, rollout is not None, () if rollout is None else rollout.excluded


def rule(runs: int, workers: int) -> None:
    """How often the rule's targeting step turns a rollout into a targeted one (P(a segment policy beats treating
    everyone) >= targeting_better), and which segments it leaves out."""
    started = time.perf_counter()
    jobs = [(s, n, seed) for s in SCENARIOS for n in (20_000, 80_000) for seed in range(runs)]
    with _pool(workers) as pool:
        results = pool.map(one_rule, jobs)
    print(f"## rule: the targeted rollout from segment policies, {runs} experiments per row, segments a/b/c of "
          f"40/40/20%, 30% base rate, threshold {RULE_SPEC.decision.targeting_better:g} "
          f"({time.perf_counter() - started:.0f} s)")
    print("scenario | users | targeted rollout | leaves out exactly c")
    for scenario in SCENARIOS:
        for n in (20_000, 80_000):
            rows = [r for r in results if r[0] == scenario and r[1] == n]
            fired = np.array([r[2] for r in rows], float)
            exact = np.array([r[3] == ("c",) for r in rows], float)
            print(f"{scenario} | {n:,} | {100 * fired.mean():.1f}% | {100 * exact.mean():.1f}%")


def one_log(seed: int) -> dict:
    customers = pd.read_csv(HILLSTROM).sample(10_000, random_state=seed).reset_index(drop=True)
    out = {}
    for label, randomised, logged in (("logged", False, True), ("modelled", False, False),
                                      ("randomised", True, True)):
        logs = sending_logs(customers, seed, randomised=randomised)
        rows, _ = labelled_decisions(logs.decisions, logs.features, logs.outcomes, FEATURES, window_days=14,
                                     columns=LogColumns(propensity="propensity" if logged else None),
                                     observed_until=pd.Timestamp("2026-04-01"))
        result = evaluate_logged(rows, FEATURES, score="score", top=(0.2,), seed=seed, draws=1_000)
        for name in ("treat_all", "score_top_0.2"):
            truth = float(np.mean(result.doubly_robust.assignments[name] * logs.effect))
            for estimator, table in (("dr", result.doubly_robust), ("ipw", result.ipw)):
                p = table.policy(name)
                out[(label, estimator, name)] = (p.value - truth, p.low <= truth <= p.high)
        naive = rows.loc[rows["__sent"] == 1, "__outcome"].mean() - rows.loc[rows["__sent"] == 0, "__outcome"].mean()
        out[(label, "naive", "treat_all")] = (naive - logs.effect.mean(), False)
    return out


def _one_thread() -> None:
    """A worker's models use one thread: two workers each spreading gradient boosting over both cores slow each
    other down tenfold."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(1)


def _pool(workers: int):
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_one_thread)


def coverage(runs: int, workers: int) -> None:
    started = time.perf_counter()
    with _pool(workers) as pool:
        results = pool.map(one_coverage, range(runs))
    print(f"## coverage: {runs} experiments of 6,000 users, gbm T-learner, 5 folds "
          f"({time.perf_counter() - started:.0f} s)")
    print("policy | 90% interval covers | binomial se | mean error (x100) | MC se | mean width (x100) | plain error")
    for name in POLICIES:
        cov = np.array([r[name][0] for r in results], float)
        err = np.array([r[name][1] for r in results])
        width = np.array([r[name][2] for r in results])
        plain = np.array([r[name][3] for r in results])
        print(f"{name} | {100 * cov.mean():.1f}% | {100 * np.sqrt(cov.mean() * (1 - cov.mean()) / runs):.1f} | "
              f"{100 * err.mean():+.3f} | {100 * err.std(ddof=1) / np.sqrt(runs):.3f} | {100 * width.mean():.2f} | "
              f"{100 * plain.mean():+.3f}")


def logs(runs: int, workers: int) -> None:
    started = time.perf_counter()
    with _pool(workers) as pool:
        results = pool.map(one_log, range(runs))
    print(f"## logs: {runs} logs of 10,000 Hillstrom customers ({time.perf_counter() - started:.0f} s)")
    print("sends | estimator | policy | mean error (x100) | MC se (x100) | error / se | 90% covers")
    for key in results[0]:
        err = np.array([r[key][0] for r in results])
        cov = np.array([r[key][1] for r in results], float)
        se = err.std(ddof=1) / np.sqrt(runs)
        print(f"{key[0]} | {key[1]} | {key[2]} | {100 * err.mean():+.3f} | {100 * se:.3f} | {err.mean() / se:+.2f} | "
              + ("" if key[1] == "naive" else f"{100 * cov.mean():.1f}%"))


def hillstrom() -> None:
    started = time.perf_counter()
    result = analyze_targeting(load_spec(ROOT / "examples" / "hillstrom_targeting" / "spec.yaml"), HILLSTROM)
    print(f"## hillstrom ({time.perf_counter() - started:.1f} s)")
    print("\n".join(result.lines()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", type=int, default=300)
    parser.add_argument("--logs", type=int, default=200)
    parser.add_argument("--rule", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.coverage:
        coverage(args.coverage, args.workers)
    if args.logs:
        logs(args.logs, args.workers)
    if args.rule:
        rule(args.rule, args.workers)
    hillstrom()


if __name__ == "__main__":
    main()
