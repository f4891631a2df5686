"""Simulated assurance of the decision rule: monotone in traffic and effect, bad input named, and (slow)
in agreement with a direct simulation of the rule on generated per-user data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.decision import TERMINAL_ACTIONS, recommend
from bayes_ab.errors import SpecError
from bayes_ab.planning import plan_experiment, plan_settings
from bayes_ab.planning.assurance import earliest_ship_day
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

RAMP = [{"percent": 20, "min_days": 1, "min_users": 2000}, {"percent": 100}]


def conversion_spec(ramp=RAMP, **extra):
    return make_spec(metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}],
                     ramp=ramp, **extra)


def assurance(spec, runs=80, **settings):
    plan = plan_settings(spec, **{"baseline": {"conv": 0.05}, "days": 8, "experiments": runs, **settings})
    result = plan_experiment(spec, plan, seed=2, workers=2)
    return result, result.assurance(plan.days), result.simulated.scenario("planned effect")


def se(p, n):
    return np.sqrt(max(p * (1 - p), 0.01) / n)


def test_assurance_grows_with_traffic():
    spec = conversion_spec()
    values = [assurance(spec, daily_users=d, effect=0.1)[1] for d in (2_000, 10_000, 50_000)]
    for low, high in zip(values, values[1:]):
        assert low <= high + 2 * np.hypot(se(low, 80), se(high, 80)), values
    assert values[-1] - values[0] > 3 * np.hypot(se(values[0], 80), se(values[-1], 80)), values


def test_assurance_and_power_grow_with_the_effect():
    spec = conversion_spec()
    results = [assurance(spec, daily_users=10_000, effect=e)[0] for e in (0.03, 0.1, 0.3)]
    ships = [r.assurance(8, "planned effect", ("ship",)) for r in results]
    for low, high in zip(ships, ships[1:]):
        assert low <= high + 2 * np.hypot(se(low, 80), se(high, 80)), ships
    assert ships[-1] > 0.9 and ships[0] < 0.6, ships


def test_plan_figures_are_consistent():
    result, _, planned = assurance(conversion_spec(), daily_users=20_000, effect=0.1)
    curve = [result.assurance(d) for d in range(1, 9)]
    assert all(a <= b for a, b in zip(curve, curve[1:]))
    assert curve[-1] == pytest.approx(1 - planned.rates["undecided"])
    assert result.assurance(8, outcomes=("ship",)) == pytest.approx(result.simulated.power)
    decided_mean, restricted = result.expected_days()
    # by their definitions, from the simulated experiments' stopping days (undecided ones count as day 8)
    simulated = result.simulated.scenario("planned effect")
    undecided = simulated.experiments - len(simulated.stop_days)
    assert simulated.stop_days and undecided > 0
    assert decided_mean == pytest.approx(np.mean(simulated.stop_days))
    assert restricted == pytest.approx((np.sum(simulated.stop_days) + 8 * undecided) / simulated.experiments)
    # undecided experiments weigh in at the horizon, later than any decision: the mean can only grow
    assert 1 <= decided_mean < restricted <= 8
    table = result.to_pandas()
    assert set(table["scenario"]) == {"planned effect", "no effect"} and (table["p_decision"] <= 1).all()
    text = result.text()
    assert "fixed-horizon" in text and "false-ship rate" in text and "allows shipping from day" in text


def test_earliest_ship_day_counts_every_stage_exposure():
    spec = make_spec(ramp=[{"percent": 1, "min_days": 1, "min_users": 1000}, {"percent": 5, "min_days": 2, "min_users": 5000},
                           {"percent": 25, "min_days": 3, "min_users": 20_000}, {"percent": 50, "min_days": 7, "min_users": 50_000},
                           {"percent": 100}])
    # a stage's percent is treatment exposure; with a 50/50 split the experiment takes twice that share of
    # traffic. 5k/day: 1% (100/day) needs 10 days for 1,000 users; 5% (500/day) 8 more days for 4,000;
    # 25% (2,500/day) 6 days for 15,000; 50% (all 5,000/day) 7 days
    assert earliest_ship_day(spec, 5_000) == 10 + 8 + 6 + 7
    assert earliest_ship_day(spec, 10_000_000) == 1 + 2 + 3 + 7
    assert earliest_ship_day(make_spec(), 20_000) == 1 + 1 + 1 + 7      # the default ramp at the push demo's traffic


def test_bad_input_gets_a_clear_error():
    spec = conversion_spec()
    with pytest.raises(SpecError, match=r"baseline 'conv': the baseline rate must be in \(0, 1\), got 1.5"):
        plan_settings(spec, daily_users=1000, baseline={"conv": 1.5})
    with pytest.raises(SpecError, match=r"baseline rate must be in \(0, 1\), got 0.0"):
        plan_settings(spec, daily_users=1000, baseline={"conv": 0})
    with pytest.raises(SpecError, match="plan.daily_users: must be an integer >= 1, got 0"):
        plan_settings(spec, daily_users=0, baseline={"conv": 0.1})
    with pytest.raises(SpecError, match="plan.effect: .*got 0.0; an effect of zero cannot be planned for"):
        plan_settings(spec, daily_users=1000, baseline={"conv": 0.1}, effect=0.0)
    with pytest.raises(SpecError, match="20% change of the rate 0.9 exceeds 1"):
        plan_settings(spec, daily_users=1000, baseline={"conv": 0.9}, effect=0.2)
    with pytest.raises(SpecError, match="no plan: section"):
        plan_settings(spec, baseline={"conv": 0.1})
    with pytest.raises(SpecError, match="no metric named 'nope'"):
        plan_settings(spec, daily_users=1000, baseline={"nope": 0.1})


def test_every_family_can_be_planned():
    spec = make_spec(metrics=[
        {"name": "conv", "family": "conversion", "column": "a", "role": "primary"},
        {"name": "trades", "family": "count", "column": "b", "role": "primary"},
        {"name": "revenue", "family": "mean", "column": "c", "role": "primary"},
        {"name": "d7", "family": "retention", "column": "d", "observed_column": "e", "horizon": 7, "max_day": 7,
         "role": "primary"}], ramp=RAMP)
    plan = plan_settings(spec, daily_users=20_000, effect=0.1, days=10, experiments=6,
                         baseline={"conv": 0.1, "trades": {"mean": 2.0, "dispersion": 0.7},
                                   "revenue": {"mean": 30.0, "sd": 40.0}, "d7": 0.4})
    result = plan_experiment(spec, plan)
    assert [f.metric for f in result.fixed_horizon] == ["conv", "trades", "revenue", "d7"]
    assert all(f.control_users > 0 for f in result.fixed_horizon)
    assert result.simulated.scenario("no effect").experiments == 6


@pytest.mark.slow
def test_assurance_agrees_with_a_direct_simulation_on_generated_users():
    """The planner accumulates binomial counts and uses the conjugate closed form; here every user is a
    row, aggregated by the real DuckDB path each look, and the real recommend() runs on the analysis."""
    spec = conversion_spec(ramp=[{"percent": 25, "min_days": 1, "min_users": 1000}, {"percent": 100}])
    days, daily, runs = 6, 8_000, 120
    plan = plan_settings(spec, daily_users=daily, baseline={"conv": 0.05}, effect=0.15, days=days,
                         experiments=runs)
    planned = plan_experiment(spec, plan, seed=4, workers=2)
    rng = np.random.default_rng(11)
    sampler = SamplerSettings(draws=1000, chains=2, backend="conjugate")
    for scenario, lift in (("planned effect", 0.15), ("no effect", 0.0)):
        outcomes = []
        for _ in range(runs):
            rows, stage, started, outcome = [], 0, 0, "undecided"
            for day in range(1, days + 1):
                total = int(round(daily * spec.traffic_share(spec.ramp[stage].percent)))
                n = rng.binomial(total, 0.5)
                arm = np.repeat(["control", "treatment"], [total - n, n])
                conv = rng.random(total) < np.where(arm == "control", 0.05, 0.05 * (1 + lift))
                rows.append(pd.DataFrame({"arm": arm, "conv": conv.astype(int)}))
                result = analyze(spec, pd.concat(rows, ignore_index=True), sampler=sampler)
                action = recommend(result, spec.ramp[stage].percent, day - started).action
                if action in TERMINAL_ACTIONS:
                    outcome = action
                    break
                if action == "advance":
                    stage, started = stage + 1, day
            outcomes.append(outcome)
        direct = np.mean([o in TERMINAL_ACTIONS for o in outcomes])
        ours = planned.assurance(days, scenario)
        tolerance = 3 * np.hypot(se(direct, runs), se(ours, runs))
        assert abs(direct - ours) < tolerance, (scenario, direct, ours)
        direct_ship = np.mean([o == "ship" for o in outcomes])
        ours_ship = planned.assurance(days, scenario, ("ship",))
        assert abs(direct_ship - ours_ship) < 3 * np.hypot(se(direct_ship, runs), se(ours_ship, runs)), \
            (scenario, direct_ship, ours_ship)
