"""The novelty model's posterior against an independent computation, and its behaviour on known truths."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bayes_ab.novelty.model import (CALENDAR_SD_SCALE, DEVIATION_SD, HALF_LIFE_LOG_SD, HALF_LIFE_MEDIAN_WEEKS, PRIOR_SD,
                                    CellLifts,
                                    decay, posterior)

COHORT = np.array([0, 0, 0, 1, 1, 2])
AGE = np.array([0, 1, 2, 0, 1, 0])


def cells(truth_tau, truth_delta, half_life, sd, seed, calendar_shift=None):
    rng = np.random.default_rng(seed)
    V = np.diag(np.full(len(AGE), sd ** 2)) + 0.3 * sd ** 2 * (COHORT[:, None] == COHORT[None, :]) * (1 - np.eye(len(AGE)))
    mean = truth_tau + truth_delta * decay(AGE, half_life)
    if calendar_shift is not None:
        mean = mean + calendar_shift[COHORT + AGE]
    return CellLifts(COHORT, AGE, mean + rng.multivariate_normal(np.zeros(len(AGE)), V), V)


def importance_sampled(data: CellLifts, n: int, seed: int):
    """Posterior means by weighting draws from the prior with the likelihood: no Gaussian algebra, no grid."""
    rng = np.random.default_rng(seed)
    h = sps.lognorm(s=HALF_LIFE_LOG_SD, scale=HALF_LIFE_MEDIAN_WEEKS).rvs(n, random_state=rng)
    s = np.abs(rng.normal(0, CALENDAR_SD_SCALE, n))
    tau, delta = rng.normal(0, PRIOR_SD, n), rng.normal(0, DEVIATION_SD, n)
    calendar = data.cohort + data.age
    weeks = np.unique(calendar)
    eta = rng.normal(0, 1, (n, len(weeks))) * s[:, None]
    mu = tau[:, None] + delta[:, None] * decay(data.age[None, :], h[:, None]) + eta[:, np.searchsorted(weeks, calendar)]
    residual = data.log_lift[None, :] - mu
    log_lik = -0.5 * np.einsum("ni,ij,nj->n", residual, np.linalg.inv(data.covariance), residual)
    w = np.exp(log_lik - log_lik.max())
    w /= w.sum()
    return {"tau_inf": tau, "delta": delta, "novel": (delta > 0).astype(float)}, w


@pytest.mark.parametrize("seed", [1, 2])
def test_grid_posterior_matches_importance_sampling_from_the_prior(seed):
    data = cells(0.015, 0.06, 1.0, 0.02, seed)
    post = posterior(data, 200_000, np.random.default_rng(seed))
    draws, w = importance_sampled(data, 1_500_000, seed + 10)
    ess = 1.0 / np.sum(w ** 2)
    assert ess > 200
    for name, grid_values in (("tau_inf", post.tau_inf), ("delta", post.delta), ("novel", post.delta > 0)):
        expected = float(np.sum(w * draws[name]))
        spread = np.sqrt(np.sum(w * (draws[name] - expected) ** 2))
        tolerance = 4 * spread / np.sqrt(ess) + 4 * np.std(grid_values) / np.sqrt(len(grid_values)) + 1e-3
        assert abs(np.mean(grid_values) - expected) < tolerance, name


def test_weekly_effects_follow_the_fitted_path_and_the_grid_is_fine_enough():
    data = cells(0.015, 0.08, 1.0, 0.005, seed=4)
    post = posterior(data, 20_000, np.random.default_rng(4), weeks=5)
    assert post.weekly.shape == (20_000, 5)
    np.testing.assert_allclose(post.weekly[:, 0], post.tau_inf + post.delta)
    assert post.heaviest_grid_point < 0.2
    assert np.mean(post.delta > 0) > 0.99           # a clear early excess is found


def test_mismatched_sizes_are_refused():
    with pytest.raises(ValueError):
        CellLifts(np.array([0]), np.array([0, 1]), np.array([0.1]), np.eye(1))
