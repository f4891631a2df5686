"""Operating characteristics of the novelty analysis on panels the model did not generate (heavy-tailed
users, a market holiday in both arms): a constant effect is rarely flagged as novelty, and the long-run
lift's interval covers the truth when the lift decays."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bayes_ab.novelty.effects import analyze_novelty
from bayes_ab.aggregation.panel import panel_statistics
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, example_module

pytestmark = pytest.mark.slow
SPEC = EXAMPLES / "push_notification" / "novelty.yaml"


def generator():
    return example_module("push_notification/panel.py")


def run(experiments: int, long_run: float, early: float, first_seed: int):
    make, spec = generator(), load_spec(SPEC)
    spec = replace(spec, metrics=(spec.metric("trades"),))      # one metric: one query per experiment
    found = []
    for i in range(experiments):
        rows = make.panel(n_users=8000, seed=first_seed + i, long_run=long_run, early=early)
        stats = panel_statistics(spec, rows)["trades"]
        effects, _ = analyze_novelty(stats, spec.metric("trades"), 0.9, 4000, i)
        found.append(effects.arm("push"))
    return found


def test_a_constant_effect_is_flagged_as_novelty_in_at_most_10_percent_of_200_experiments():
    found = run(200, long_run=0.03, early=0.0, first_seed=1000)
    flagged = np.mean([f.likely == "novelty" for f in found])
    covered = np.mean([f.long_run_low <= 0.03 <= f.long_run_high for f in found])
    print(f"constant +3%: novelty flagged {flagged:.1%}, primacy {np.mean([f.likely == 'primacy' for f in found]):.1%}, "
          f"long-run 90% interval covers {covered:.1%}")
    assert flagged <= 0.10
    # 90% intervals over 200 experiments: a binomial standard error of 2.1 points; three of them below 90%
    # (the model is conservative under a constant effect: 98% measured, see benchmarks/RESULTS.md)
    assert covered >= 0.90 - 3 * np.sqrt(0.9 * 0.1 / 200)


def test_a_decaying_effect_is_found_and_its_long_run_lift_covered():
    make = generator()
    found = run(60, long_run=make.LONG_RUN, early=make.EARLY, first_seed=5000)
    flagged = np.mean([f.likely == "novelty" for f in found])
    covered = np.mean([f.long_run_low <= make.LONG_RUN <= f.long_run_high for f in found])
    print(f"+8% -> +1.5%: novelty flagged {flagged:.1%}, long-run 90% interval covers {covered:.1%}")
    # 60 experiments: a binomial standard error of 3.9 points; 2.5 of them below 90% is 80.3%
    assert covered >= 0.90 - 2.5 * np.sqrt(0.9 * 0.1 / 60)
    assert flagged >= 0.5
