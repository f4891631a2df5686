"""Operating characteristics: reproducible simulations, and what peeking daily costs."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ab.errors import SpecError
from bayes_ab.spec import load_spec
from bayes_ab.stopping import RULES, compare_rules, load_operating_characteristics, simulate
from bayes_ab.stopping.operating import FALSE_SHIP_TARGET

from conftest import EXAMPLES, make_spec


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
    assert [s.name for s in one.scenarios] == ["no effect", "planned effect", "harmful"]
    for s in one.scenarios:
        assert abs(sum(s.rates.values()) - 1) < 1e-12 and s.experiments == 12
        assert len(s.max_power_days) == len(s.exposure) == 12
    assert load_operating_characteristics(one.save(tmp_path)).scenarios == one.scenarios


def test_rules_run_on_common_random_numbers():
    """A rule's figures are the same whether it runs alone or beside the others: each experiment is one
    world, whatever else is simulated on it."""
    alone = simulate(spec(experiments=10, days=8), rule="sequential", seed=5)
    together = compare_rules(spec(experiments=10, days=8), seed=5)
    assert together.rule("sequential").scenarios == alone.scenarios
    assert [r.rule for r in together.rules] == list(RULES)
    table = together.to_pandas()
    assert set(table["rule"]) == set(RULES) and "treated user-days" in together.text()


def test_guardrails_with_a_baseline_are_simulated_with_a_breach_scenario():
    guarded = make_spec(
        metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"},
                 {"name": "crash", "family": "conversion", "column": "crash", "role": "guardrail",
                  "direction": "decrease", "margin": 0.2}],
        ramp=SHORT_RAMP, plan={"daily_users": 40_000, "days": 10, "effect": 0.05, "experiments": 30,
                               "baseline": {"conv": 0.1, "crash": 0.05}})
    result = compare_rules(guarded, rules=("default", "sequential"), seed=2)
    breach = result.rule("default").scenario("guardrail breach: crash")
    assert breach.breached == "crash" and breach.kind == "guardrail breach"
    assert breach.guardrail_lift == pytest.approx(-0.4)
    # a 40% rise in crashes against a 20% margin: the default rule never ships it; the sequential rule,
    # which only asks that guardrails not be significantly worse, does not always stop it either
    assert breach.rates["ship"] == 0 and breach.rates["rollback"] > 0.8, result.text()


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
    """14 daily looks; a short ramp reaches the deciding stage by day 2, so the ship check is repeated ~10
    times; the naive rule looks at full traffic from day one. Both on the same simulated experiments."""
    runs = 300
    compared = compare_rules(spec(experiments=runs, ramp=SHORT_RAMP), rules=("default", "naive"), seed=1, workers=2)
    naive, default = compared.rule("naive"), compared.rule("default")
    se = naive.scenario("no effect").standard_error("ship")
    assert naive.false_ship - 3 * se > FALSE_SHIP_TARGET, naive.text()      # far above the nominal 5%
    bound = FALSE_SHIP_TARGET
    assert default.false_ship < bound + 2 * np.sqrt(bound * (1 - bound) / runs), default.text()
    assert naive.false_ship > 2 * default.false_ship, compared.text()
    assert default.power > 0.8, default.text()


@pytest.mark.slow
def test_the_default_rule_meets_its_targets_on_the_push_plan():
    """The push demo's plan (20,000 users/day, 11.5% base, +5%, opt-out guardrail, default ramp, daily looks
    for 28 days), reduced to 300 experiments per scenario; each target with two Monte Carlo standard errors."""
    runs = 300
    result = compare_rules(load_spec(EXAMPLES / "push_notification" / "spec.yaml"), rules=("default", "sequential"),
                           experiments=runs, seed=7, workers=2)
    ours, reference = result.rule("default"), result.rule("sequential")

    def tol(p):
        return 2 * np.sqrt(max(p * (1 - p), 0.01) / runs)

    planned, null = ours.scenario("planned effect"), ours.scenario("no effect")
    harmful, breach = ours.scenario("harmful"), next(s for s in ours.scenarios if s.kind == "guardrail breach")
    assert planned.rates["ship"] >= 0.90 - tol(0.90), result.text()
    assert planned.rates["rollback"] <= 0.01 + tol(0.01), result.text()
    assert null.rates["ship"] <= 0.05 + tol(0.05), result.text()
    assert null.rates["rollback"] <= 0.05 + tol(0.05), result.text()
    assert harmful.rates["rollback"] >= 0.95 - tol(0.95), result.text()
    assert 1 - breach.rates["ship"] >= 0.95 - tol(0.95), result.text()
    assert null.median_max_power_day() <= 4
    # within a day of the mSPRT: the rule acts only on probabilities beyond 2 MC standard errors of their
    # thresholds (issue 17), which costs a true +5% one day of median time to ship (11 against 10)
    assert planned.stop_quantiles(("ship",))[1] <= reference.scenario("planned effect").stop_quantiles(("ship",))[1] + 1
    # harm stopped no later than by the mSPRT: the same median day, and user-days exposed within 2% (the two
    # rules stop on the same day in most experiments; their medians differ by the traffic of the days between)
    harmful_reference = reference.scenario("harmful")
    assert harmful.stop_quantiles(("rollback",))[1] <= harmful_reference.stop_quantiles(("rollback",))[1]
    assert harmful.median_exposure() <= 1.02 * harmful_reference.median_exposure(), result.text()


@pytest.mark.slow
def test_ten_guardrails_do_not_multiply_false_rollbacks_and_a_breach_is_not_shipped():
    """Harm is family-wise: with one primary and ten guardrails (metrics drawn independently, the hardest
    case) a change that does nothing is rolled back at most 5% of the time within 2.5 binomial standard errors
    of 200 experiments, and a breach of one guardrail (2x its margin) is not shipped in at least 95%."""
    from bayes_ab.stopping.recording import outcomes, record

    metrics = [{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}]
    metrics += [{"name": f"g{k}", "family": "conversion", "column": f"g{k}", "role": "guardrail",
                 "direction": "decrease", "margin": 0.1} for k in range(1, 11)]
    guarded = make_spec(metrics=metrics, plan={"daily_users": 20_000, "days": 20, "effect": 0.05, "correlation": 0,
                                               "baseline": {"conv": 0.115, **{f"g{k}": 0.02 for k in range(1, 11)}}})
    runs = record(guarded, experiments=200, seed=3, workers=2, scenario_names=("no effect", "guardrail breach: g1"))
    margin = 2.5 * np.sqrt(0.05 * 0.95 / 200)
    null = outcomes(runs["no effect"], guarded.decision)
    assert null.rate("rollback") <= 0.05 + margin and null.rate("ship") <= 0.05 + margin
    assert outcomes(runs["guardrail breach: g1"], guarded.decision).rate("ship") <= 0.05 + margin


@pytest.mark.slow
def test_a_a_with_twelve_segments_rarely_flags_a_segment():
    """Segment harm is family-wise over the segments: in A/A experiments with 12 segments some segment is
    flagged as confidently harmed at most 5% of the time (within 2.5 standard errors of 400 experiments). The
    unpooled closed form is used: pooling shrinks segments toward the overall effect, so it flags less."""
    import pandas as pd

    from bayes_ab.analysis import analyze
    from bayes_ab.decision import recommend
    from bayes_ab.spec import SamplerSettings

    spec12 = make_spec(metrics=[{"name": "conv", "family": "conversion", "column": "conv"}], segments=("segment",))
    rng, flagged = np.random.default_rng(12), 0
    closed = SamplerSettings(draws=2000, chains=1, seed=1, backend="conjugate")
    for _ in range(400):
        users = rng.multinomial(60_000, np.full(24, 1 / 24))
        rows = pd.DataFrame({"arm": np.repeat(["control", "treatment"], 12), "segment": np.tile(range(12), 2),
                             "users": users, "conv": rng.binomial(users, 0.1)})
        rec = recommend(analyze(spec12, rows, aggregated=True, sampler=closed), stage=50, days=7)
        flagged += any(r.name == "segments confidently harmed" for r in rec.reasons)
    assert flagged / 400 <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 400), flagged


def test_a_plan_whose_rule_ships_or_rolls_back_too_many_null_changes_is_told_to_calibrate():
    from bayes_ab.stopping.operating import OperatingCharacteristics, ScenarioResult

    def null(ship, rollback):
        rates = {"ship": ship, "rollback": rollback, "stop_no_effect": 0.0, "undecided": 1 - ship - rollback}
        return ScenarioResult("no effect", 0.0, 1000, rates, (), (), {})

    plan = spec().plan
    fine = OperatingCharacteristics("x", "default", plan, (null(0.049, 0.05),))
    assert fine.false_ship_warning() is None
    rolls = OperatingCharacteristics("x", "default", plan, (null(0.03, 0.061),)).false_ship_warning()
    assert rolls.startswith("this plan rolls back a change that does nothing 6.1% (+/- 0.8%) of the time")
    assert "bayes-ab plan SPEC --calibrate" in rolls
    both = OperatingCharacteristics("x", "default", plan, (null(0.056, 0.061),)).false_ship_warning()
    assert "ships a change that does nothing 5.6%" in both and " and rolls back" in both
    assert OperatingCharacteristics("x", "sequential", plan, (null(0.1, 0.1),)).false_ship_warning() is None


@pytest.mark.slow
def test_the_default_rule_holds_on_the_group_stories_plan_with_every_guardrail_simulated():
    """Group Stories' own plan (2 primaries, 4 guardrails, correlated users): changes that do nothing are neither
    shipped nor rolled back more than 5% (100 experiments), each guardrail breached alone is not shipped and both
    primaries at their planned effect are (30 experiments each); two binomial standard errors of tolerance.
    The benchmark (`benchmarks/calibration.py --only group_stories`) runs 1,000 per scenario."""
    from bayes_ab.stopping.operating import scenarios
    from bayes_ab.stopping.recording import outcomes, record

    spec = load_spec(EXAMPLES / "group_stories" / "spec.yaml")

    def tol(p, n):
        return 2 * np.sqrt(p * (1 - p) / n)

    null = outcomes(record(spec, experiments=100, seed=5, workers=2, scenario_names=("no effect",))["no effect"],
                    spec.decision)
    assert null.rate("ship") <= 0.05 + tol(0.05, 100) and null.rate("rollback") <= 0.05 + tol(0.05, 100)
    wanted = tuple(n for n in scenarios(spec, spec.plan) if n.startswith("guardrail breach: ") or n == "planned effect")
    others = record(spec, experiments=30, seed=5, workers=2, scenario_names=wanted)
    breaches = [name for name in others if name.startswith("guardrail breach: ")]
    assert len(breaches) == 4
    for name in breaches:
        assert outcomes(others[name], spec.decision).rate("ship") <= 0.05 + tol(0.05, 30), name
    assert outcomes(others["planned effect"], spec.decision).rate("ship") >= 0.8 - tol(0.8, 30)
