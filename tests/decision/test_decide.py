"""The rule as a pure function of numbers: every step of ``decide`` at its thresholds, with several primaries
and guardrails, on hand-written evidence (no Monte Carlo error unless given), so that each comparison the
docstring states -- ``>=`` where it says "needs at least", ``<`` where it says "below" -- is checked exactly."""

from __future__ import annotations

import html
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from scipy.special import ndtri

from bayes_ab.decision import Action, decide
from bayes_ab.decision.evidence import MetricEvidence
from bayes_ab.decision.rules import UNDECIDED_SE, _harmed_segments, clears, recommend

from conftest import make_spec

SPEC = make_spec([
    {"name": "p1", "family": "conversion", "column": "p1"},
    {"name": "p2", "family": "conversion", "column": "p2"},
    {"name": "g1", "family": "conversion", "column": "g1", "role": "guardrail", "direction": "decrease",
     "margin": 0.1},
    {"name": "g2", "family": "conversion", "column": "g2", "role": "guardrail", "direction": "decrease",
     "margin": 0.05},
])
T = SPEC.decision
HARM, SEVERE = T.per_metric(T.harm, 4), T.per_metric(T.severe_harm, 4)      # two primaries, two guardrails
SHIPPABLE = dict(p_beat=0.999, loss_ship_rel=0.0001, loss_keep_rel=0.01, p_rope=0.2, p_beyond_margin=0.0,
                 p_severe=0.0)


def evidence(name: str, ess: dict | None = None, beyond: np.ndarray | None = None, **values) -> MetricEvidence:
    numbers = {**SHIPPABLE, **values}
    flags = beyond if beyond is not None else np.zeros(1000, dtype=bool)
    return MetricEvidence(SPEC.metric(name), beyond_margin=flags, ess=ess or {}, **numbers)


def all_evidence(**changes) -> dict[str, MetricEvidence]:
    """Every metric shippable, then ``changes``: metric name -> its fields to change."""
    return {name: evidence(name, **changes.get(name, {})) for name in ("p1", "p2", "g1", "g2")}


def at_max_power(evidence_by_metric, days=7, users=50_000, spec=SPEC, **kwargs):
    return decide(spec, 50, days, users, "treatment", evidence_by_metric, **kwargs)


def check(rec, start: str):
    return next(r for r in rec.reasons if r.name.startswith(start))


def test_shippable_evidence_ships_to_100():
    rec = at_max_power(all_evidence())
    assert (rec.action, rec.from_stage, rec.to_stage) == (Action.SHIP, 50, 100)
    assert rec.headline.startswith("Ship to 100%: 99.9% probability that treatment helps p1")
    assert rec.text().splitlines()[0] == f"Recommendation: {rec.headline}"
    assert rec.text().count("\n") == len(rec.reasons) + 1 and "  [pass] to ship" in rec.text()
    assert rec.text().endswith("thresholds: the defaults, not calibrated for this plan (bayes-ab plan SPEC --calibrate)")
    assert html.escape(rec.headline) in rec._repr_html_() and "<table" in rec._repr_html_()


@pytest.mark.parametrize("p, rolled", [(SEVERE, True), (np.nextafter(SEVERE, 0), False)])
def test_severe_harm_rolls_back_from_its_threshold_on_at_any_stage(p, rolled):
    rec = decide(SPEC, 1, 1, 1000, "treatment", all_evidence(g2={"p_severe": p}))
    severe = check(rec, "severe harm: g2")
    assert severe.passed == (not rolled) and severe.probability == p and severe.limit == SEVERE
    assert (rec.action, rec.to_stage) == ((Action.ROLLBACK, 0) if rolled else (Action.ADVANCE, 5))
    assert "MC SE" not in severe.value        # exact numbers show no Monte Carlo error


@pytest.mark.parametrize("worse, keep, rolled", [(HARM, 0.0, True), (HARM, T.caring, False),
                                                 (np.nextafter(HARM, 0), 0.0, False)])
