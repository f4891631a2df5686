"""Mid-test outlook: P(the rule leaves hold within N more days) from the current posterior."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ab.analysis import analyze_stats
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.families.count import count_stats
from bayes_ab.decision import recommend
from bayes_ab.errors import SpecError
from bayes_ab.planning import decision_outlook
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

CONJUGATE = SamplerSettings(draws=1000, chains=2, backend="conjugate", seed=1)
RAMP = [{"percent": 5, "min_days": 3, "min_users": 1000}, {"percent": 50, "min_days": 2, "min_users": 1000},
        {"percent": 100}]


def conversion_analysis(n, successes, ramp=RAMP):
    spec = make_spec(metrics=[{"name": "conv", "family": "conversion", "column": "conv", "role": "primary"}],
                     ramp=ramp)
    stats = conversion_stats(spec.arm_names, ["all"], np.array([[n[0]], [n[1]]]),
                             np.array([[successes[0]], [successes[1]]]), "conv")
    return analyze_stats(spec, {"conv": stats}, sampler=CONJUGATE)


def test_a_hold_for_exposure_alone_is_decided_exactly_when_the_minimum_days_pass():
    """Clearly better with plenty of users, held only by the 3-day minimum at 5%: the next look that
    can decide is the second day ahead; none can decide on the first."""
    analysis = conversion_analysis((20_000, 20_000), (2_000, 2_600))
    assert recommend(analysis, 5, 1).action == "hold"
    outlook = decision_outlook(analysis, 5, 1, 10_000, days=4, draws=60)
    assert outlook.probability(1) == 0.0
    assert outlook.probability(2) >= 0.95
    assert outlook.probability(2, ("advance",)) >= 0.95


def test_more_traffic_brings_the_decision_sooner():
    analysis = conversion_analysis((3_000, 3_000), (300, 318))
    low = decision_outlook(analysis, 50, 2, 2_000, days=7, draws=120, seed=3)
    high = decision_outlook(analysis, 50, 2, 200_000, days=7, draws=120, seed=3)
    gap = high.probability(7) - low.probability(7)
    assert gap > 3 * np.hypot(low.standard_error(7), high.standard_error(7)), (low.text(), high.text())
    assert all(low.probability(d) <= low.probability(d + 1) for d in range(1, 7))
    assert (high.days_needed() or 99) <= (low.days_needed() or 99)
    assert "If the test stays at 50% (about 200,000 users a day, both arms)" in high.text()
    assert "If the test stays at 50% (about 2,000 users a day, both arms)" in low.text()
    assert len(high.to_pandas()) == 7


def test_the_outlook_follows_the_posterior_direction():
    """Strong evidence of harm: a continuation almost always ends in rollback, never ship."""
    analysis = conversion_analysis((40_000, 40_000), (4_000, 3_600))
    outlook = decision_outlook(analysis, 50, 0, 50_000, days=5, draws=60)
    assert outlook.probability(5, ("ship",)) == 0.0
    assert outlook.probability(5, ("rollback",)) > 0.9


@pytest.mark.parametrize("treatment_mean, expected", [(2.6, "ship"), (1.5, "rollback")])
def test_counts_continue_from_their_histograms_toward_what_they_show(treatment_mean, expected):
    """A count primary clearly better (or worse) than control: continuing from its histograms, the outlook
    almost always ends in that decision and never in the opposite one."""
    spec = make_spec(metrics=[{"name": "trades", "family": "count", "column": "t", "role": "primary"}], ramp=RAMP)
    rng = np.random.default_rng(0)
    hist = np.stack([np.bincount(rng.negative_binomial(1.0, 1 / (1 + m), 4000), minlength=40)[:40]
                     for m in (2.0, treatment_mean)])[:, None, :]
    stats = count_stats(spec.arm_names, ["all"], np.arange(40), hist, "trades")
    analysis = analyze_stats(spec, {"trades": stats}, sampler=CONJUGATE)
    outlook = decision_outlook(analysis, 50, 7, 20_000, days=3, draws=20)
    opposite = "rollback" if expected == "ship" else "ship"
    assert outlook.draws == 20
    assert outlook.probability(3, (expected,)) >= 0.9 and outlook.probability(3, (opposite,)) == 0.0


def test_bad_input_is_named():
    analysis = conversion_analysis((1000, 1000), (100, 100))
    with pytest.raises(SpecError, match="stage 7% is not in the ramp plan"):
        decision_outlook(analysis, 7, 0, 1000)
    with pytest.raises(SpecError, match="daily_users must be an integer >= 1, got 0"):
        decision_outlook(analysis, 5, 0, 0)
