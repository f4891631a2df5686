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

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from bayes_ab.learned_prior import Form

MIN_EXPERIMENTS = 5
"""Fewer past experiments cannot tell a spread from the noise, let alone a tail."""

DF_BOUNDS = (1.0, 50.0)
"""Degrees of freedom searched: from Cauchy tails to practically normal."""

_LOG_LAMBDA = np.linspace(-25.0, 25.0, 801)
_TRAPEZOID = np.log(np.where((np.arange(_LOG_LAMBDA.size) % (_LOG_LAMBDA.size - 1)) == 0, 0.5, 1.0))
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
    return LearnedEffects(_fit("normal", y, s, cross_validate), _fit("student_t", y, s, cross_validate), int(y.size))


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


def _log_mixing(half: float) -> np.ndarray:
    """Log density of ``u = log(lambda)`` on :data:`_LOG_LAMBDA` for ``lambda ~ InverseGamma(half, half)``
    (``half`` = df / 2): the mixing weights of the Student-t's scale-mixture form."""
    u = _LOG_LAMBDA
    return half * np.log(half) - special.gammaln(half) - half * u - half * np.exp(-u)


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
    return EffectDistribution(form, location, scale, df, log_lik, 2 * parameters - 2 * log_lik, loo)


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
