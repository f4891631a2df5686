"""Complier effects (CACE): interval coverage, agreement with two-stage least squares, and cost.
Figures go to RESULTS.md ("complier effects").

    .venv/bin/python benchmarks/compliance.py coverage [--experiments 2000]
    .venv/bin/python benchmarks/compliance.py 2sls
    .venv/bin/python benchmarks/compliance.py speed

coverage: the 90% interval of the CACE against the true one over simulated experiments (3,000 users per arm,
compliance 60%, compliers' baseline above never-takers'; conversions +3 points, and heavy-tailed negative-binomial
counts of shape 0.7, +0.3), and the same for low compliance (15%). The simulation, the strata draws of per-user
rows and 2SLS are the tests' (``tests/compliance/test_strata.py``), loaded from there.
2sls: per-user data of 10,000 users per arm with compliance 30%, 60% and 90%: the posterior mean's distance from
the 2SLS estimate (statsmodels) in posterior sds, and the 90% interval's width over the 2SLS one (robust HC1 errors).
speed: the push example (200,000 users, 3 metrics, 6 segments): the received split's aggregation and the strata
draws, against the analysis without them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.intervals import hdi  # noqa: E402

REFERENCE = ROOT / "tests" / "compliance" / "test_strata.py"


def _reference():
    """The tests' simulation, strata draws and two-stage least squares (one implementation of each)."""
    import importlib.util

    module_spec = importlib.util.spec_from_file_location("compliance_reference", REFERENCE)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def coverage(experiments: int) -> None:
    reference = _reference()
    for compliance in (0.6, 0.15):
        for binary in (True, False):
            rng = np.random.default_rng(99 + binary)
            truth = 0.03 if binary else 0.3
            covered, widths = 0, []
            for i in range(experiments):
                z, d, y = reference.simulate(rng, 3_000, compliance, binary=binary, effect=truth)
                found = reference.draws_of(z, d, y, binary=binary, size=2_000, seed=i)
                low, high = hdi(found.cace_abs, 0.9)
                covered += low <= truth <= high
                widths.append(high - low)
            rate = covered / experiments
            print(f"compliance {compliance:.0%}, {'conversion' if binary else 'NB counts'}: 90% interval covers the "
                  f"true CACE in {rate:.1%} (+/- {np.sqrt(rate * (1 - rate) / experiments):.1%}) of {experiments}; "
                  f"median width {np.median(widths):.4f}")


def two_stage() -> None:
    reference = _reference()
    for binary in (True, False):
        for compliance in (0.3, 0.6, 0.9):
            rng = np.random.default_rng(int(compliance * 100) + binary)
            z, d, y = reference.simulate(rng, 10_000, compliance, binary=binary, effect=0.03 if binary else 0.3)
            estimate, se = reference.two_stage_least_squares(z, d, y)
            found = reference.draws_of(z, d, y, binary=binary, size=40_000)
            low, high = hdi(found.cace_abs, 0.9)
            sd = float(np.std(found.cace_abs))
            print(f"{'conversion' if binary else 'NB counts'}, compliance {compliance:.0%}: 2SLS {estimate:+.4f} "
                  f"(se {se:.4f}), posterior mean {np.mean(found.cace_abs):+.4f} (sd {sd:.4f}): "
                  f"{(np.mean(found.cace_abs) - estimate) / sd:+.3f} sd apart; width ratio "
                  f"{(high - low) / (2 * reference.Z90 * se):.3f}")


def speed() -> None:
    import importlib.util

    from bayes_ab.aggregation import aggregate
    from bayes_ab.analysis import analyze_stats
    from bayes_ab.compliance.statistics import received_statistics
    from bayes_ab.spec import SamplerSettings, load_spec

    example = ROOT / "examples" / "push_notification"
    module_spec = importlib.util.spec_from_file_location("push_generate", example / "generate.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    data = module.generate()
    spec = load_spec(example / "spec.yaml")
    sampler = SamplerSettings(draws=1000, chains=4, seed=1, backend="conjugate")
    start = time.perf_counter()
    stats = aggregate(spec, data)
    middle = time.perf_counter()
    received = received_statistics(spec, data)
    split = time.perf_counter()
    analyze_stats(replace(spec, received_column=None), stats, sampler=sampler)
    plain = time.perf_counter()
    analyze_stats(spec, stats, sampler=sampler, received=received)
    end = time.perf_counter()
    print(f"push example, 200,000 users: aggregation {middle - start:.2f} s, received split {split - middle:.2f} s; "
          f"analysis (conjugate backend) {plain - split:.2f} s without complier effects, {end - plain:.2f} s with")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("coverage", "2sls", "speed"))
    parser.add_argument("--experiments", type=int, default=2_000)
    args = parser.parse_args()
    {"coverage": lambda: coverage(args.experiments), "2sls": two_stage, "speed": speed}[args.what]()


if __name__ == "__main__":
    main()
