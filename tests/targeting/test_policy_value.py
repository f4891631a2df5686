"""Doubly-robust scores, policies and the Bayesian bootstrap, checked against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_ab.targeting.crossfit import CrossFit
from bayes_ab.targeting.value import (bayesian_bootstrap, candidates, difference_in_means, dr_scores, evaluate,
                                      ipw_scores, segment_helps, top_share)


def test_dr_score_is_the_closed_form_and_reduces_to_ipw_without_models():
    y = np.array([1.0, 0.0, 3.0, 2.0])
    t = np.array([True, False, True, False])
    fit = CrossFit(np.zeros(4, int), np.array([0.5, 0.2, 1.0, 1.5]), np.array([0.9, 0.4, 2.0, 1.0]))
    e = 0.4
    expected = [0.9 - 0.5 + (1 - 0.9) / e, 0.4 - 0.2 - (0 - 0.2) / (1 - e), 2.0 - 1.0 + (3 - 2.0) / e,
                1.0 - 1.5 - (2 - 1.5) / (1 - e)]
    assert np.allclose(dr_scores(y, t, e, fit), expected)
    zero = CrossFit(np.zeros(4, int), np.zeros(4), np.zeros(4))
    assert np.allclose(dr_scores(y, t, e, zero), ipw_scores(y, t, e))
    assert np.allclose(ipw_scores(y, t, e), [1 / e, 0, 3 / e, -2 / (1 - e)])


def test_bayesian_bootstrap_matches_the_mean_and_its_standard_error():
    rng = np.random.default_rng(1)
    values = rng.exponential(2.0, size=(5_000, 1)) ** 1.5        # skewed
    draws = bayesian_bootstrap(values, 4_000, seed=3)[:, 0]
    se = values.std() / np.sqrt(len(values))
    # posterior mean within 4 MC errors (se / sqrt(draws)); sd within 6% (the sd of an sd estimate from 4,000
    # draws is ~1.1%, plus the Bayesian bootstrap's O(1/n) difference from the plug-in se)
    assert abs(draws.mean() - values.mean()) < 4 * se / np.sqrt(4_000)
    assert draws.std() == pytest.approx(se, rel=0.06)


def test_bootstrap_chunks_give_the_same_draws_as_one_pass(monkeypatch):
    import bayes_ab.targeting.value as value
    values = np.random.default_rng(2).normal(size=(300, 2))
    whole = bayesian_bootstrap(values, 50, seed=9)
    monkeypatch.setattr(value, "BOOTSTRAP_CELLS", 300 * 7)      # 7 draws per chunk
    assert np.allclose(bayesian_bootstrap(values, 50, seed=9).mean(), whole.mean(), atol=0.2)
    assert bayesian_bootstrap(values, 50, seed=9).shape == (50, 2)


def test_top_share_treats_the_best_ranked_share_of_each_fold():
    uplift = np.array([5, 1, 4, 2, 3, 9, 8, 0, 7, 6], float)
    fold = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    treat = top_share(uplift, fold, 0.4)
    assert treat.tolist() == [True, False, True, False, False, True, True, False, False, False]
    assert not top_share(uplift, fold, 0.01).any()


def test_segment_helps_reads_only_the_other_folds():
    rng = np.random.default_rng(5)
    n = 4_000
    segment = rng.choice(np.array(["a", "b", "c"]), n)
    fold = rng.integers(0, 4, n)
    scores = rng.normal(0.1 * (segment == "a"), 1.0)
    first = segment_helps(scores, segment, fold)
    changed = scores.copy()
    changed[fold == 2] += 50.0            # fold 2's own scores change...
    second = segment_helps(changed, segment, fold)
    assert np.allclose(first[fold == 2], second[fold == 2])      # ...and its P(helps) does not
    assert not np.allclose(first[fold != 2], second[fold != 2])


def test_segment_helps_pools_segments_that_differ_by_noise_alone():
    rng = np.random.default_rng(6)
    n = 20_000
    segment = rng.choice(np.array([f"s{i}" for i in range(40)]), n)
    fold = rng.integers(0, 5, n)
    scores = rng.normal(0.0, 1.0, n)
    p = segment_helps(scores, segment, fold)
    # no segment differs: pooled, the segments' P(helps) sit close together; each alone (500 users, se 0.045)
    # they would spread from a few percent to over 90% by noise
    from scipy.stats import norm
    unpooled = [norm.cdf(scores[segment == s].mean() / (scores[segment == s].std() / np.sqrt(np.sum(segment == s))))
                for s in np.unique(segment)]
    pooled_spread = np.mean([np.ptp(p[fold == k]) for k in range(5)])
    assert np.ptp(unpooled) > 0.8
    assert pooled_spread < np.ptp(unpooled) / 2


def test_difference_in_means_and_policy_values_agree_on_a_randomised_toy():
    rng = np.random.default_rng(7)
    n = 20_000
    treated = rng.random(n) < 0.5
    x = rng.random(n)
    tau = np.where(x > 0.5, 0.2, -0.1)
    y = rng.normal(1.0 + treated * tau, 1.0)
    fold = np.zeros(n, int)
    fit = CrossFit(fold, np.full(n, 1.0), 1.0 + tau)         # the true models
    scores = dr_scores(y, treated, treated.mean(), fit)
    policies = candidates(tau, fold, (0.5,), 1.0)
    table = evaluate(scores, policies, tau, fold, metric="m", unit="per user", scale=1.0, sign=1.0,
                     estimator="dr", level=0.9, draws=2_000, seed=1, randomised=(y, treated))
    top = table.policy("top_0.5")
    truth = np.mean((x > 0.5) * tau)          # 0.1
    sd = (top.high - top.low) / 3.29
    assert abs(top.value - truth) < 4 * sd
    assert abs(top.difference - truth) < 4 * sd
    assert top.p_better_than_all > 0.99 and table.best().name == "top_0.5"
    assert table.policy("treat_none").value == 0 and table.policy("treat_none").difference == 0
    assert table.curve.qini[0] > 0 and table.curve.p_qini_positive > 0.99
    assert difference_in_means(y, treated, np.ones(n, bool)) == pytest.approx(
        y[treated].mean() - y[~treated].mean())
    assert table.assignments["top_0.5"].sum() == n // 2


def test_lower_is_better_flips_the_ranking_and_the_comparisons():
    rng = np.random.default_rng(8)
    n = 10_000
    treated = rng.random(n) < 0.5
    tau = np.where(rng.random(n) > 0.5, -0.3, 0.1)        # half the users see the metric fall (good)
    y = rng.normal(2.0 + treated * tau, 1.0)
    fold = np.zeros(n, int)
    fit = CrossFit(fold, np.full(n, 2.0), 2.0 + tau)
    table = evaluate(dr_scores(y, treated, treated.mean(), fit), candidates(tau, fold, (0.5,), -1.0), tau, fold,
                     metric="latency", unit="ms", scale=1.0, sign=-1.0, estimator="dr", level=0.9, draws=1_000, seed=2)
    assert table.best().name == "top_0.5"
    assert table.policy("top_0.5").value < 0 and table.policy("top_0.5").p_better_than_all > 0.99
