"""Every quantity of the effects table against a direct computation from the same draws, written out here.

The table is computed by :func:`bayes_ab.effects.compute_effects`; the reference below is written from the
definitions in the docstring of :class:`bayes_ab.effects.ArmEffect`, without calling any bayes-ab function on
the draws, for three arms in two segments and for both directions. Both read the same draws, so they must
agree to floating-point precision: any slip in a formula (a loss taken on the absolute instead of the relative
difference, the best arm chosen against the metric's direction) shows as a difference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayes_ab.effects import compute_effects
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.intervals import CredibleLevel, IntervalKind, kind_of
from bayes_ab.posterior import fit
from bayes_ab.spec import Metric, SamplerSettings

ARMS = ["control", "b", "c"]
DRAWS = SamplerSettings(draws=3000, chains=2, seed=21, backend="conjugate")
INTERVAL = 0.8


def reference_hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    """The narrowest interval holding floor(prob * n) + 1 of the sorted finite draws (first if tied)."""
    x = np.sort(values[np.isfinite(values)])
    k = math.floor(prob * len(x))
    best = min(range(len(x) - k), key=lambda i: (x[i + k] - x[i], i))
    return float(x[best]), float(x[best + k])


def reference_eti(values: np.ndarray, prob: float) -> tuple[float, float]:
    """The equal-tailed interval: the sorted finite draws read at (n - 1) q, interpolated, q = (1 -+ prob) / 2."""
    x = np.sort(values[np.isfinite(values)])
    ends = []
    for q in ((1 - prob) / 2, (1 + prob) / 2):
        at = (len(x) - 1) * q
        i = math.floor(at)
        ends.append(float(x[i] + (at - i) * (x[min(i + 1, len(x) - 1)] - x[i])))
    return ends[0], ends[1]


def reference_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    return (reference_hdi if kind_of(level) == IntervalKind.HDI else reference_eti)(values, level)


def reference_rows(draws: np.ndarray, increase_is_good: bool, rope: float,
                   margin: float = 0.02, interval: float = INTERVAL) -> dict[str, dict[str, float]]:
    """Per arm, from draws of every arm's mean (draws x arms), the table's quantities by their definitions."""
    good = draws if increase_is_good else -draws          # larger is better on this scale
    control = draws[:, 0]
    best_goodness = good.max(axis=1)
    rows = {}
    for k, arm in enumerate(ARMS):
        value = draws[:, k]
        row = {"mean": float(np.median(value)), "p_best": float(np.mean(good.argmax(axis=1) == k)),
               "loss_vs_best_abs": float(np.mean(best_goodness - good[:, k]))}
        row["mean_low"], row["mean_high"] = reference_interval(value, interval)
        if k > 0:
            absolute, relative = value - control, value / control - 1
            better_abs = absolute if increase_is_good else -absolute      # > 0 when the arm is better
            better_rel = relative if increase_is_good else -relative
            row.update({
                "abs_lift": float(np.median(absolute)), "rel_lift": float(np.median(relative)),
                "p_beat_control": float(np.mean(better_abs > 0)),
                "loss_ship_abs": float(np.mean(np.clip(-better_abs, 0, None))),
                "loss_ship_rel": float(np.mean(np.clip(-better_rel, 0, None))),
                "loss_keep_abs": float(np.mean(np.clip(better_abs, 0, None))),
                "loss_keep_rel": float(np.mean(np.clip(better_rel, 0, None))),
                "p_rope": float(np.mean(np.abs(relative) < rope)),
                "p_beyond_margin": float(np.mean(-better_rel > margin)),
            })
            row["abs_low"], row["abs_high"] = reference_interval(absolute, interval)
            row["rel_low"], row["rel_high"] = reference_interval(relative, interval)
        rows[arm] = row
    return rows


@pytest.fixture(scope="module")
def stats():
    # arm b a little better than control, arm c clearly better in segment s1 and worse in s2
    users = np.array([[4000, 2500], [4000, 2500], [4000, 2500]])
    successes = np.array([[400, 300], [430, 305], [470, 270]])
    return conversion_stats(ARMS, ["s1", "s2"], users, successes, "converted")


@pytest.mark.parametrize("direction, interval", [("increase", INTERVAL), ("decrease", INTERVAL),
                                                 ("increase", CredibleLevel(INTERVAL, "hdi"))])
def test_every_quantity_equals_its_definition_overall_and_per_segment(stats, direction, interval):
    metric = Metric(name="converted", family="conversion", column="converted", direction=direction, rope=0.05,
                    margin=0.04)
    result = fit(stats, metric, DRAWS)
    effects = compute_effects(result, interval)
    mean = result.mean.transpose("chain", "draw", "arm", "segment").values.reshape(-1, len(ARMS), 2)
    users = stats["n"].values.sum(axis=0).astype(float)             # segment weights: users, all arms
    overall = (mean * (users / users.sum())).sum(axis=2)
    for segment, draws in (("overall", overall), ("s1", mean[..., 0]), ("s2", mean[..., 1])):
        expected = reference_rows(draws, direction == "increase", 0.05, 0.04, interval)
        for arm in ARMS:
            row = next(r for r in effects.rows if r.segment == segment and r.arm == arm)
            for name, value in expected[arm].items():
                assert getattr(row, name) == pytest.approx(value, rel=1e-9, abs=1e-12), (segment, arm, name)
            if arm == "control":
                assert math.isnan(row.p_beat_control) and math.isnan(row.loss_keep_rel)


def test_the_draws_tell_the_directions_and_the_scales_apart(stats):
    """The check above has teeth on these draws: the best arm flips with the direction, and a loss taken on the
    absolute difference is far from the relative one (the control rate is about 0.1, not 1)."""
    tables = {d: compute_effects(fit(stats, Metric(name="converted", family="conversion", column="converted",
                                                     direction=d), DRAWS), INTERVAL) for d in ("increase", "decrease")}
    best = {d: max(ARMS, key=lambda a: t.overall(a).p_best) for d, t in tables.items()}
    assert best == {"increase": "c", "decrease": "control"}
    row = tables["increase"].overall("c")
    assert row.loss_keep_rel > 5 * row.loss_keep_abs


def test_the_table_names_its_arms_and_its_control(stats):
    effects = compute_effects(fit(stats, Metric(name="converted", family="conversion", column="converted"), DRAWS))
    assert effects.control == "control" and effects.treatments == ("b", "c")
    assert [(r.arm, r.is_control) for r in effects.rows if r.is_overall] == [("control", True), ("b", False),
                                                                            ("c", False)]
    frame = effects.to_pandas()
    assert list(frame.columns[:3]) == ["metric", "segment", "arm"] and set(frame["metric"]) == {"converted"}


def test_the_model_note_says_how_the_posterior_was_computed(stats):
    from dataclasses import replace

    from bayes_ab.families.conversion import conversion_stats

    metric = Metric(name="converted", family="conversion", column="converted")
    closed = compute_effects(fit(stats, metric, DRAWS))
    assert "[conjugate backend: unpooled closed form, " in closed.model_note
    assert "[effect prior" not in closed.model_note and "[exact posterior" not in closed.model_note
    one_segment = conversion_stats(["control", "b"], ["all users"], np.array([[3000], [3000]]),
                                   np.array([[300], [330]]), "converted")
    exact = compute_effects(fit(one_segment, metric, replace(DRAWS, backend="nutpie", chains=4, exact_draws=24_000)))
    assert "[exact posterior by numerical integration, 24,000 independent draws]" in exact.model_note
    assert "conjugate backend" not in exact.model_note


def test_probabilities_are_strict_and_their_errors_follow_their_definitions():
    """Hand-written draws: ties are not wins, the ROPE is open, and with independent draws every Monte Carlo
    error is the textbook one."""
    from bayes_ab.effects.compute import lift_probabilities, probability_mcse

    diff = np.array([0.0, 0.0, 1.0, -1.0, 2.0, -0.5, 0.0, 3.0])
    rel = np.array([0.0, 0.01, 0.1, -0.1, 0.2, -0.05, -0.01, 0.3])
    out = lift_probabilities(diff, rel, 1.0, 0.01, margin=0.05)
    assert out["p_beat_control"] == 3 / 8                       # three strictly positive of eight
    assert out["p_rope"] == 1 / 8                               # |rel| < 0.01: only the exact zero
    assert out["p_beyond_margin"] == 1 / 8                      # worse by more than 5%: -0.1, not the -0.05 tie
    loss = np.maximum(0, -rel)
    assert out["loss_ship_rel_mcse"] == pytest.approx(loss.std() / np.sqrt(8), rel=1e-12)
    assert out["p_beat_control_mcse"] == pytest.approx(np.sqrt(3 / 8 * 5 / 8 / 8), rel=1e-12)
    down = lift_probabilities(diff, rel, -1.0, 0.01, margin=0.05)
    assert down["p_beat_control"] == 2 / 8 and down["loss_keep_rel"] == pytest.approx(np.mean(np.maximum(0, -rel)))
    assert probability_mcse(0.3, 0.5) == pytest.approx(np.sqrt(0.21 / 0.5))     # a fraction of a draw is an ESS
    assert np.isnan(probability_mcse(0.3, 0.0)) and np.isnan(probability_mcse(float("nan"), 100.0))


def test_the_effective_number_of_draws_follows_the_chains():
    from bayes_ab.effects.compute import effective_draws

    rng = np.random.default_rng(3)
    assert effective_draws(rng.normal(size=1000), None) == 1000             # independent draws count as drawn
    assert effective_draws(rng.normal(size=7), 2) == 7                       # too short to estimate: as drawn
    # AR(1) chains with autocorrelation 0.9: ESS = n (1 - phi) / (1 + phi) = n / 19
    phi, chains, length = 0.9, 4, 5000
    z = np.empty((chains, length))
    z[:, 0] = rng.normal(size=chains)
    for t in range(1, length):
        z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=chains)
    assert effective_draws(z.ravel(), chains) == pytest.approx(chains * length / 19, rel=0.2)
    stuck = np.repeat([0.0, 1.0], 4)                                         # exactly 4 draws per chain
    assert effective_draws(stuck, 2) < 8


def test_a_control_mean_of_zero_has_no_relative_lift():
    import xarray as xr

    from bayes_ab.effects.compute import _rows

    draws = np.stack([np.zeros(400), np.linspace(0.0, 0.2, 400)], axis=1).reshape(2, 200, 2)
    mean = xr.DataArray(draws, dims=("chain", "draw", "arm"), coords={"arm": ["control", "b"]})
    metric = Metric(name="converted", family="conversion", column="converted")
    users = xr.DataArray([10, 10], dims="arm")
    row = _rows(mean, metric, 0.9, "s", False, users, users * 0.0)[1]
    assert np.isnan(row.rel_lift) and np.isnan(row.rel_low) and row.abs_lift == pytest.approx(0.1, abs=1e-3)


def test_a_learned_prior_is_named_in_the_note_of_a_model_fit():
    from dataclasses import replace

    from bayes_ab.families.conversion import conversion_stats
    from bayes_ab.metric import EffectPrior, LearnedEffectPrior

    learned = LearnedEffectPrior("normal", 0.0, 0.05, None, 20, "past.yaml", "2026-12-01")
    metric = Metric(name="converted", family="conversion", column="converted", prior=EffectPrior(learned=learned))
    one_segment = conversion_stats(["control", "b"], ["all users"], np.array([[3000], [3000]]),
                                   np.array([[300], [330]]), "converted")
    note = compute_effects(fit(one_segment, metric, replace(DRAWS, backend="nutpie", exact_draws=8000))).model_note
    assert "[effect prior learned from 20 experiments (past.yaml, 2026-12-01)" in note
    closed = compute_effects(fit(one_segment, metric, DRAWS)).model_note
    assert "[effect prior" not in closed               # the closed form has a flat prior: no learned one to name


def test_independent_draws_in_chains_count_fully_and_one_draw_has_no_spread_error():
    from bayes_ab.effects.compute import effective_draws, lift_probabilities

    rng = np.random.default_rng(5)
    assert effective_draws(rng.normal(size=8000), 4) == pytest.approx(8000, rel=0.1)
    single = lift_probabilities(np.array([0.5]), np.array([-0.1]), 1.0, 0.01, margin=0.02)
    assert single["loss_ship_rel_mcse"] == 0.0
