"""The credible interval every table uses is ArviZ's highest-density interval."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayes_ab.intervals import hdi


@pytest.mark.parametrize("draws", [
    np.random.default_rng(1).normal(0.03, 0.01, 4000),
    np.random.default_rng(2).lognormal(0.0, 1.0, 4001),        # skewed: the HDI is not the central interval
    np.random.default_rng(3).integers(0, 5, 1000).astype(float),  # ties
    np.array([1.0, 2.0]),
])
@pytest.mark.parametrize("prob", [0.5, 0.9, 0.95])
def test_hdi_is_arviz_hdi(draws, prob):
    assert hdi(draws, prob) == tuple(float(x) for x in az.hdi(draws, hdi_prob=prob))


def test_non_finite_draws_are_left_out_and_too_few_give_nan():
    draws = np.r_[np.random.default_rng(4).normal(size=500), np.nan, np.inf]
    assert hdi(draws, 0.9) == hdi(draws[np.isfinite(draws)], 0.9)
    assert all(np.isnan(hdi(np.array([1.0, np.nan]), 0.9)))
    assert hdi(np.array([3.0, 1.0, 2.0]), 1.0) == (1.0, 3.0)
