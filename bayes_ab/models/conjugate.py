"""Conjugate closed forms for the unpooled case: Beta-Binomial.

Each arm x segment gets an independent ``Beta(prior_a + successes, prior_b + failures)``
posterior. This is the fast path when no pooling is wanted (one segment, or quick looks), and
the reference the hierarchical model is tested against.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import integrate, special, stats as st

import arviz as az

from bayes_ab.spec import Metric, SamplerSettings


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
    control = st.beta(a_c, b_c)
    lo, hi = control.ppf(1e-12), control.isf(1e-12)
    value, _ = integrate.quad(lambda x: control.pdf(x) * st.beta(a_t, b_t).sf(x), lo, hi,
                              limit=200, epsabs=1e-12, epsrel=1e-10)
    return float(np.clip(value, 0.0, 1.0))


def sample_conversion(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                      prior_a: float = 1.0, prior_b: float = 1.0) -> az.InferenceData:
    """Independent draws from every arm x segment Beta posterior, shaped like an MCMC fit.

    The result has ``mean`` (chain, draw, arm, segment) and ``effect`` (logit difference to
    control, chain, draw, treatment, segment), so effects treat it exactly like a hierarchical fit.
    """
    rng = np.random.default_rng(sampler.seed)
    a, b = beta_posterior(stats["successes"].values, stats["n"].values, prior_a, prior_b)
    shape = (sampler.chains, sampler.draws) + a.shape
    mean = rng.beta(a, b, size=shape)
    logit = special.logit(mean)
    effect = logit[:, :, 1:, :] - logit[:, :, :1, :]
    arms = [str(x) for x in stats["arm"].values]
    posterior = xr.Dataset(
        {"mean": (("chain", "draw", "arm", "segment"), mean),
         "effect": (("chain", "draw", "treatment", "segment"), effect)},
        coords={"chain": np.arange(sampler.chains), "draw": np.arange(sampler.draws),
                "arm": arms, "segment": [str(s) for s in stats["segment"].values], "treatment": arms[1:]},
    )
    return az.InferenceData(posterior=posterior)
