"""Conjugate closed forms for the unpooled case, one per family.

- conversion: ``Beta(1 + successes, 1 + failures)`` per arm x segment (flat prior);
- count: ``Gamma(0.5 + sum, n)`` for a Poisson mean (Jeffreys prior) where the counts are Poisson,
  otherwise the robust likelihood's Student-t around each cell's mean with its observed variance;
- retention: ``Beta(1 + lost, 1 + at_risk - lost)`` per day's hazard, retention = prod(1 - hazard);
- mean: Student-t posterior of each cell mean under the flat prior (with a covariate: around the
  CUPED-adjusted mean with the pooled slope).

These are the fast path when no pooling is wanted (one segment, quick looks) and the references the
hierarchical models are tested against.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import integrate, special, stats as st

import arviz as az

from bayes_ab.models import count
from bayes_ab.models.hierarchy import coords_for
from bayes_ab.models.mean import centred_sums
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


def _posterior(stats: xr.Dataset, sampler: SamplerSettings, mean: np.ndarray,
               extra: dict[str, tuple[tuple[str, ...], np.ndarray]] | None = None) -> az.InferenceData:
    """Wrap draws of ``mean`` (chain, draw, arm, segment) like an MCMC fit; ``effect`` is arm - control."""
    effect = mean[:, :, 1:, :] - mean[:, :, :1, :]
    variables = {"mean": (("chain", "draw", "arm", "segment"), mean),
                 "effect": (("chain", "draw", "treatment", "segment"), effect)}
    variables.update(extra or {})
    coords = {"chain": np.arange(sampler.chains), "draw": np.arange(sampler.draws), **coords_for(stats)}
    coords.update({d: stats[d].values for d in ("day",) if d in stats.dims})
    return az.InferenceData(posterior=xr.Dataset(variables, coords=coords))


def sample_conversion(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                      prior_a: float = 1.0, prior_b: float = 1.0) -> az.InferenceData:
    """Independent draws from every arm x segment Beta posterior, shaped like an MCMC fit."""
    rng = np.random.default_rng(sampler.seed)
    draws = rate_draws(rng, stats["successes"].values, stats["n"].values, (sampler.chains, sampler.draws),
                       prior_a, prior_b)
    return _posterior(stats, sampler, draws)


def rate_draws(rng: np.random.Generator, successes: np.ndarray, trials: np.ndarray, size: tuple[int, ...],
               prior_a: float = 1.0, prior_b: float = 1.0) -> np.ndarray:
    """Draws of Beta posteriors of rates, shape ``size + successes.shape`` (array-first: the simulations
    call it on plain arrays, :func:`sample_conversion` on statistics)."""
    a, b = beta_posterior(successes, trials, prior_a, prior_b)
    return rng.beta(a, b, size=size + np.shape(a))


def sample_count(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                 prior_shape: float = 0.5) -> az.InferenceData:
    """Unpooled posterior of each cell's mean count, matching the likelihood the count model chose:
    Gamma-Poisson (Jeffreys prior ``Gamma(0.5, 0)``) where the counts are Poisson; otherwise the robust
    likelihood's own closed form, a flat-prior Student-t around each cell's mean with its observed
    variance (the negative binomial has no conjugate form, and a Gamma-Poisson posterior would ignore
    overdispersion)."""
    rng = np.random.default_rng(sampler.seed)
    size = (sampler.chains, sampler.draws)
    if count.variant(stats, metric) != "poisson":
        n = stats["n"].values.astype(float)
        mean, se = count.cell_moments(stats)
        return _posterior(stats, sampler, mean_draws(rng, n, mean, se ** 2 * n * np.maximum(n - 1, 1), n - 1, size))
    shape, rate = prior_shape + stats["sum"].values, stats["n"].values.astype(float)
    draws = rng.gamma(shape, 1.0 / np.where(rate > 0, rate, np.nan), size=size + shape.shape)
    return _posterior(stats, sampler, draws)


def describe_closed_form(stats: xr.Dataset, metric: Metric) -> str:
    """Which closed form the ``conjugate`` backend used for this metric, for the model note."""
    if metric.family == "count":
        form = ("Gamma-Poisson (Jeffreys prior)" if count.variant(stats, metric) == "poisson" else
                "Student-t around each cell's mean with its observed variance (the robust likelihood, "
                "no distribution assumed)")
    else:
        form = {"conversion": "Beta-Binomial, flat prior", "retention": "Beta hazard per day, flat prior",
                "mean": "Student-t, flat prior"}[metric.family]
    return f"conjugate backend: unpooled closed form, {form}"


def sample_retention(stats: xr.Dataset, metric: Metric,
                     sampler: SamplerSettings = SamplerSettings()) -> az.InferenceData:
    """Beta posterior of every day's churn hazard; retention is the product of survived days."""
    rng = np.random.default_rng(sampler.seed)
    survival = survival_draws(rng, stats["lost"].values, stats["at_risk"].values, (sampler.chains, sampler.draws))
    return _posterior(stats, sampler, survival[..., metric.horizon - 1],
                      {"survival": (("chain", "draw", "arm", "segment", "day"), survival)})


def survival_draws(rng: np.random.Generator, lost: np.ndarray, at_risk: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Draws of the survival curve (last axis: day) from Beta(1 + lost, 1 + survivors) daily hazards."""
    hazard = rng.beta(1.0 + lost, 1.0 + at_risk - lost, size=size + np.shape(lost))
    return np.cumprod(1.0 - hazard, axis=-1)


def sample_mean(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings()) -> az.InferenceData:
    """Flat-prior Student-t posterior of each cell mean (CUPED-adjusted with the pooled slope)."""
    rng = np.random.default_rng(sampler.seed)
    c = centred_sums(stats)
    n = c["n"]
    theta = c["scy"].sum() / c["scc"].sum() if c["scc"].sum() > 0 else 0.0
    residual = c["syy"] - 2 * theta * c["scy"] + theta ** 2 * c["scc"]
    draws = mean_draws(rng, n, c["ybar"] - theta * c["cbar"], residual, n - 1 - (theta != 0),
                       (sampler.chains, sampler.draws))
    return _posterior(stats, sampler, draws)


def mean_draws(rng: np.random.Generator, n: np.ndarray, mean: np.ndarray, squares: np.ndarray, dof: np.ndarray,
               size: tuple[int, ...]) -> np.ndarray:
    """Flat-prior Student-t posterior draws of means: centre ``mean``, scale sqrt(``squares`` / dof / n),
    where ``squares`` is the (residual) sum of squared deviations and ``dof`` its degrees of freedom."""
    dof = np.maximum(dof, 1)
    se = np.sqrt(squares / dof / np.where(n > 0, n, np.nan))
    return mean + se * rng.standard_t(dof, size=size + np.shape(n))
