"""Planning a switchback: the design's information computed on its schedules, and the predicted power against
the switchback model on simulated cells (daily cycle, unit levels, carry-over)."""

from __future__ import annotations

import math

import pytest

from bayes_ab.errors import SpecError
from bayes_ab.planning.switchback import (design_information, kept_share, plan_switchback, simulated_power,
                                          switchback_power)


def test_information_of_a_balanced_design_is_about_a_quarter_per_cell():
    cells, information = design_information(8, 96, 0)
    assert cells == 8 * 96
    # s (1 - s) per cell, less what the unit effects take (1 / periods of it) -- the period effects take nothing
    assert information == pytest.approx(cells * 0.25 * (1 - 1 / 96), rel=0.02)
    kept, _ = design_information(8, 96, 1)
    assert kept / cells == pytest.approx(kept_share(1), abs=0.05)


@pytest.mark.parametrize("units, periods, lift, washout, carry", [(8, 48, 0.02, 0, 0.0), (8, 48, 0.02, 1, 0.5),
                                                                  (4, 96, 0.03, 1, 0.5)])
def test_predicted_power_within_five_points_of_simulated_switchbacks(units, periods, lift, washout, carry):
    predicted = switchback_power(1.0, 0.05, lift, units, periods, 0.99, washout)
    simulated = simulated_power(1.0, 0.05, lift, units, periods, 0.99, 400, washout=washout, carry=carry, seed=7)
    se = math.sqrt(max(simulated * (1 - simulated), 0.01) / 400)
    assert abs(predicted - simulated) <= 0.05 + 2 * se, (predicted, simulated)


def test_periods_needed_reach_the_target_and_bad_plans_are_refused():
    plan = plan_switchback("latency", 300.0, 15.0, 0.01, 8, 48, 0.99, washout=1)
    assert switchback_power(300.0, 15.0, 0.01, 8, plan.periods_needed, 0.99, 1) >= 0.8
    assert switchback_power(300.0, 15.0, 0.01, 8, plan.periods_needed - 1, 0.99, 1) < 0.8
    assert "needed for 80% power with 8 units" in plan.text()
    for units, periods in ((1, 48), (8, 1)):
        with pytest.raises(SpecError):
            plan_switchback("latency", 300.0, 15.0, 0.01, units, periods, 0.99)