def test_a_primary_is_harmed_from_the_threshold_on_unless_rolling_back_forgoes_a_gain(worse, keep, rolled):
    rec = at_max_power(all_evidence(p2={"p_beat": 1 - worse, "loss_keep_rel": keep}), days=0, users=0)
    harm = check(rec, "harm: primary p2")
    assert harm.passed == (not rolled)
    assert (rec.action, rec.to_stage) == ((Action.ROLLBACK, 0) if rolled else (Action.HOLD, 50))
    if rolled:
        assert rec.headline == f"Roll back treatment: {harm.value.split(',')[0]} probability that it makes p2 worse."


@pytest.mark.parametrize("p, rolled", [(HARM, True), (np.nextafter(HARM, 0), False)])
def test_a_guardrail_beyond_its_margin_rolls_back_from_the_threshold_on(p, rolled):
    rec = at_max_power(all_evidence(g1={"p_beyond_margin": p}))
    assert check(rec, "harm: guardrail g1 P(worse by > 10.0%)").passed == (not rolled)
    assert rec.action == (Action.ROLLBACK if rolled else Action.SHIP)      # the joint check reads the draws


@pytest.mark.parametrize("days, users, missing", [(7, 50_000, None), (6, 50_000, "1 more day(s))"),
                                                  (7, 49_999, "1 more users)"),
                                                  (6, 49_999, "1 more day(s) and 1 more users)")])
def test_exposure_is_enough_from_the_stages_minimum_on(days, users, missing):
    rec = at_max_power(all_evidence(), days=days, users=users)
    assert check(rec, "exposure at 50%").passed == (missing is None)
    if missing:
        assert rec.action == Action.HOLD and rec.headline.endswith(f"minimum exposure not reached ({missing}.")


def test_futility_stops_only_when_every_primary_is_flat_at_the_thresholds():
    flat = {"p_rope": T.rope, "loss_ship_rel": 0.0, "loss_keep_rel": 0.0, "p_beat": 0.5}
    rec = at_max_power(all_evidence(p1=flat, p2=flat))
    assert (rec.action, rec.to_stage) == (Action.STOP_NO_EFFECT, 0)
    assert not check(rec, "futility").passed and rec.headline.startswith("Stop: treatment makes no practical")
    for change in ({"p_rope": np.nextafter(T.rope, 0)}, {"loss_ship_rel": T.caring}, {"loss_keep_rel": T.caring}):
        rec = at_max_power(all_evidence(p1=flat, p2={**flat, **change}))
        assert rec.action == Action.HOLD and check(rec, "futility").passed, change


def test_shipping_reads_the_least_convinced_primary_and_the_worst_loss():
    rec = at_max_power(all_evidence(p2={"p_beat": 0.985}))
    least = check(rec, "to ship: P(beat control)")
    assert least.value.startswith("p2 98") and not least.passed and rec.action == Action.HOLD
    rec = at_max_power(all_evidence(p2={"loss_ship_rel": 0.002}))
    worst = check(rec, "to ship: expected relative loss")
    assert worst.value == "p2 0.200%" and not worst.passed
    at_limit = at_max_power(all_evidence(p1={"p_beat": T.ship_beat}, p2={"loss_ship_rel": T.caring}))
    assert check(at_limit, "to ship: P(beat control)").passed
    assert not check(at_limit, "to ship: expected relative loss").passed


def test_guardrails_are_judged_jointly_with_the_least_certain_ones_error():
    flags = np.zeros(1000, dtype=bool)
    one, other = flags.copy(), flags.copy()
    one[:30], other[30:60] = True, True           # 3% beyond in each, 6% in either: joint 94% < 95%
    rec = at_max_power({**all_evidence(), "g1": evidence("g1", beyond=one, ess={"p_beyond_margin": 1000.0}),
                        "g2": evidence("g2", beyond=other, ess={"p_beyond_margin": 250.0})})
    joint = check(rec, "to ship: P(every guardrail within its margin)")
    assert joint.probability == pytest.approx(0.94) and not joint.passed
    assert joint.mcse == pytest.approx(np.sqrt(0.94 * 0.06 / 250.0))       # the smaller effective size
    unguarded = make_spec([{"name": "p1", "family": "conversion", "column": "p1"}])
    rec = decide(unguarded, 50, 7, 50_000, "treatment", {"p1": evidence("p1")})
    none = check(rec, "to ship: P(every guardrail within its margin)")
    assert none.probability == 1.0 and none.mcse == 0.0 and rec.action == Action.SHIP


