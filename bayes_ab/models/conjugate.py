"""Closed-form posteriors the families' unpooled references are built from (each family's module says
which it uses): Beta posteriors of rates with the exact P(p_t > p_c), flat-prior Student-t draws of means,
and the wrapper that shapes draws like an MCMC fit.

These are the fast path when no pooling is wanted (one segment, quick looks) and the references the
hierarchical models are tested against.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special


from bayes_ab.models.fitdata import FitData
from bayes_ab.models.hierarchy import coords_for
from bayes_ab.sampling import SamplerSettings


def beta_posterior(successes: float, trials: float, prior_a: float = 1.0,
                   prior_b: float = 1.0) -> tuple[float, float]:
    """Parameters ``(a, b)`` of the Beta posterior of a conversion rate."""
    return prior_a + successes, prior_b + trials - successes


def prob_beta_greater(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    """Exact ``P(p_t > p_c)`` for independent ``p_t ~ Beta(a_t, b_t)`` and ``p_c ~ Beta(a_c, b_c)``.

    Uses the closed-form sum (Miller 2015; Cook 2005) over ``a_t`` terms when ``a_t`` is a
    whole number, and one-dimensional numerical integration otherwise.
    """
    if float(a_t).is_integer():
        i = np.arange(int(a_t), dtype=float)
        log_terms = (special.betaln(a_c + i, b_c + b_t) - np.log(b_t + i)
                     - special.betaln(1 + i, b_t) - special.betaln(a_c, b_c))
        return float(np.clip(np.exp(special.logsumexp(log_terms)), 0.0, 1.0))
    return prob_beta_greater_numeric(a_t, b_t, a_c, b_c)


def prob_beta_greater_numeric(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    """``P(p_t > p_c)`` by integrating ``f_c(x) * (1 - F_t(x))`` over the bulk of ``p_c``."""
    from scipy import integrate, stats as st      # scipy.stats takes a second to import: only where used

    control = st.beta(a_c, b_c)
    lo, hi = control.ppf(1e-12), control.isf(1e-12)
    value, _ = integrate.quad(lambda x: control.pdf(x) * st.beta(a_t, b_t).sf(x), lo, hi,
                              limit=200, epsabs=1e-12, epsrel=1e-10)
    return float(np.clip(value, 0.0, 1.0))


def posterior_dataset(stats: xr.Dataset, sampler: SamplerSettings, mean: np.ndarray,
               extra: dict[str, tuple[tuple[str, ...], np.ndarray]] | None = None) -> FitData:
    """Wrap draws of ``mean`` (chain, draw, arm, segment) like an MCMC fit; ``effect`` is arm - control.

    Every family's closed form returns this shape, so effects and decisions read a conjugate posterior
    exactly as they read an MCMC one."""
    effect = mean[:, :, 1:, :] - mean[:, :, :1, :]
    variables = {"mean": (("chain", "draw", "arm", "segment"), mean),
                 "effect": (("chain", "draw", "treatment", "segment"), effect)}
    variables.update(extra or {})
    coords = {"chain": np.arange(sampler.chains), "draw": np.arange(sampler.draws), **coords_for(stats)}
    coords.update({d: stats[d].values for d in ("day",) if d in stats.dims})
    return FitData(posterior=xr.Dataset(variables, coords=coords))


def rate_draws(rng: np.random.Generator, successes: np.ndarray, trials: np.ndarray, size: tuple[int, ...],
               prior_a: float = 1.0, prior_b: float = 1.0) -> np.ndarray:
    """Draws of Beta posteriors of rates, shape ``size + successes.shape`` (array-first: the simulations
    call it on plain arrays, :func:`sample_conversion` on statistics)."""
    a, b = beta_posterior(successes, trials, prior_a, prior_b)
    return rng.beta(a, b, size=size + np.shape(a))


def mean_draws(rng: np.random.Generator, n: np.ndarray, mean: np.ndarray, squares: np.ndarray, dof: np.ndarray,
               size: tuple[int, ...]) -> np.ndarray:
    """Flat-prior Student-t posterior draws of means: centre ``mean``, scale sqrt(``squares`` / dof / n),
    where ``squares`` is the (residual) sum of squared deviations and ``dof`` its degrees of freedom."""
    dof = np.maximum(dof, 1)
    se = np.sqrt(squares / dof / np.where(n > 0, n, np.nan))
    return mean + se * rng.standard_t(dof, size=size + np.shape(n))
