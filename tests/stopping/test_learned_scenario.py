"""The learned-prior scenario: each simulated experiment's true effect is drawn from the primary metric's
learned prior, and the rates say what the organisation's history implies for ships, false ships and
rollbacks of real improvements."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from bayes_ab.stopping import load_operating_characteristics, simulate
from bayes_ab.stopping.operating import LEARNED, draw_learned_lift

from conftest import make_spec

RAMP = [{"percent": 10, "min_days": 1, "min_users": 1000}, {"percent": 50, "min_days": 2, "min_users": 10000},
        {"percent": 100}]


def _spec(tmp_path, location, scale, df=None, direction="increase", experiments=60):
    distribution = {"form": "normal" if df is None else "student_t", "location": location, "scale": scale,
                    **({"df": df} if df else {})}
    prior = tmp_path / f"prior_{location}_{scale}_{df}.yaml"
    prior.write_text(yaml.safe_dump({"bayes_ab_prior": 1, "effect": "relative", "distribution": distribution,
                                     "provenance": {"experiments": 50, "learned_at": "2026-11-30T00:00:00Z"}}))
    return make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary", "direction": direction,
                  "prior": {"learned": str(prior)}}],
        ramp=RAMP, plan={"daily_users": 40_000, "days": 10, "effect": 0.05, "baseline": {"conv": 0.1},
                         "experiments": experiments})


def test_true_effects_are_drawn_from_the_learned_prior(tmp_path):
    metric = _spec(tmp_path, 0.01, 0.02).metric("conv")
    rng = np.random.default_rng(1)
    lifts = np.array([draw_learned_lift(metric, rng) for _ in range(20_000)])
    assert abs(lifts.mean() - 0.01) < 4 * 0.02 / np.sqrt(lifts.size) and abs(lifts.std() / 0.02 - 1) < 0.03
    decrease = _spec(tmp_path, 0.01, 0.02, direction="decrease").metric("conv")
    assert np.mean([draw_learned_lift(decrease, rng) for _ in range(5000)]) < 0        # good direction: down
    cauchy = _spec(tmp_path, 0.0, 0.01, df=1.0).metric("conv")
    assert max(abs(draw_learned_lift(cauchy, rng)) for _ in range(5000)) <= 0.9


def test_the_scenario_runs_when_the_primary_has_a_learned_prior_and_is_stored(tmp_path):
    winners = simulate(_spec(tmp_path, 0.10, 0.01), seed=1)
    scenario = winners.scenario(LEARNED)
    assert np.isnan(scenario.lift) and len(scenario.lifts) == scenario.experiments == 60
    assert abs(np.mean(scenario.lifts) - 0.10) < 4 * 0.01 / np.sqrt(60)
    # clear +10% effects at 40,000 users a day: the rule ships nearly all, and never a harmful one
    assert scenario.rates["ship"] > 0.9 and scenario.share("ship", True) == 0
    losers = simulate(_spec(tmp_path, -0.10, 0.01), seed=1).scenario(LEARNED)
    assert losers.rates["rollback"] > 0.9 and losers.share("rollback", False) == 0
    mixed = simulate(_spec(tmp_path, 0.0, 0.03), seed=2)
    text = mixed.text()
    assert "learned prior (true lift drawn per experiment)" in text and "shipped with a true effect <= 0" in text
    stored = load_operating_characteristics(mixed.save(tmp_path)).scenario(LEARNED)
    assert stored.lifts == mixed.scenario(LEARNED).lifts and stored.outcomes == mixed.scenario(LEARNED).outcomes
    table = mixed.to_pandas().set_index("scenario")
    assert table.loc[LEARNED, "ship_true_harm"] == pytest.approx(mixed.scenario(LEARNED).share("ship", True))


def test_no_learned_prior_no_scenario():
    plain = make_spec(metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}],
                      ramp=RAMP, plan={"daily_users": 40_000, "days": 4, "effect": 0.05, "baseline": {"conv": 0.1},
                                       "experiments": 5})
    assert LEARNED not in [s.name for s in simulate(plain, seed=0).scenarios]
