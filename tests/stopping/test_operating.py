"""Operating characteristics: reproducible simulations, and what peeking daily costs."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ab.errors import SpecError
from bayes_ab.stopping import load_operating_characteristics, simulate

from conftest import make_spec


SHORT_RAMP = [{"percent": 10, "min_days": 1, "min_users": 1000}, {"percent": 50, "min_days": 3, "min_users": 10000},
              {"percent": 100}]


def spec(experiments=40, days=14, ramp=None, **plan):
    return make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}],
        **({"ramp": ramp} if ramp else {}),
        plan={"daily_users": 20_000, "days": days, "effect": 0.05, "baseline": {"conv": 0.1},
              "experiments": experiments, **plan})


def test_simulation_is_reproducible_and_independent_of_workers(tmp_path):
    one = simulate(spec(experiments=12, days=8), seed=3)
    two = simulate(spec(experiments=12, days=8), seed=3, workers=2)
    assert one.scenarios == two.scenarios
    for s in one.scenarios:
        assert abs(sum(s.rates.values()) - 1) < 1e-12 and s.experiments == 12
    assert load_operating_characteristics(one.save(tmp_path)).scenarios == one.scenarios


def test_plan_errors_name_the_field():
    with pytest.raises(SpecError, match=r"plan.baseline.conv: the baseline rate must be in \(0, 1\)"):
        spec(baseline={"conv": 1.5})
    with pytest.raises(SpecError, match="plan.daily_users: must be an integer >= 1"):
        spec(daily_users=0)
    with pytest.raises(SpecError, match="plan.effect: must be a positive"):
        spec(effect=0)
    with pytest.raises(SpecError, match="plan: is required to simulate"):
        simulate(make_spec())


@pytest.mark.slow
def test_daily_peeking_with_a_naive_rule_inflates_false_ships_and_the_default_rule_stays_in_bound():
    """14 daily looks; a short ramp reaches the shipping stage by day 5, so the ship check is repeated ~10 times."""
    runs = 300
    naive = simulate(spec(experiments=runs, ramp=SHORT_RAMP), rule="naive", seed=1, workers=2)
    se = naive.scenario("no effect").standard_error("ship")
    assert naive.false_ship - 3 * se > 0.10, naive.text()          # far above the nominal 5%
    default = simulate(spec(experiments=runs, ramp=SHORT_RAMP), seed=1, workers=2)
    bound = 1 - default_spec_ship_beat()
    assert default.false_ship < bound + 2 * np.sqrt(bound * (1 - bound) / runs), default.text()
    assert default.power > 0.5, default.text()


def default_spec_ship_beat() -> float:
    return spec().decision.ship_beat