def test_the_deciding_stage_advances_when_a_stage_follows_it_and_ships_at_the_last():
    spec = replace(SPEC, decision=replace(T, max_power_stage=25.0))
    rec = at_max_power(all_evidence(), spec=spec)       # stage 50 > 25: deciding, and 100 follows
    assert rec.action == Action.SHIP
    rec = decide(spec, 25, 1, 5000, "treatment", all_evidence())
    assert (rec.action, rec.to_stage) == (Action.ADVANCE, 50) and rec.headline.startswith("Advance to 50%:")
    last = decide(SPEC, 100, 0, 0, "treatment", all_evidence())
    assert (last.action, last.to_stage) == (Action.SHIP, 100)


def test_a_hold_says_how_many_more_users_would_settle_it():
    users = 60_000
    rec = at_max_power(all_evidence(p1={"p_beat": 0.9}), users=users)
    more = int(users * ((ndtri(T.ship_beat) / ndtri(0.9)) ** 2 - 1))
    assert f"roughly {more:,} more users if the lift holds" in rec.headline
    coin = at_max_power(all_evidence(p1={"p_beat": 0.5}), users=users)
    assert "more users if the lift holds" not in coin.headline            # no lift to extrapolate
    lossy = at_max_power(all_evidence(p1={"loss_ship_rel": 0.004, "p_beat": 0.995}), users=users)
    assert f"roughly {int(users * (4.0 ** 2 - 1)):,} more users (loss ~ 1/sqrt(users))" in lossy.headline
    negative = at_max_power(all_evidence(p1={"loss_ship_rel": 0.004, "p_beat": 0.3}), users=users)
    assert "(the lift is more likely negative)" in negative.headline


def test_monte_carlo_error_keeps_a_probability_within_two_errors_of_its_threshold_undecided():
    assert clears(0.99 + UNDECIDED_SE * 0.001, 0.001, 0.99) and not clears(0.99 + 1.9 * 0.001, 0.001, 0.99)
    assert clears(0.99 + 2.5 * 0.001, 0.001, 0.99)
    rec = at_max_power(all_evidence(p1={"p_beat": T.ship_beat}) | {
        "p1": evidence("p1", p_beat=T.ship_beat, ess={"p_beat": 10_000.0})})
    beat = check(rec, "to ship: P(beat control)")
    assert not beat.passed and beat.detail.startswith("within 2 MC standard errors of 99%: undecided")
    assert "(MC SE " in beat.value
    below = at_max_power({**all_evidence(), "p1": evidence("p1", p_beat=0.9, ess={"p_beat": 10_000.0})})
    assert check(below, "to ship: P(beat control)").detail == ""


def test_an_unsound_guardrail_blocks_everything_but_a_rollback():
    spec_unsound = [SPEC.metric("g1")]
    evidence_sound = {k: v for k, v in all_evidence().items() if k != "g1"}
    rec = at_max_power(evidence_sound, unsound=spec_unsound)
    assert rec.action == Action.HOLD and "g1: evidence failed" in rec.headline
    harmed = at_max_power({**evidence_sound, "g2": evidence("g2", p_beyond_margin=1.0)}, unsound=spec_unsound)
    assert harmed.action == Action.ROLLBACK


