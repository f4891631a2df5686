"""The vectorised R-hat and ESS against ArviZ's element-by-element implementation of the same definitions."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayes_ab.models.convergence import ess_bulk, ess_tail, rank_rhat


def chains_of(kind: str, rng: np.random.Generator, chains: int = 4, draws: int = 501) -> np.ndarray:
    """(chain, draw) draws: independent, strongly autocorrelated, non-mixing, heavy-tailed or constant."""
    if kind == "iid":
        return rng.normal(size=(chains, draws))
    if kind == "ar1":
        x = np.zeros((chains, draws))
        for t in range(1, draws):
            x[:, t] = 0.95 * x[:, t - 1] + rng.normal(size=chains)
        return x
    if kind == "stuck":
        return rng.normal(size=(chains, draws)) + np.arange(chains)[:, None] * 2.0
    if kind == "cauchy":
        return rng.standard_cauchy(size=(chains, draws))
    if kind == "discrete":
        return rng.integers(0, 3, size=(chains, draws)).astype(float)
    return np.full((chains, draws), 1.5)


KINDS = ("iid", "ar1", "stuck", "cauchy", "discrete")


@pytest.mark.parametrize("draws", [500, 501])
def test_matches_arviz_on_well_and_badly_mixing_chains(draws):
    rng = np.random.default_rng(4)
    series = [chains_of(kind, rng, draws=draws) for kind in KINDS]
    stacked = np.stack(series, axis=-1)
    got_rhat, got_bulk, got_tail = rank_rhat(stacked), ess_bulk(stacked), ess_tail(stacked)
    for k, x in enumerate(series):
        np.testing.assert_allclose(got_rhat[k], az.rhat(x, method="rank"), rtol=1e-9)
        np.testing.assert_allclose(got_bulk[k], az.ess(x, method="bulk"), rtol=1e-9)
        np.testing.assert_allclose(got_tail[k], az.ess(x, method="tail"), rtol=1e-9)
    assert got_rhat[2] > 1.5 and got_rhat[0] < 1.01        # the checks can fail: a stuck chain is caught


def test_constant_draws_count_every_draw():
    x = chains_of("constant", np.random.default_rng(0))[..., None]
    assert ess_bulk(x)[0] == pytest.approx(az.ess(x[..., 0], method="bulk"))


def test_the_fft_length_is_scipys_without_importing_scipy_fft():
    from scipy.fft import next_fast_len as scipys

    from bayes_ab.models.convergence import next_fast_len

    targets = list(range(1, 5001)) + [8_191, 20_000, 123_457, 200_001, 1_000_003]
    assert [next_fast_len(t) for t in targets] == [scipys(t) for t in targets]
