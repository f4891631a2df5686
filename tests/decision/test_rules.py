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


def test_advance_and_ship():
    result = experiment()
    advance = recommend(result, stage=5, days=3)
    assert (advance.action, advance.from_stage, advance.to_stage) == ("advance", 5, 25)
    assert advance.deciding_check.name.startswith("guardrails jointly: P(any beyond margin) at 25% exposure")
    ship = recommend(result, stage=50, days=10)
    assert (ship.action, ship.to_stage) == ("ship", 100)


def test_hold_until_minimum_exposure():
    rec = recommend(experiment(), stage=25, days=1)
    assert rec.action == "hold" and "2 more day(s)" in rec.headline
    assert rec.deciding_check.name == "exposure at 25%" and not rec.deciding_check.passed


def test_hold_while_uncertain_says_how_much_more_is_needed():
    rec = recommend(experiment(n=100_000, lift=0.0), stage=25, days=3)
    assert rec.action == "hold" and "more users" in rec.headline
    loss = next(r for r in rec.reasons if r.name.startswith("expected relative loss at 50% exposure"))
    assert not loss.passed


def test_small_stages_advance_on_little_at_stake():
    """The same uncertain data that cannot ship can advance from 1% to 5%: the loss is weighted by exposure."""
    result = experiment(n=20_000, lift=0.03)
    first = recommend(result, stage=1, days=2)
    assert first.action == "advance"
    assert recommend(result, stage=50, days=10).action != "ship"


def test_rollback_on_guardrail_harm():
    rec = recommend(experiment(guardrail_lift=0.4), stage=5, days=3)
    assert rec.action == "rollback" and rec.to_stage == 0
    assert rec.deciding_check.name == "guardrails jointly: P(any harm beyond margin)"


def test_rollback_on_primary_harm():
    rec = recommend(experiment(lift=-0.05), stage=5, days=3)
    assert rec.action == "rollback" and rec.deciding_check.name.startswith("primary primary: P(beat control)")


def test_stop_for_no_effect():
    rec = recommend(experiment(n=4_000_000, lift=0.0), stage=50, days=10)
    assert rec.action == "stop_no_effect" and rec.deciding_check.name.startswith("futility")


def test_every_action_is_reachable():
    seen = {recommend(experiment(), 5, 3).action, recommend(experiment(), 50, 10).action,
            recommend(experiment(), 25, 1).action, recommend(experiment(lift=-0.05), 5, 3).action,
            recommend(experiment(n=4_000_000, lift=0.0), 50, 10).action}
    assert seen == set(ACTIONS)


def test_sample_ratio_mismatch_blocks_whatever_the_effects():
    rec = recommend(experiment(split=(0.52, 0.48)), stage=50, days=10)
    assert rec.action == "hold" and "bad data" in rec.headline
    failed = [r for r in rec.reasons if not r.passed]
    assert failed and all(r.blocking for r in failed) and failed[0].name.startswith("sample ratio")


def test_failed_diagnostics_block_whatever_the_effects():
    result = experiment()
    bad = Diagnostics(max_rhat=1.05, min_ess_bulk=120, min_ess_tail=300, divergences=3, chains=4, draws=1000)
    fits = {name: replace(fit, diagnostics=bad) if name == "primary" else fit for name, fit in result.fits.items()}
    rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=50, days=10)
    assert rec.action == "hold" and "cannot advance on bad data" in rec.headline
    assert any(r.name == "MCMC diagnostics (primary)" and not r.passed and r.blocking for r in rec.reasons)


def test_a_sound_guardrail_fit_can_still_roll_back_when_another_fit_failed():
    result = experiment(guardrail_lift=0.4)
    bad = Diagnostics(max_rhat=1.05, min_ess_bulk=120, min_ess_tail=300, divergences=3, chains=4, draws=1000)
    fits = {name: replace(fit, diagnostics=bad) if name == "primary" else fit for name, fit in result.fits.items()}
    rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=5, days=3)
    assert rec.action == "rollback"
    fits = {name: replace(fit, diagnostics=bad) if name != "primary" else fit for name, fit in result.fits.items()}
    rec = recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=5, days=3)
    assert rec.action == "hold"
    unused = [r for r in rec.reasons if r.value == "not evaluated"]
    assert unused and all(r.blocking and not r.passed for r in unused)
    fits = {name: replace(fit, diagnostics=bad) for name, fit in result.fits.items()}
    assert recommend(Analysis(result.spec, result.stats, fits, result.effects), stage=5, days=3).action == "hold"


def test_decrease_is_good_primary():
    better = recommend(experiment(lift=-0.05, primary_direction="decrease"), stage=5, days=3)
    worse = recommend(experiment(lift=0.05, primary_direction="decrease"), stage=5, days=3)
    assert better.action == "advance" and worse.action == "rollback"


def test_confidently_harmed_segment_gets_a_targeted_rollout():
    rec = recommend(experiment(segments={"a": 0.08, "b": 0.08, "c": -0.06}), stage=5, days=3)
    flagged = [r for r in rec.reasons if r.name == "segments confidently harmed"]
    assert flagged and flagged[0].value == "c"
    assert rec.action == "advance" and "exclude c" in rec.headline and rec.targeted_segments == ("a", "b")


def test_unknown_stage_is_refused():
    with pytest.raises(SpecError, match="stage 10% is not in the ramp plan"):
        recommend(experiment(), stage=10, days=3)


def test_srm_p_value_matches_scipy():
    assert srm_p_value([5100, 4900], [0.5, 0.5]) == pytest.approx(st.chisquare([5100, 4900]).pvalue)
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
    rate = ships / runs
    risk = 1 - spec().decision.ship_beat
    # below the configured risk, allowing two Monte Carlo standard errors of the 300-run estimate
    assert rate < risk + 2 * np.sqrt(risk * (1 - risk) / runs), rate
