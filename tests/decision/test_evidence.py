"""What the rule reads of a metric, by the definitions in bayes_ab.decision.evidence, on hand-written draws."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ab.decision.evidence import (evidence_from_draws, evidence_from_fit, harm_draws, joint_within_margin,
                                        relative_lift_draws, relative_worsening)
from bayes_ab.effects.compute import effective_draws, probability_mcse
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.posterior import fit
from bayes_ab.spec import Metric, SamplerSettings

UP = Metric(name="m", family="conversion", column="m", margin=0.5, rope=0.1)
DOWN = Metric(name="m", family="conversion", column="m", direction="decrease", margin=0.5, rope=0.1)


def test_worsening_is_relative_signed_by_direction_and_undefined_without_a_control_mean():
    control, arm = np.array([1.0, 2.0, 0.0, 4.0]), np.array([0.5, 3.0, 1.0, 4.0])
    np.testing.assert_allclose(relative_worsening(UP, control, arm), [0.5, -0.5, np.nan, 0.0])
    np.testing.assert_allclose(relative_worsening(DOWN, control, arm), [-0.5, 0.5, np.nan, 0.0])


def test_margins_and_the_severe_margin_are_strict():
    # worse by exactly the margin (0.5, exact in binary) is not beyond it; worse by more is
    control, arm = np.ones(4), np.array([0.5, 0.25, 1.5, 1.0])
    e = evidence_from_draws(UP, control, arm, severe_margin=0.5)
    np.testing.assert_array_equal(e.beyond_margin, [False, True, False, False])
    assert e.p_beyond_margin == 0.25 and e.p_severe == 0.25
    assert e.p_beat == 0.25 and e.p_rope == 0.25            # one tie (arm == control) is no win, and in the ROPE
    assert e.mcse("p_beat") == pytest.approx(probability_mcse(0.25, 4)) and e.ess["p_beat"] == 4


def test_the_errors_of_the_evidence_follow_each_indicators_own_chains():
    rng = np.random.default_rng(4)
    chains, length, phi = 2, 2000, 0.9
    z = np.empty((chains, length))
    z[:, 0] = rng.normal(size=chains)
    for t in range(1, length):
        z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=chains)
    control = np.full(chains * length, 1.0)
    arm = 1.0 + 0.1 * z.ravel()                               # relative lift 0.1 z: sometimes worse, sometimes better
    e = evidence_from_draws(UP, control, arm, severe_margin=0.1, chains=chains)
    lift = arm - 1.0
    assert e.ess["p_beat"] == pytest.approx(effective_draws(lift > 0, chains))
    assert e.ess["p_rope"] == pytest.approx(effective_draws(np.abs(lift) < 0.1, chains))
    assert e.ess["p_severe"] == pytest.approx(effective_draws(-lift > 0.1, chains))
    assert e.ess["p_beat"] < 0.5 * chains * length          # autocorrelated: fewer than drawn
    down = evidence_from_draws(DOWN, control, arm, severe_margin=0.1, chains=chains)
    assert down.p_beat == pytest.approx(np.mean(lift < 0)) and down.p_severe == pytest.approx(np.mean(lift > 0.1))


def test_an_exact_probability_has_no_monte_carlo_error():
    e = evidence_from_draws(UP, np.ones(8), np.full(8, 1.2), severe_margin=0.1)
    assert e.mcse("p_beyond_margin") == pytest.approx(0.0) and e.mcse("p_beat") == 0.0
    exact = type(e)(**{**e.__dict__, "ess": {}})
    assert exact.mcse("p_beat") == 0.0


def test_guardrails_are_joined_draw_by_draw_over_the_draws_all_have():
    a = np.array([True, False, False, False, True, True])
    b = np.array([False, False, True, False])
    guardrails = [evidence_from_draws(UP, np.ones(1), np.ones(1), 0.1) for _ in range(2)]
    guardrails = [type(g)(**{**g.__dict__, "beyond_margin": flags}) for g, flags in zip(guardrails, (a, b))]
    assert joint_within_margin(guardrails) == 0.5          # draws 0-3: within in draws 1 and 3
    assert joint_within_margin([]) == 1.0


def test_the_lift_and_harm_draws_of_a_fit_are_its_overall_means():
    stats = conversion_stats(["control", "b"], ["s1", "s2"], np.array([[1000, 3000], [1000, 3000]]),
                             np.array([[100, 330], [90, 360]]), "m")
    result = fit(stats, Metric(name="m", family="conversion", column="m", margin=0.05),
                 SamplerSettings(draws=500, chains=2, seed=2, backend="conjugate"))
    overall = result.overall_mean.transpose("chain", "draw", "arm").values.reshape(-1, 2)
    np.testing.assert_allclose(relative_lift_draws(result, "b"), overall[:, 1] / overall[:, 0] - 1)
    np.testing.assert_array_equal(harm_draws(result, "b"), 1 - overall[:, 1] / overall[:, 0] > 0.05)
    e = evidence_from_fit(result, "b", 0.1)
    assert e.p_beat == pytest.approx(np.mean(overall[:, 1] > overall[:, 0]))
