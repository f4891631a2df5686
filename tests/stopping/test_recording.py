"""A recorded run stands for the real rule under any thresholds: on the same simulated worlds, the outcome
computed from the record equals the default rule's own outcome, on the same day, for thresholds drawn at
random -- the calibration's search rests on this."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bayes_ab.stopping import compare_rules
from bayes_ab.stopping.recording import CALIBRATED, outcomes, record

from conftest import make_spec

RAMP = [{"percent": 5, "min_days": 1, "min_users": 500}, {"percent": 50, "min_days": 2, "min_users": 4000},
        {"percent": 100}]


def guarded_spec(experiments: int = 16, days: int = 8, **decision):
    return make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"},
                 {"name": "trades", "family": "count", "column": "trades", "role": "primary"},
                 {"name": "optout", "family": "conversion", "column": "optout", "role": "guardrail",
                  "direction": "decrease", "margin": 0.1},
                 {"name": "churn", "family": "retention", "column": "churn", "observed_column": "obs",
                  "horizon": 3, "max_day": 5, "role": "guardrail", "margin": 0.05}],
        ramp=RAMP, decision=decision,
        plan={"daily_users": 6000, "days": days, "effect": 0.08, "experiments": experiments,
              "baseline": {"conv": 0.12, "trades": {"mean": 1.5, "dispersion": 0.8}, "optout": 0.02,
                           "churn": 0.6}})


def test_the_record_gives_the_real_rules_outcome_and_day_under_random_thresholds():
    rng = np.random.default_rng(11)
    base = guarded_spec()
    recorded = record(base, seed=4)
    assert set(recorded) == {"no effect", "planned effect", "harmful", "guardrail breach: optout",
                             "guardrail breach: churn"}
    assert all(r.judged == 4 for r in recorded.values())
    seen = set()
    for trial in range(6):
        # loose thresholds too, so that every kind of ending happens somewhere
        values = {"ship_beat": 1 - 10 ** rng.uniform(-3, -0.5), "harm": 1 - 10 ** rng.uniform(-2.5, -0.4),
                  "severe_harm": 1 - 10 ** rng.uniform(-1.5, -0.2), "guardrails_safe": 1 - 10 ** rng.uniform(-2, -0.5)}
        spec = replace(base, decision=replace(base.decision, **values))
        real = compare_rules(spec, rules=("default",), seed=4).rule("default")
        for scenario in real.scenarios:
            computed = outcomes(recorded[scenario.name], spec.decision)
            assert list(computed.outcome) == list(scenario.outcomes), (trial, scenario.name, values)
            decided = computed.outcome != "undecided"
            assert list(computed.day[decided]) == list(scenario.stop_days), (trial, scenario.name)
            seen.update(scenario.outcomes)
    assert {"ship", "rollback", "undecided"} <= seen


def test_only_the_calibrated_thresholds_are_read_from_a_record():
    assert set(CALIBRATED) == {"ship_beat", "harm", "severe_harm", "guardrails_safe"}
    with pytest.raises(Exception, match="calibration needs the deciding stage to ship to 100%"):
        record(guarded_spec(max_power_stage=5), seed=1)
