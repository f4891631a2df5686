"""Calibration per plan: the least strict thresholds that keep the plan's error rates on its simulations, the
decision block a user pastes, and the rates out of sample (slow)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import yaml

from bayes_ab.decision import recommend
from bayes_ab.planning.calibration import SAFETY_SE, TARGET, _thresholds, calibrate
from bayes_ab.spec import parse_spec
from bayes_ab.stopping.recording import outcomes, record

from conftest import make_spec


def plan_spec(experiments: int = 60, days: int = 10, **decision):
    return make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"},
                 {"name": "optout", "family": "conversion", "column": "optout", "role": "guardrail",
                  "direction": "decrease", "margin": 0.1}],
        ramp=[{"percent": 10, "min_days": 1, "min_users": 1000}, {"percent": 50, "min_days": 2, "min_users": 8000},
              {"percent": 100}],
        decision=decision,
        plan={"daily_users": 8000, "days": days, "effect": 0.08, "experiments": experiments,
              "baseline": {"conv": 0.1, "optout": 0.02}})


@pytest.fixture(scope="module")
def calibrated():
    spec = plan_spec()
    return spec, calibrate(spec, seed=2), record(spec, seed=2)


def test_the_chosen_thresholds_keep_every_rate_within_target_on_the_plans_simulations(calibrated):
    spec, found, runs = calibrated
    t = found.thresholds
    for key in ("false_ship", "false_rollback", "breach_ship:optout"):      # one standard error inside the target
        assert found.rates[key] + SAFETY_SE * found.standard_errors[key] <= TARGET + 1e-12, key
    assert found.met
    # the reported rates are those of the thresholds on the recorded experiments
    assert outcomes(runs["no effect"], t).rate("ship") == found.rates["false_ship"]
    assert outcomes(runs["planned effect"], t).rate("ship") == found.rates["power"]
    assert found.rates["power"] > 0.5 and found.ship_day <= 10


def test_each_threshold_is_the_least_strict_its_target_allows(calibrated):
    """Loosening the ship tail or the rollback tails by a fifth (beyond the rounding) breaks a target -- unless
    the search stopped at its loose end."""
    from bayes_ab.planning.calibration import BOUNDS

    spec, found, runs = calibrated
    t = found.thresholds
    tails = {"ship": 1 - t.ship_beat, "rollback": (1 - t.harm) / 0.01, "safe": 1 - t.guardrails_safe}
    for key, outcome in (("ship", "ship"), ("rollback", "rollback")):
        if tails[key] >= 0.9 * BOUNDS[key][1]:
            continue
        looser = outcomes(runs["no effect"], _thresholds(spec.decision, {**tails, key: tails[key] * 1.25}))
        assert looser.rate(outcome) + SAFETY_SE * looser.standard_error(outcome) > TARGET, key


def test_the_decision_block_is_a_spec_block_and_the_rule_names_it(calibrated):
    spec, found, _ = calibrated
    block = yaml.safe_load(found.decision_block())["decision"]
    assert set(block) == {"ship_beat", "harm", "severe_harm", "guardrails_safe", "calibration"}
    assert block["calibration"].startswith("bayes-ab plan --calibrate, ") and "60 experiments per scenario" in block[
        "calibration"]
    raw = {"name": "c", "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
           "metrics": [{"name": "conv", "family": "conversion", "column": "conv"}], "decision": block}
    pasted = parse_spec(raw)
    assert pasted.decision.ship_beat == pytest.approx(found.thresholds.ship_beat)
    assert math.isclose(1 - pasted.decision.ship_beat, round(1 - pasted.decision.ship_beat, 8))
    import pandas as pd

    from bayes_ab.analysis import analyze
    from bayes_ab.spec import SamplerSettings

    rows = pd.DataFrame({"arm": ["control", "treatment"], "users": [5000, 5000], "conv": [500, 520]})
    result = analyze(pasted, rows, aggregated=True, sampler=SamplerSettings(draws=500, chains=2, backend="conjugate"))
    text = recommend(result, stage=50, days=7).text()
    assert "thresholds: calibrated for this plan (bayes-ab plan --calibrate, " in text
    default = analyze(replace(pasted, decision=type(pasted.decision)()), rows, aggregated=True,
                      sampler=SamplerSettings(draws=500, chains=2, backend="conjugate"))
    assert "thresholds: the defaults, not calibrated for this plan" in recommend(default, 50, 7).text()


@pytest.mark.slow
def test_calibrated_thresholds_hold_on_fresh_experiments_with_many_looks():
    """A plan with 30 daily looks at the deciding stage: calibrated on one set of simulated experiments, the
    thresholds keep false ships and false rollbacks near 5% on another (within 2.5 binomial standard errors
    of 300 experiments), where the defaults ship more."""
    spec = plan_spec(experiments=300, days=32)
    found = calibrate(spec, seed=0, workers=2)
    fresh = record(spec, seed=1, workers=2, scenario_names=("no effect", "planned effect"))
    allowed = TARGET + 2.5 * np.sqrt(TARGET * (1 - TARGET) / 300)
    null = outcomes(fresh["no effect"], found.thresholds)
    assert null.rate("ship") <= allowed and null.rate("rollback") <= allowed, found.text()
    assert outcomes(fresh["planned effect"], found.thresholds).rate("ship") >= 0.8
