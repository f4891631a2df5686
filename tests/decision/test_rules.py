"""The decision rule: every action reachable, gates that block, direction, segments, A/A risk."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import Analysis, analyze
from bayes_ab.decision import ACTIONS, recommend
from bayes_ab.decision.srm import srm_p_value
from bayes_ab.errors import SpecError
from bayes_ab.models.diagnostics import Diagnostics
from bayes_ab.spec import SamplerSettings
from scipy import stats as st

from conftest import make_spec

EXACT = SamplerSettings(draws=4000, chains=2, seed=1, backend="conjugate")


def spec(primary_direction="increase"):
    return make_spec([
        {"name": "primary", "family": "conversion", "column": "primary", "direction": primary_direction},
        {"name": "guardrail", "family": "conversion", "column": "guardrail", "direction": "decrease",
         "role": "guardrail", "margin": 0.1},
    ], segments=("segment",))


def experiment(n=200_000, lift=0.05, guardrail_lift=0.0, split=(0.5, 0.5), segments=None,
               primary_direction="increase", base=0.1) -> Analysis:
    """Expected-count aggregates (no sampling noise), so every posterior is known in advance."""
    segments = segments or {"all": lift}
    rows = []
    for segment, segment_lift in segments.items():
        for arm, share, factor in (("control", split[0], 0.0), ("treatment", split[1], 1.0)):
            users = round(n * share * 2 / len(segments))
            rows.append({"arm": arm, "segment": segment, "users": users,
                         "primary": round(users * base * (1 + factor * segment_lift)),
                         "guardrail": round(users * 0.01 * (1 + factor * guardrail_lift))})
    return analyze(spec(primary_direction), pd.DataFrame(rows), aggregated=True, sampler=EXACT)


def with_decision(result: Analysis, **decision) -> Analysis:
    """The same analysis under a spec with other decision settings."""
    changed = make_spec([
        {"name": "primary", "family": "conversion", "column": "primary", "direction": result.spec.metrics[0].direction},
        {"name": "guardrail", "family": "conversion", "column": "guardrail", "direction": "decrease",
         "role": "guardrail", "margin": 0.1}], segments=("segment",), decision=decision)
    return Analysis(changed, result.stats, result.fits, result.effects)


def test_risk_stages_advance_at_minimum_exposure_without_evidence_of_benefit():
    """Below the maximum-power stage only severe harm matters: no effect, or a mild -5%, still advances."""
    for lift in (0.0, -0.05):
        advance = recommend(experiment(n=4_000, lift=lift), stage=1, days=1)
        assert (advance.action, advance.from_stage, advance.to_stage) == ("advance", 1, 5), advance.text()
        assert advance.deciding_check.name == "risk stage 1%: no severe harm at minimum exposure"
    assert recommend(experiment(lift=-0.05), stage=25, days=1).action == "advance"


def test_hold_until_minimum_exposure():
    rec = recommend(experiment(), stage=50, days=3)
    assert rec.action == "hold" and "4 more day(s)" in rec.headline
    assert rec.deciding_check.name == "exposure at 50%" and not rec.deciding_check.passed
    assert recommend(experiment(n=40), stage=1, days=1).action == "hold"        # 80 users < 100


def test_ship_at_the_maximum_power_stage():
    ship = recommend(experiment(), stage=50, days=7)
    assert (ship.action, ship.to_stage) == ("ship", 100), ship.text()
    assert ship.deciding_check.name == "to ship: P(every guardrail within its margin)"


def test_hold_while_uncertain_says_how_much_more_is_needed():
    rec = recommend(experiment(n=100_000, lift=0.01), stage=50, days=7)
    assert rec.action == "hold" and "more users if the lift holds" in rec.headline, rec.headline
    beat = next(r for r in rec.reasons if r.name.startswith("to ship: P(beat control)"))
    assert not beat.passed


def test_severe_harm_rolls_back_at_any_stage_even_before_minimum_exposure():
    rec = recommend(experiment(lift=-0.3), stage=1, days=0)
    assert rec.action == "rollback" and rec.deciding_check.name.startswith("severe harm: primary")
    rec = recommend(experiment(guardrail_lift=0.4), stage=5, days=0)
    assert rec.action == "rollback" and rec.deciding_check.name.startswith("severe harm: guardrail")


def test_harm_at_the_maximum_power_stage_rolls_back_at_every_look():
    rec = recommend(experiment(lift=-0.05), stage=50, days=1)
    assert rec.action == "rollback" and rec.deciding_check.name.startswith("harm: primary primary"), rec.text()
    # beyond its 10% margin, below a 50% severe-harm margin: the guardrail harm check decides
    rec = recommend(with_decision(experiment(guardrail_lift=0.3, n=2_000_000), severe_margin=0.5), stage=50, days=1)
    assert rec.action == "rollback" and rec.deciding_check.name.startswith("harm: guardrail guardrail"), rec.text()


def test_a_guardrail_not_shown_within_its_margin_blocks_shipping():
    rec = recommend(experiment(guardrail_lift=0.1), stage=50, days=7)
    assert rec.action == "hold" and "guardrails within their margins" in rec.headline, rec.text()


def test_stop_for_no_effect():
    rec = recommend(experiment(n=4_000_000, lift=0.0), stage=50, days=10)
    assert rec.action == "stop_no_effect" and rec.deciding_check.name.startswith("futility")


def test_every_action_is_reachable():
    seen = {recommend(experiment(), 5, 3).action, recommend(experiment(), 50, 10).action,
            recommend(experiment(), 50, 1).action, recommend(experiment(lift=-0.05), 50, 3).action,
            recommend(experiment(n=4_000_000, lift=0.0), 50, 10).action}
    assert seen == set(ACTIONS)


def test_the_maximum_power_stage_is_configurable():
    """With decision.max_power_stage 25 the rule decides at 25%; a success there advances (50% is not 100%)."""
    rec = recommend(with_decision(experiment(), max_power_stage=25), stage=25, days=1)
    assert rec.action == "advance" and rec.to_stage == 50 and rec.deciding_check.name.startswith("to ship")
    with pytest.raises(SpecError, match=r"decision.max_power_stage: must be one of the ramp's stages"):
        make_spec(decision={"max_power_stage": 30})


def test_sample_ratio_mismatch_blocks_whatever_the_effects():
    rec = recommend(experiment(split=(0.52, 0.48), lift=-0.3), stage=50, days=10)
    assert rec.action == "hold" and "bad data" in rec.headline
    failed = [r for r in rec.reasons if not r.passed]
    assert failed and all(r.blocking for r in failed) and failed[0].name.startswith("sample ratio")


def test_failed_diagnostics_block_whatever_the_effects():
    result = experiment()
    bad = Diagnostics(max_rhat=1.05, min_ess_bulk=120, min_ess_tail=300, divergences=3, chains=4, draws=1000)
    fits = {name: replace(fit, diagnostics=bad) if name == "primary" else fit for name, fit in result.fits.items()}
    rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=50, days=10)
    assert rec.action == "hold" and "cannot advance on bad data" in rec.headline
    gate = next(r for r in rec.reasons if r.name == "MCMC diagnostics (primary)")
    assert not gate.passed and gate.blocking and "secondary" not in gate.detail


def test_a_sound_guardrail_fit_can_still_roll_back_when_another_fit_failed():
    result = experiment(guardrail_lift=0.4)
    bad = Diagnostics(max_rhat=1.05, min_ess_bulk=120, min_ess_tail=300, divergences=3, chains=4, draws=1000)
    fits = {name: replace(fit, diagnostics=bad) if name == "primary" else fit for name, fit in result.fits.items()}
    for stage in (5, 50):
        rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=stage, days=3)
        assert rec.action == "rollback", rec.text()
    fits = {name: replace(fit, diagnostics=bad) if name != "primary" else fit for name, fit in result.fits.items()}
    rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=5, days=3)
    assert rec.action == "hold"
    unused = [r for r in rec.reasons if r.value == "not evaluated"]
    assert unused and all(r.blocking and not r.passed for r in unused)
    fits = {name: replace(fit, diagnostics=bad) for name, fit in result.fits.items()}
    assert recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=5, days=3).action == "hold"


def test_decrease_is_good_primary():
    better = recommend(experiment(lift=-0.05, primary_direction="decrease"), stage=50, days=7)
    worse = recommend(experiment(lift=0.05, primary_direction="decrease"), stage=50, days=7)
    assert better.action == "ship" and worse.action == "rollback"


def test_confidently_harmed_segment_gets_a_targeted_rollout():
    rec = recommend(experiment(segments={"a": 0.08, "b": 0.08, "c": -0.06}), stage=5, days=3)
    flagged = [r for r in rec.reasons if r.name == "segments confidently harmed"]
    assert flagged and flagged[0].value == "c"
    assert rec.action == "advance" and "exclude c" in rec.headline and rec.targeted_segments == ("a", "b")


@pytest.mark.parametrize("direction, lift", [("increase", 0.02), ("decrease", -0.02), ("decrease", 0.03)])
def test_the_evidence_the_rule_reads_is_defined_on_the_fits_draws(direction, lift):
    """decide() reads P(beat), the losses, P(ROPE), P(beyond the margin) and P(severe harm) of the overall lift:
    each equals its definition computed here from the fit's draws, and P(beat) and the losses equal the table's."""
    from bayes_ab.decision.evidence import evidence_from_fit

    result = experiment(n=20_000, lift=lift, primary_direction=direction)
    fit = result.fits["primary"]
    overall = fit.overall_mean.transpose("chain", "draw", "arm").values.reshape(-1, 2)
    relative = overall[:, 1] / overall[:, 0] - 1
    better = relative if direction == "increase" else -relative      # > 0 when the treatment is better
    e = evidence_from_fit(fit, "treatment", 0.1)
    margin = fit.metric.margin
    assert e.p_beat == pytest.approx(np.mean(better > 0), abs=1e-12)
    assert e.loss_ship_rel == pytest.approx(np.mean(np.clip(-better, 0, None)), abs=1e-12)
    assert e.loss_keep_rel == pytest.approx(np.mean(np.clip(better, 0, None)), abs=1e-12)
    assert e.p_rope == pytest.approx(np.mean(np.abs(relative) < fit.metric.rope), abs=1e-12)
    assert e.p_beyond_margin == pytest.approx(np.mean(-better > margin), abs=1e-12)
    assert e.p_severe == pytest.approx(np.mean(-better > 0.1), abs=1e-12)
    row = result.effects["primary"].overall("treatment")
    assert (e.p_beat, e.loss_ship_rel, e.loss_keep_rel) == pytest.approx(
        (row.p_beat_control, row.loss_ship_rel, row.loss_keep_rel), abs=1e-12)
    assert 0.02 < e.p_beat < 0.98 or direction == "decrease" and lift > 0    # the draws straddle no effect


def test_unknown_stage_is_refused():
    with pytest.raises(SpecError, match="stage 10% is not in the ramp plan"):
        recommend(experiment(), stage=10, days=3)


def test_srm_p_value_matches_scipy():
    assert srm_p_value([5100, 4900], [0.5, 0.5]) == pytest.approx(st.chisquare([5100, 4900]).pvalue)
    users, weights = np.array([1000, 1080, 990]), np.array([0.3, 0.3, 0.4])
    assert srm_p_value(users, weights) == pytest.approx(st.chisquare(users, users.sum() * weights).pvalue, rel=1e-9)
    assert srm_p_value([2000, 8000], [0.2, 0.8]) == pytest.approx(1.0)


@pytest.mark.slow
def test_a_a_false_ship_rate_is_below_the_configured_risk():
    """No true effect: how often does the default rule ship from the 50% stage?"""
    rng = np.random.default_rng(30)
    ships, runs = 0, 300
    for _ in range(runs):
        n = int(rng.choice([20_000, 100_000, 500_000]))
        rows = [{"arm": arm, "segment": "all", "users": n, "primary": rng.binomial(n, 0.1),
                 "guardrail": rng.binomial(n, 0.01)} for arm in ("control", "treatment")]
        result = analyze(spec(), pd.DataFrame(rows), aggregated=True,
                         sampler=SamplerSettings(draws=2000, chains=2, seed=int(rng.integers(1e9)),
                                                 backend="conjugate"))
        ships += recommend(result, stage=50, days=10).action == "ship"
    # one look: the ship check alone bounds the false-ship rate by 1 - ship_beat
    rate = ships / runs
    risk = 1 - spec().decision.ship_beat
    # below the configured risk, allowing two Monte Carlo standard errors of the 300-run estimate
    assert rate < risk + 2 * np.sqrt(risk * (1 - risk) / runs), rate


# -- Monte Carlo noise (issue 17): a probability within 2 MC standard errors of its threshold decides nothing --

def _evidence(metric, p_beat: float, ess: float, loss_keep_rel: float = 0.01):
    from bayes_ab.decision.evidence import MetricEvidence

    beyond = np.zeros(4000, dtype=bool)
    return MetricEvidence(metric, p_beat, loss_ship_rel=0.0, loss_keep_rel=loss_keep_rel, p_rope=0.1,
                          p_beyond_margin=0.0, p_severe=0.0, beyond_margin=beyond,
                          ess=dict.fromkeys(("p_beat", "p_rope", "p_beyond_margin", "p_severe"), ess))


@pytest.mark.parametrize("ess, action", [(1_000, "hold"), (1_000_000, "ship")])
def test_p_beat_just_above_the_ship_threshold_is_undecided_within_its_mc_error(ess, action):
    from bayes_ab.decision.rules import decide

    s = spec()
    primary, guardrail = s.metrics
    evidence = {"primary": _evidence(primary, 0.992, ess), "guardrail": _evidence(guardrail, 0.5, ess)}
    rec = decide(s, 50, 7, 200_000, "treatment", evidence)
    assert rec.action == action, rec.text()
    beat = next(r for r in rec.reasons if r.name.startswith("to ship: P(beat control)"))
    expected = np.sqrt(0.992 * 0.008 / ess)
    assert beat.mcse == pytest.approx(expected)
    if action == "hold":                        # 0.992 - 2 x 0.0028 < 0.99
        assert not beat.passed and "MC SE 0.3%" in beat.value and "undecided" in beat.detail


@pytest.mark.parametrize("ess, action", [(1_000, "hold"), (1_000_000, "rollback")])
def test_p_worse_just_above_the_harm_threshold_rolls_back_only_beyond_its_mc_error(ess, action):
    from bayes_ab.decision.rules import decide

    s = spec()
    primary, guardrail = s.metrics
    evidence = {"primary": _evidence(primary, 0.004, ess, loss_keep_rel=0.0),
                "guardrail": _evidence(guardrail, 0.5, ess)}
    rec = decide(s, 50, 7, 200_000, "treatment", evidence)      # P(worse) 0.996 against 0.995
    assert rec.action == action, rec.text()


@pytest.mark.parametrize("better", ["a", "b"])
def test_with_several_arms_the_rule_judges_the_arm_with_the_least_expected_loss(better):
    """Of several treatments the recommendation is about the one whose shipping costs least in expectation
    (here the one with the larger lift), whichever position it has among the arms."""
    lifts = {"a": 0.02, "b": 0.06} if better == "b" else {"a": 0.06, "b": 0.02}
    rows = []
    for arm, lift in (("control", 0.0), *lifts.items()):
        rows.append({"arm": arm, "segment": "all", "users": 60_000, "primary": round(60_000 * 0.1 * (1 + lift)),
                     "guardrail": 600})
    three = make_spec([{"name": "primary", "family": "conversion", "column": "primary"},
                       {"name": "guardrail", "family": "conversion", "column": "guardrail", "direction": "decrease",
                        "role": "guardrail", "margin": 0.1}], segments=("segment",), arms=("control", "a", "b"))
    result = analyze(three, pd.DataFrame(rows), aggregated=True, sampler=EXACT)
    losses = {arm: result.effects["primary"].overall(arm).loss_ship_rel for arm in lifts}
    assert losses[better] < losses[{"a": "b", "b": "a"}[better]]
    rec = recommend(result, stage=50, days=7)
    assert rec.arm == better, rec.text()


def test_srm_weights_are_shares_whatever_their_scale_and_no_users_is_no_evidence():
    users = np.array([2600, 7400])
    expected = st.chisquare(users, users.sum() * np.array([0.25, 0.75])).pvalue
    assert srm_p_value(users, [1, 3]) == pytest.approx(expected, rel=1e-9)        # weights 1:3 are 25% / 75%
    assert srm_p_value(users, [25, 75]) == pytest.approx(expected, rel=1e-9)
    assert srm_p_value([0, 0], [0.5, 0.5]) == 1.0
    assert srm_p_value([1, 0], [0.5, 0.5]) == pytest.approx(st.chisquare([1, 0]).pvalue)      # one user: p = 0.32


def test_srm_checks_cover_every_segment_and_pass_at_the_threshold():
    from bayes_ab.decision.srm import srm_check, srm_checks

    result = experiment(segments={"a": 0.0, "b": 0.0})
    checks = srm_checks(result.stats["primary"], result.spec, 0.001)
    assert [c.name for c in checks] == ["sample ratio (overall)", "sample ratio (a)", "sample ratio (b)"]
    single = experiment()
    assert [c.name for c in srm_checks(single.stats["primary"], single.spec, 0.001)] == ["sample ratio (overall)"]
    users = np.array([5100, 4900])
    p = srm_p_value(users, [0.5, 0.5])
    assert srm_check("overall", users, np.array([0.5, 0.5]), p).passed                  # p >= threshold passes
    assert not srm_check("overall", users, np.array([0.5, 0.5]), p * 1.0001).passed
    assert srm_check("overall", users, np.array([1.0, 1.0]), 0.001).detail.endswith("planned 50% / 50%")
    assert "= 51.0% / 49.0%" in srm_check("overall", users, np.array([0.5, 0.5]), 0.001).detail


def test_srm_tests_each_arm_against_its_own_planned_share():
    from bayes_ab.decision.srm import srm_checks

    uneven = make_spec([{"name": "primary", "family": "conversion", "column": "primary"}],
                       arms=("control", "treatment"))
    uneven = replace(uneven, arms=(replace(uneven.arms[0], weight=0.25), replace(uneven.arms[1], weight=0.75)))
    rows = pd.DataFrame([{"arm": "control", "users": 2500, "primary": 250},
                         {"arm": "treatment", "users": 7500, "primary": 750}])
    result = analyze(uneven, rows, aggregated=True, sampler=EXACT)
    [overall] = srm_checks(result.stats["primary"], uneven, 0.001)
    assert overall.passed and overall.value == "p = 1"            # exactly the planned 25% / 75%


def test_a_secondary_metrics_failed_fit_is_reported_and_blocks_nothing():
    rows = []
    for arm, factor in (("control", 1.0), ("treatment", 1.05)):
        rows.append({"arm": arm, "segment": "all", "users": 100_000, "primary": round(10_000 * factor),
                     "guardrail": 1000, "other": 5000})
    spec = make_spec([{"name": "primary", "family": "conversion", "column": "primary"},
                      {"name": "guardrail", "family": "conversion", "column": "guardrail", "direction": "decrease",
                       "role": "guardrail", "margin": 0.1},
                      {"name": "other", "family": "conversion", "column": "other", "role": "secondary"}],
                     segments=("segment",))
    result = analyze(spec, pd.DataFrame(rows), aggregated=True, sampler=EXACT)
    bad = Diagnostics(max_rhat=1.05, min_ess_bulk=120, min_ess_tail=300, divergences=3, chains=4, draws=1000)
    fits = {name: replace(fit, diagnostics=bad) if name == "other" else fit for name, fit in result.fits.items()}
    healthy = recommend(result, stage=50, days=7)
    rec = recommend(Analysis(spec, result.stats, fits, result.effects), stage=50, days=7)
    assert rec.action == healthy.action == "ship", rec.text()
    gate = next(r for r in rec.reasons if r.name == "MCMC diagnostics (other)")
    assert not gate.passed and not gate.blocking and "a secondary metric is reported, never decided on" in gate.detail
    for stage in (1, 5, 25):
        assert recommend(Analysis(spec, result.stats, fits, result.effects), stage=stage, days=1).action == "advance"


def test_segment_harm_is_split_over_every_segment_and_primary():
    """With 3 segments and 2 primaries a segment is flagged when P(a primary is worse there) >= 1 - 0.05 / 6
    (99.17%): segment c, between 96.7% and 99.17%, is not flagged."""
    rows = []
    for segment, treated in (("a", 1000), ("b", 1000), ("c", 915)):
        rows += [{"arm": "control", "segment": segment, "users": 10_000, "primary": 1000, "other": 1000,
                  "guardrail": 100},
                 {"arm": "treatment", "segment": segment, "users": 10_000, "primary": treated, "other": 1000,
                  "guardrail": 100}]
    spec = make_spec([{"name": "primary", "family": "conversion", "column": "primary"},
                      {"name": "other", "family": "conversion", "column": "other"},
                      {"name": "guardrail", "family": "conversion", "column": "guardrail", "direction": "decrease",
                       "role": "guardrail", "margin": 0.1}], segments=("segment",))
    result = analyze(spec, pd.DataFrame(rows), aggregated=True, sampler=EXACT)
    harm = 1 - next(r for r in result.effects["primary"].rows if r.segment == "c" and r.arm == "treatment").p_beat_control
    assert 1 - 0.05 / 1.5 < harm < 1 - 0.05 / 6, harm          # flagged only if the split were not over both
    rec = recommend(result, stage=5, days=3)
    assert not any(r.name == "segments confidently harmed" for r in rec.reasons), rec.text()
