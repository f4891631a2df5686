"""Beta-Binomial closed forms against independent numerical integration and simulation."""

import numpy as np
import pytest
from scipy import stats as st

from bayes_ab.families.conversion import sample_conversion
from bayes_ab.models.conjugate import beta_posterior, prob_beta_greater, prob_beta_greater_numeric
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.spec import SamplerSettings

from conftest import make_spec


def grid_prob_greater(a_t, b_t, a_c, b_c, points=400_001):
    """P(p_t > p_c) = integral of f_c(x) * (1 - F_t(x)), by the trapezoid rule on a dense grid."""
    lo = min(st.beta(a_c, b_c).ppf(1e-10), st.beta(a_t, b_t).ppf(1e-10))
    hi = max(st.beta(a_c, b_c).isf(1e-10), st.beta(a_t, b_t).isf(1e-10))
    x = np.linspace(lo, hi, points)
    return float(np.trapezoid(st.beta(a_c, b_c).pdf(x) * st.beta(a_t, b_t).sf(x), x))


CASES = [
    (3, 10, 2, 12),
    (41, 960, 30, 971),
    # Cookie Cats retention_7 sized, flat prior
    beta_posterior(8279, 45489) + beta_posterior(8502, 44700),
]


@pytest.mark.parametrize("a_t,b_t,a_c,b_c", CASES)
def test_closed_form_matches_numerical_integration(a_t, b_t, a_c, b_c):
    assert prob_beta_greater(a_t, b_t, a_c, b_c) == pytest.approx(grid_prob_greater(a_t, b_t, a_c, b_c), abs=1e-6)


@pytest.mark.parametrize("a_t,b_t,a_c,b_c", CASES[:2] + [(3.5, 10.2, 2.7, 12.0)])
def test_closed_form_matches_simulation(a_t, b_t, a_c, b_c):
    rng = np.random.default_rng(1)
    n = 400_000
    mc = np.mean(rng.beta(a_t, b_t, n) > rng.beta(a_c, b_c, n))
    exact = prob_beta_greater(a_t, b_t, a_c, b_c)
    assert abs(exact - mc) < 4 * np.sqrt(exact * (1 - exact) / n) + 1e-9


def test_numeric_path_agrees_with_closed_form():
    a_t, b_t, a_c, b_c = CASES[1]
    assert prob_beta_greater_numeric(a_t, b_t, a_c, b_c) == pytest.approx(prob_beta_greater(a_t, b_t, a_c, b_c),
                                                                          abs=1e-8)


def test_conjugate_draws_have_beta_moments():
    stats = conversion_stats(["a", "b"], ["s1", "s2"], np.array([[100, 400], [120, 380]]),
                             np.array([[10, 80], [30, 50]]), "m")
    draws = sample_conversion(stats, make_spec().metrics[0], SamplerSettings(draws=20_000, chains=2, seed=4))
    mean = draws.posterior["mean"].values.reshape(-1, 2, 2)
    a, b = beta_posterior(stats["successes"].values, stats["n"].values)
    expected_mean = a / (a + b)
    expected_sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    n = mean.shape[0]
    assert np.all(np.abs(mean.mean(axis=0) - expected_mean) < 4 * expected_sd / np.sqrt(n))
    assert np.allclose(mean.std(axis=0), expected_sd, rtol=0.03)
