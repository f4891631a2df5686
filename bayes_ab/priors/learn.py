"""The distribution of true effects across past experiments, learned from their estimates and standard errors.

Why: the best evidence about how large an effect usually is, is the organisation's own history. Each past
experiment ``i`` reports an estimate ``y_i`` of its true relative effect ``theta_i`` with a standard error
``s_i``; the model of that history is

    y_i ~ Normal(theta_i, s_i)            (the experiment's own measurement error, taken as known)
    theta_i ~ Normal(mu, tau)             or   theta_i ~ mu + tau * StudentT(nu)

and the learned prior is the fitted distribution of ``theta``. Effects of product changes are often
fat-tailed (most move a metric by well under 1%, a few by a lot), which a normal cannot describe: both
are fitted and compared.

Method: type-II maximum likelihood (the marginal likelihood of the estimates, ``theta`` integrated out), and
the two forms compared by exact leave-one-out cross-validation — each experiment's estimate predicted by
the distribution fitted to all the others — with AIC reported beside it. The Student-t marginal is computed
through its scale-mixture form, ``theta | lambda ~ Normal(mu, tau * sqrt(lambda))`` with
``lambda ~ InverseGamma(nu / 2, nu / 2)``, so every experiment's likelihood is a 1-D integral over
``log lambda`` of normal densities: smooth, and accurate whatever the ratio of ``tau`` to ``s_i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from bayes_ab.learned_prior import LOG_LAMBDA as _LOG_LAMBDA
from bayes_ab.learned_prior import TRAPEZOID as _TRAPEZOID
from bayes_ab.learned_prior import Form
from bayes_ab.learned_prior import log_mixing as _log_mixing

MIN_EXPERIMENTS = 5
"""Fewer past experiments cannot tell a spread from the noise, let alone a tail."""

DF_BOUNDS = (1.0, 50.0)
"""Degrees of freedom searched: from Cauchy tails to practically normal."""

PROFILE_DROP = 0.5 * 3.841458820694124
"""Half the 95% quantile of chi-square(1): the drop of the profile log-likelihood that ends a 95% interval."""

_MIN_SCALE = 1e-7


@dataclass(frozen=True)
class EffectDistribution:
    """A fitted distribution of true relative effects: ``location + scale * StudentT(df)``, or a normal
    (``df`` is ``None``)."""

    form: Form
    location: float
    scale: float
    df: float | None
    log_likelihood: float
    aic: float
    loo: float
    """Sum over experiments of the log density of each estimate under the distribution fitted without it."""
    fitted_scale: float | None = None
    """The maximum-likelihood scale when :attr:`scale` was raised above it (see :func:`supported_scale`)."""

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """Quantiles of the true effects."""
        from scipy import stats

        if self.df is None:
            return stats.norm.ppf(q, self.location, self.scale)
        return stats.t.ppf(q, self.df, self.location, self.scale)

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        """Log density of the true effects."""
        from scipy import stats

        if self.df is None:
            return stats.norm.logpdf(theta, self.location, self.scale)
        return stats.t.logpdf(theta, self.df, self.location, self.scale)


    def posterior(self, estimate: float, standard_error: float,
                  interval: float = 0.9) -> tuple[float, float, float]:
        """Posterior mean and central ``interval`` of one experiment's true effect given its estimate.

        A normal prior gives the normal-normal update; a Student-t prior is a scale mixture of normals, so
        its posterior is a mixture of normal updates weighted by how well each scale predicts the estimate.
        """
        from statistics import NormalDist

        y, s = float(estimate), float(standard_error)
        if self.df is None:
            var = 1 / (1 / self.scale ** 2 + 1 / s ** 2)
            mean = var * (self.location / self.scale ** 2 + y / s ** 2)
            z = NormalDist().inv_cdf(0.5 + interval / 2)
            return mean, mean - z * np.sqrt(var), mean + z * np.sqrt(var)
        prior_var = self.scale ** 2 * np.exp(_LOG_LAMBDA)
        log_w = (_normal_log_density(y, self.location, np.sqrt(prior_var + s ** 2))
                 + _log_mixing(0.5 * self.df) + _TRAPEZOID)
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        var = 1 / (1 / prior_var + 1 / s ** 2)
        means = var * (self.location / prior_var + y / s ** 2)
        sds = np.sqrt(var)

        def quantile(q: float) -> float:
            low, high = float(np.min(means - 40 * sds)), float(np.max(means + 40 * sds))
            for _ in range(100):
                middle = 0.5 * (low + high)
                if float(np.sum(w * special.ndtr((middle - means) / sds))) < q:
                    low = middle
                else:
                    high = middle
            return 0.5 * (low + high)

        tail = (1 - interval) / 2
        return float(np.sum(w * means)), quantile(tail), quantile(1 - tail)


@dataclass(frozen=True)
class LearnedEffects:
    """Both forms fitted to the same history, and the one chosen (higher leave-one-out score)."""

    normal: EffectDistribution
    student_t: EffectDistribution
    experiments: int

    @property
    def chosen(self) -> EffectDistribution:
        """The Student-t if it predicts held-out experiments better (higher leave-one-out score; lower AIC
        when the scores were not computed), else the normal."""
        if np.isnan(self.normal.loo) or np.isnan(self.student_t.loo):
            return self.student_t if self.student_t.aic < self.normal.aic else self.normal
        return self.student_t if self.student_t.loo > self.normal.loo else self.normal


def learn_effects(estimates: np.ndarray, standard_errors: np.ndarray, cross_validate: bool = True) -> LearnedEffects:
    """Fit the normal and the Student-t distribution of true effects to past estimates.

    Parameters
    ----------
    estimates, standard_errors
        One relative effect estimate per past experiment (e.g. 0.012 for +1.2%) and its standard error.
    cross_validate
        Compute the leave-one-out scores (one refit per experiment and form: most of the time taken);
        ``False`` leaves them NaN, and :attr:`LearnedEffects.chosen` then compares AIC.

    Returns
    -------
    Both fits with their log-likelihood, AIC and leave-one-out score.
    """
    y, s = np.asarray(estimates, dtype=float), np.asarray(standard_errors, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("estimates and standard errors must be 1-D arrays of the same length")
    if y.size < MIN_EXPERIMENTS:
        raise ValueError(f"{y.size} past experiment(s): at least {MIN_EXPERIMENTS} are needed")
    if not (np.isfinite(y).all() and np.isfinite(s).all() and (s > 0).all()):
        raise ValueError("estimates must be finite and standard errors finite and > 0")
    extreme = (f"check the past results for extreme estimates (largest |estimate| {np.max(np.abs(y)):g}, largest "
               f"standard error {np.max(s):g})")
    try:
        with np.errstate(all="ignore"):
            learned = LearnedEffects(_fit("normal", y, s, cross_validate), _fit("student_t", y, s, cross_validate),
                                     int(y.size))
    except (ValueError, FloatingPointError, OverflowError):
        raise ValueError(f"the fit of the distribution of true effects failed; {extreme}") from None
    for d in (learned.normal, learned.student_t):
        if not (math.isfinite(d.location) and math.isfinite(d.scale) and d.scale < 1e3):
            raise ValueError(f"the {d.form} fit found no finite distribution (location {d.location:g}, scale "
                             f"{d.scale:g}); {extreme}")
    return learned


def marginal_log_density(form: Form, y: np.ndarray, s: np.ndarray, location: float, scale: float,
                         df: float | None = None) -> np.ndarray:
    """Log density of each estimate ``y`` (standard error ``s``) with its true effect integrated out."""
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    if form == "normal":
        return _normal_log_density(y, location, np.sqrt(scale ** 2 + s ** 2))
    u = _LOG_LAMBDA
    sd = np.sqrt(scale ** 2 * np.exp(u)[None, :] + s[:, None] ** 2)
    terms = _normal_log_density(y[:, None], location, sd) + _log_mixing(0.5 * df)[None, :]
    return special.logsumexp(terms + _TRAPEZOID[None, :], axis=1) + np.log(u[1] - u[0])


def _normal_log_density(y, mean, sd):
    return -0.5 * ((y - mean) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _fit(form: Form, y: np.ndarray, s: np.ndarray, cross_validate: bool) -> EffectDistribution:
    best = _maximise(form, y, s, None)
    location, scale, df = best
    log_lik = float(marginal_log_density(form, y, s, location, scale, df).sum())
    parameters = 2 if form == "normal" else 3
    loo = 0.0 if cross_validate else float("nan")
    for i in range(y.size if cross_validate else 0):
        keep = np.arange(y.size) != i
        fitted = _maximise(form, y[keep], s[keep], best)
        loo += float(marginal_log_density(form, y[i:i + 1], s[i:i + 1], *fitted)[0])
    supported = supported_scale(form, y, s, best)
    if supported > scale:
        location, df = _profile(form, y, s, supported, best)[1:]
        return EffectDistribution(form, location, supported, df, log_lik, 2 * parameters - 2 * log_lik, loo,
                                  fitted_scale=scale)
    return EffectDistribution(form, location, scale, df, log_lik, 2 * parameters - 2 * log_lik, loo)


def supported_scale(form: Form, y: np.ndarray, s: np.ndarray, best: tuple[float, float, float | None]) -> float:
    """The scale a learned prior may use: the maximum-likelihood one, unless the past results cannot tell the
    spread of true effects from zero -- then the upper end of its 95% profile-likelihood interval.

    Why: when the estimates scatter no more than their own standard errors explain, the likelihood is flat
    towards zero and its maximum sits at (or near) the boundary: 8 results with standard errors of 1% can give a
    scale of 3e-06, a prior that no data of a new experiment can move -- it would call a change that halves
    conversion an improvement. Scales up to the interval's upper end fit the history as well (within the 95%
    profile-likelihood interval); the largest of them is the one that claims least. When the interval excludes
    zero (the spread is detected) the maximum-likelihood scale stands.
    """
    location, scale, df = best
    top = -_objective(_pack(form, location, scale, df), form, y, s)[0]
    floor = min(_MIN_SCALE * 10, scale)
    if top - _profile(form, y, s, floor, best)[0] > PROFILE_DROP:
        return scale                                       # the spread is detected: zero is outside the interval
    upper = 100 * max(float(np.std(y)), float(np.median(s))) + 1
    if top - _profile(form, y, s, upper, best)[0] <= PROFILE_DROP:
        return upper
    return float(np.exp(optimize.brentq(lambda u: top - _profile(form, y, s, float(np.exp(u)), best)[0] - PROFILE_DROP,
                                        np.log(max(scale, floor)), np.log(upper), xtol=1e-6)))


def _profile(form: Form, y: np.ndarray, s: np.ndarray, scale: float,
             start: tuple[float, float, float | None]) -> tuple[float, float, float | None]:
    """The log-likelihood maximised over location (and df) at a fixed ``scale``, with those maximisers."""
    if form == "normal":
        w = 1 / (scale ** 2 + s ** 2)
        location = float(np.sum(w * y) / np.sum(w))
        return float(marginal_log_density(form, y, s, location, scale).sum()), location, None
    log_scale = np.log(scale)
    result = optimize.minimize(_objective, _pack(form, start[0], scale, start[2]), args=(form, y, s), jac=True,
                               method="L-BFGS-B", bounds=[(None, None), (log_scale, log_scale),
                                                          tuple(np.log(DF_BOUNDS))])
    return float(-result.fun), float(result.x[0]), float(np.exp(result.x[2]))


def _pack(form: Form, location: float, scale: float, df: float | None) -> np.ndarray:
    return np.array([location, np.log(scale)] + ([] if form == "normal" else [np.log(df)]))


def _maximise(form: Form, y: np.ndarray, s: np.ndarray,
              start: tuple[float, float, float | None] | None) -> tuple[float, float, float | None]:
    """Marginal maximum likelihood of (location, log scale[, log df]) with analytic gradients; several
    starts unless warm-started from a neighbouring fit (the leave-one-out refits)."""
    spread = max(float(np.std(y)), float(np.median(s)), _MIN_SCALE)
    bounds = [(None, None), (np.log(_MIN_SCALE), np.log(100 * spread + 1))]
    if form == "normal":
        starts = ([(float(np.median(y)), np.log(spread)), (float(np.mean(y)), np.log(spread / 10))]
                  if start is None else [(start[0], np.log(start[1]))])
    else:
        bounds.append(tuple(np.log(DF_BOUNDS)))
        starts = ([(float(np.median(y)), np.log(spread / k), np.log(df)) for k in (1, 5) for df in (2.0, 10.0)]
                  if start is None else [(start[0], np.log(start[1]), np.log(start[2]))])
    results = [optimize.minimize(_objective, np.array(x0), args=(form, y, s), jac=True, method="L-BFGS-B",
                                 bounds=bounds) for x0 in starts]
    p = min(results, key=lambda r: r.fun).x
    return float(p[0]), float(np.exp(p[1])), (None if form == "normal" else float(np.exp(p[2])))


def _objective(p: np.ndarray, form: Form, y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray]:
    """Minus the marginal log-likelihood and its gradient in (location, log scale[, log df])."""
    location, scale = p[0], np.exp(p[1])
    if form == "normal":
        var = scale ** 2 + s ** 2
        r = y - location
        value = -np.sum(-0.5 * r ** 2 / var - 0.5 * np.log(var) - 0.5 * np.log(2 * np.pi))
        d_var = 0.5 * (r ** 2 / var - 1) / var
        return float(value), -np.array([np.sum(r / var), np.sum(d_var * 2 * scale ** 2)])
    u, half = _LOG_LAMBDA, 0.5 * np.exp(p[2])
    lam = np.exp(u)[None, :]
    var = scale ** 2 * lam + s[:, None] ** 2
    r = (y - location)[:, None]
    terms = -0.5 * r ** 2 / var - 0.5 * np.log(var) + _log_mixing(half)[None, :] + _TRAPEZOID[None, :]
    per_point = special.logsumexp(terms, axis=1)
    weights = np.exp(terms - per_point[:, None])
    d_var = 0.5 * (r ** 2 / var - 1) / var
    d_half = np.log(half) + 1 - special.digamma(half) - u - np.exp(-u)
    gradient = np.array([np.sum(weights * r / var), np.sum(weights * d_var * 2 * scale ** 2 * lam),
                         np.sum(weights * d_half[None, :]) * half])
    value = per_point.sum() + y.size * (np.log(u[1] - u[0]) - 0.5 * np.log(2 * np.pi))
    return float(-value), -gradient