def test_segments_harmed_at_the_threshold_are_flagged_from_two_segments_on():
    def analysis(p_beats: dict[str, float]):
        segments = list(p_beats)
        rows = [SimpleNamespace(is_overall=False, arm="treatment", segment=s, p_beat_control=p)
                for s, p in p_beats.items()]
        stats = {"p1": xr.Dataset(coords={"segment": segments})}
        return SimpleNamespace(stats=stats, effects={"p1": SimpleNamespace(rows=rows)})

    primaries = [SPEC.metric("p1")]
    # P(harm) >= 0.75 flags a segment: P(beat) = 0.25 exactly is flagged (0.75 and 0.25 are exact in binary)
    assert _harmed_segments(analysis({"a": 0.25, "b": 0.5}), primaries, "treatment", 0.75) == ["a"]
    assert _harmed_segments(analysis({"a": 0.250001, "b": 0.5}), primaries, "treatment", 0.75) == []
    assert _harmed_segments(analysis({"all": 0.0}), primaries, "treatment", 0.75) == []     # one segment: none


def test_the_mcmc_gate_shows_the_figures_and_the_rule_judges_the_first_primary():
    import pandas as pd

    from bayes_ab.analysis import analyze
    from bayes_ab.spec import SamplerSettings

    rows = pd.DataFrame([{"arm": arm, "users": 20_000, "p1": conv, "p2": 2000, "g1": 200, "g2": 200}
                         for arm, conv in (("control", 2000), ("treatment", 2200))])
    result = analyze(SPEC, rows, aggregated=True, sampler=SamplerSettings(draws=2000, chains=2, seed=1,
                                                                          backend="conjugate"))
    rec = recommend(result, 50, 7)
    gate = check(rec, "MCMC diagnostics (p1)")
    assert gate.value.startswith("max R-hat 1.000") and "ok" not in gate.value and gate.passed


def test_an_even_chance_still_estimates_the_users_that_would_bring_the_loss_under():
    users = 60_000
    even = at_max_power(all_evidence(p1={"loss_ship_rel": 0.004, "p_beat": 0.5}), users=users)
    assert f"roughly {int(users * (4.0 ** 2 - 1)):,} more users (loss ~ 1/sqrt(users))" in even.headline


def test_primaries_are_not_judged_against_a_guardrails_margin():
    # a primary's own P(beyond margin) is not read: only guardrails have margins the rule enforces
    flags = np.ones(1000, dtype=bool)
    rec = at_max_power({**all_evidence(), "p1": evidence("p1", p_beyond_margin=1.0, beyond=flags)})
    assert rec.action == Action.SHIP
    assert not any(r.name.startswith("harm: guardrail p1") for r in rec.reasons)


def test_harm_is_family_wise_over_the_metrics_judged():
    """Each of k primaries and guardrails is held to 1 - (1 - harm) / k: with four judged here, 0.9975."""
    assert HARM == pytest.approx(0.9975) and SEVERE == pytest.approx(0.975)
    one = make_spec([{"name": "p1", "family": "conversion", "column": "p1"}])
    alone = decide(one, 50, 7, 50_000, "treatment", {"p1": evidence("p1", p_beat=0.005, loss_keep_rel=0.0)})
    assert check(alone, "harm: primary p1").limit == pytest.approx(0.99) and alone.action == Action.ROLLBACK
    rec = at_max_power(all_evidence(p1={"p_beat": 0.005, "loss_keep_rel": 0.0}))       # not enough among four
    assert rec.action == Action.HOLD and check(rec, "harm: primary p1").limit == pytest.approx(0.9975)


def test_the_rule_says_where_its_thresholds_come_from():
    from bayes_ab.decision.rules import thresholds_source

    assert thresholds_source(T).startswith("the defaults, not calibrated")
    assert thresholds_source(replace(T, harm=0.995)).startswith("set in the spec, not calibrated")
    assert thresholds_source(replace(T, guardrails_safe=0.9)).startswith("set in the spec, not calibrated")
    assert thresholds_source(replace(T, calibration="seed 0")) == "calibrated for this plan (seed 0)"


def test_no_estimate_of_more_users_for_a_threshold_no_probability_reaches():
    from bayes_ab.decision.rules import _more_units

    assert _more_units(1000, "users", 0.9, 1.0) == "" and _more_units(1000, "users", 0.9, 2.0) == ""
    assert _more_units(1000, "users", 0.9, 0.99).startswith("; roughly ")
    assert _more_units(60, "clusters", 0.9, 0.99).endswith("more clusters if the lift holds")
