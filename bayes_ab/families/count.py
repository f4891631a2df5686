"""Hierarchical count model on exact histograms: negative binomial, Poisson, or a robust mean likelihood.

``log mu[arm, s] = baseline[s] + effect[arm, s]`` (treatment effects pooled across segments). Three
likelihoods, one per ``count_model``:

- ``negative_binomial``: the exact weighted sum ``sum_v users[arm, s, v] * log NB(v | mu, alpha)`` over
  the distinct count values ``v`` (heavy tails cost one term per distinct value, not one per user);
- ``poisson``: the same with a Poisson term;
- ``robust``: a quasi-Poisson likelihood, ``sum (n / phi[arm]) * (ybar log mu - mu)`` over the cells
  (McCullagh & Nelder's quasi-likelihood for variance ``phi * mu``): its maximum is each cell's sample
  mean and its curvature the variance ``phi * mu / n`` -- the central limit theorem with the observed
  dispersion ``phi`` (variance over mean, pooled over each arm's segments). It assumes nothing about the
  shape of the distribution beyond a finite variance, so its intervals stay calibrated where a parametric
  likelihood is wrong in the tail -- which is where trading and game-play counts live. With one segment
  it is Welch's normal approximation of each arm's mean. The variance follows the *modelled* mean, not
  each cell's own sample mean: plugging in a small cell's observed variance (as this likelihood did until
  0.2) gives the cells that happen to be low -- no heavy user drawn -- a tiny variance and the most weight,
  and dragged a control mean of 1.41 trades (207 users in 6 segments) down to a posterior of 0.64.

``count_model: auto`` decides by checks on the histogram: Poisson when the pooled dispersion test finds
no overdispersion (p >= 0.05); otherwise the negative binomial is fitted by maximum likelihood in every
cell and kept only if the variance it implies is within ``NB_VARIANCE_TOLERANCE`` of the observed one
(a posterior predictive check of the quantity the interval width depends on); else ``robust``. On
Cookie Cats' game rounds the negative binomial implies a variance of about half the observed one (capped
at 1,000 rounds), so its intervals were too narrow: 17.7% of A/A splits excluded zero at 95%.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Sequence, TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special

from bayes_ab.data.engine import INTEGER
from bayes_ab.data.queries import MetricQuery, capped, metric_column, numeric_checks
from bayes_ab.data.stats import as_counts, check_arms_have_users
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families.base import ParamReader, WarmupCase, finite, mean_baseline, moments_spread
from bayes_ab.families.mean import MeanSums
from bayes_ab.families.sums import SumsFamily
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import mean_draws, posterior_dataset
from bayes_ab.models.gaussian_pool import (EMPTY_CELL_VARIANCE, LINK_V, LINK_Y, NORMAL_CELLS, is_normal_cells,
                                            normal_cells_model)
from bayes_ab.models.hierarchy import coords_for, segment_baselines, segment_effects, with_control
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:     # PyMC is imported where a model is built: a load from the model cache never needs it
    import pymc as pm


class CountModel(StrEnum):
    """The count likelihood: chosen from the data (``auto``) or set in the spec."""

    AUTO = "auto"
    NEGATIVE_BINOMIAL = "negative_binomial"
    POISSON = "poisson"
    ROBUST = "robust"


@dataclass(frozen=True)
class CountParams(FamilyParams):
    """``count_model``: the likelihood (``auto`` picks it from the data's checks). ``cap``: per-user counts
    above it are counted as ``cap`` (a whole number), the usual guard against a few extreme users."""

    count_model: CountModel = CountModel.AUTO
    cap: int | None = None

BASELINE_LOG_SD = 4.0
LOG_ALPHA_SD = 2.5
DISPERSION_P = 0.05


def dispersion_test(stats: xr.Dataset) -> tuple[float, float]:
    """Pooled variance/mean ratio and the p-value of the Poisson dispersion test.

    Under a Poisson model ``sum (x - mean)^2 / mean`` over each arm x segment is chi-square with
    ``n - 1`` degrees of freedom; the statistics and degrees of freedom are summed over cells.
    """
    n = stats["n"].values.astype(float)
    total, squares = stats["sum"].values, stats["sumsq"].values
    usable = (n > 1) & (total > 0)
    if not usable.any():
        return float("nan"), 1.0
    mean = total[usable] / n[usable]
    statistic = ((squares[usable] - total[usable] ** 2 / n[usable]) / mean).sum()
    df = (n[usable] - 1).sum()
    return float(statistic / df), float(special.chdtrc(df, statistic))


NB_VARIANCE_TOLERANCE = 1.25
"""Observed / NB-implied variance above which ``auto`` leaves the negative binomial: a 25% larger
variance means intervals about 12% too narrow (width goes with the square root)."""


def negative_binomial_alpha(values: np.ndarray, users: np.ndarray) -> float:
    """Maximum-likelihood negative binomial shape ``alpha`` of one cell's histogram (the mean's MLE is the
    sample mean); ``inf`` when the data are not overdispersed."""
    n = users.sum()
    if n < 2:
        return np.inf
    mean = float((users * values).sum() / n)
    variance = float((users * (values - mean) ** 2).sum() / (n - 1))
    if mean <= 0 or variance <= mean:
        return np.inf

    def negative_log_likelihood(log_alpha: float) -> float:
        a = np.exp(log_alpha)
        terms = (special.gammaln(values + a) - special.gammaln(a) + a * np.log(a / (a + mean))
                 + values * np.log(mean / (a + mean)))
        return -float((users * terms).sum())

    start = np.log(mean ** 2 / (variance - mean))          # the method-of-moments shape, to bracket
    return float(np.exp(golden_section_minimum(negative_log_likelihood, start - 8, start + 8)))


GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def golden_section_minimum(function, low: float, high: float, tolerance: float = 1e-7) -> float:
    """The minimum of a unimodal ``function`` on ``[low, high]``, to ``tolerance``, by golden-section search.

    The negative binomial's likelihood in ``log alpha`` is one-dimensional and unimodal; this search needs
    about 45 evaluations of it. (``scipy.optimize.minimize_scalar`` finds the same point; importing
    scipy.optimize costs every check-in with a count metric 0.17 s, a twentieth of the command.)
    """
    a, b = float(low), float(high)
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = function(c), function(d)
    while b - a > tolerance:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = function(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = function(d)
    return (a + b) / 2.0


def tail_share(cut: float, mean: float, alpha: float) -> float:
    """``P(X > cut)`` for a negative binomial of mean ``mean`` and shape ``alpha`` (Poisson when ``alpha`` is
    infinite): ``1 - I_p(alpha, cut + 1)`` with ``p = alpha / (alpha + mean)``, as ``scipy.stats.nbinom.sf``
    and ``poisson.sf`` compute them, from scipy.special (scipy.stats costs a check-in half a second)."""
    if np.isfinite(alpha):
        return float(special.betaincc(alpha, np.floor(cut) + 1, alpha / (alpha + mean)))
    return float(special.pdtrc(np.floor(cut), mean))


def negative_binomial_check(stats: xr.Dataset) -> tuple[float, float, float]:
    """How well a negative binomial fitted by maximum likelihood describes the data, pooled over cells.

    Returns ``(variance ratio, observed tail share, NB tail share)``: the observed variance over the
    variance the fitted NB implies (``mu + mu^2 / alpha``), users-weighted; and the share of users above
    each cell's 99th percentile, observed and as the fitted NB predicts it.
    """
    values = stats["value"].values.astype(float)
    observed_var = implied_var = tail_observed = tail_model = weight = 0.0
    for arm in range(stats.sizes["arm"]):
        for segment in range(stats.sizes["segment"]):
            users = stats["users"].values[arm, segment].astype(float)
            n = users.sum()
            if n < 2:
                continue
            mean = (users * values).sum() / n
            alpha = negative_binomial_alpha(values, users)
            observed_var += n * (users * (values - mean) ** 2).sum() / (n - 1)
            implied_var += n * (mean + (mean ** 2 / alpha if np.isfinite(alpha) else 0.0))
            cut = values[np.searchsorted(np.cumsum(users) / n, 0.99)]
            tail_observed += users[values > cut].sum()
            tail_model += n * tail_share(cut, mean, alpha)
            weight += n
    if weight == 0 or implied_var == 0:
        return 1.0, 0.0, 0.0
    return observed_var / implied_var, tail_observed / weight, tail_model / weight


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """``negative_binomial``, ``poisson`` or ``robust``: the spec's choice, or the checks' under ``auto``."""
    if metric.covariates:       # a covariate-adjusted cell mean has no count distribution, only a variance
        return str(CountModel.ROBUST)
    if CountParams.of(metric).count_model != CountModel.AUTO:
        return str(CountParams.of(metric).count_model)
    if dispersion_test(stats)[1] >= DISPERSION_P:
        return "poisson"
    return "negative_binomial" if negative_binomial_check(stats)[0] <= NB_VARIANCE_TOLERANCE else "robust"


def top_user_influence(stats: xr.Dataset) -> tuple[str, int, float, float]:
    """The arm whose single largest user moves its mean the most, in standard errors.

    Returns ``(arm, value, shift, shift / standard_error)`` where ``shift`` is how much that one user
    raises the arm's mean and the standard error is the mean's, computed without that user. The
    negative binomial mean is the sample mean, so such a user moves the estimate by ``shift`` while the
    fitted dispersion, driven by everyone else, does not widen the interval for it.
    """
    worst = ("", 0, 0.0, 0.0)
    for arm in stats["arm"].values:
        hist = stats["users"].sel(arm=arm).sum("segment").values
        values = stats["value"].values
        present = np.flatnonzero(hist)
        n = hist.sum()
        if n < 3 or present.size == 0:
            continue
        top = int(values[present[-1]])
        rest = hist.astype(float).copy()
        rest[present[-1]] -= 1
        mean_rest = (rest * values).sum() / (n - 1)
        var_rest = (rest * (values - mean_rest) ** 2).sum() / (n - 2)
        shift = (top - mean_rest) / n
        se = np.sqrt(var_rest / (n - 1)) if var_rest > 0 else np.inf
        if shift / se > worst[3]:
            worst = (str(arm), top, float(shift), float(shift / se))
    return worst


INFLUENCE_WARNING = 1.0   # standard errors


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Which likelihood was used and why; a warning when one user drives an arm's mean."""
    ratio, p = dispersion_test(stats)
    chosen = variant(stats, metric)
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    dispersion = f"variance/mean {ratio:.2f}, Poisson dispersion test {p_text}"
    if chosen == "poisson" or CountParams.of(metric).count_model == "poisson":
        why = "set in the spec" if CountParams.of(metric).count_model != "auto" else "no overdispersion detected"
        note = f"poisson likelihood ({why}: {dispersion})"
    else:
        variance_ratio, tail, tail_nb = negative_binomial_check(stats)
        check = (f"observed variance {variance_ratio:.2f}x what the fitted negative binomial implies, users "
                 f"above the 99th percentile {tail:.2%} observed vs {tail_nb:.2%} predicted")
        if chosen == "negative_binomial":
            why = "set in the spec" if CountParams.of(metric).count_model != "auto" else "overdispersed"
            note = f"negative binomial likelihood ({why}: {dispersion}; {check})"
        else:
            why = ("covariate-adjusted cell means have a variance but no count distribution" if metric.covariates
                   else "set in the spec" if CountParams.of(metric).count_model != "auto"
                   else f"the negative binomial fits the tail badly: {check}")
            phi = ", ".join(f"{v:.1f}" for v in arm_dispersion(stats))
            note = (f"robust likelihood: quasi-Poisson with each arm's observed variance/mean ({phi}), calibrated "
                    f"whatever the count distribution ({why}; {dispersion})")
    note += f"; {stats.sizes['value']} distinct count values"
    if CountParams.of(metric).cap is not None:
        note += f"; values capped at {CountParams.of(metric).cap:g}"
    return note


def influence_warning(stats: xr.Dataset) -> tuple[str, ...]:
    """A warning when one user moves an arm's mean by more than :data:`INFLUENCE_WARNING` standard errors."""
    arm, top, shift, in_se = top_user_influence(stats)
    if in_se <= INFLUENCE_WARNING:
        return ()
    return (f"one user of arm {arm!r} with {top:,} alone raises that arm's mean by {shift:.3g} "
            f"({in_se:.1f} standard errors): the result hinges on the tail; check the data or set 'cap'",)


def arm_dispersion(stats: xr.Dataset) -> np.ndarray:
    """Each arm's variance-to-mean ratio ``phi``: its within-segment variance pooled over the segments, over
    its mean. Then the cells' variances ``phi * mu`` add up, traffic-weighted, to the arm's own variance of the
    mean (what one segment gives) -- a ratio averaged per cell instead would let the few cells holding a heavy
    user, whose variance grows faster than their mean, pull it down. Floored at 1 as in :func:`cell_moments`
    (a count varies at least as a Poisson count does); an arm without counts above zero gets 1."""
    n = stats["n"].values.astype(float)
    total, squares = stats["sum"].values.astype(float), stats["sumsq"].values.astype(float)
    within = np.maximum(squares - total ** 2 / np.maximum(n, 1.0), 0.0).sum(axis=1)
    dof = np.maximum(n - 1, 0.0).sum(axis=1)
    mean = total.sum(axis=1) / np.maximum(n.sum(axis=1), 1.0)
    usable = (dof > 0) & (mean > 0)
    phi = np.where(usable, within / np.where(dof > 0, dof, 1.0) / np.where(usable, mean, 1.0), 1.0)
    return np.maximum(phi, 1.0)


def quasi_weights(stats: xr.Dataset) -> np.ndarray:
    """Each cell's weight ``n / phi[arm]`` in the robust (quasi-Poisson) likelihood."""
    return stats["n"].values.astype(float) / arm_dispersion(stats)[:, None]


NORMAL_CELL_EVENTS = 50
"""Effective counts (a cell's total over its arm's dispersion) and users every cell needs before its likelihood
is replaced by a normal on the log scale (:func:`~bayes_ab.models.gaussian_pool.normal_cells_model`)."""
NORMAL_CELL_USERS = 200


def normal_cells(stats: xr.Dataset) -> bool:
    """Whether every cell with users is large enough for a normal on the log scale (and there are segments to
    pool): :data:`NORMAL_CELL_USERS` users and :data:`NORMAL_CELL_EVENTS` effective counts."""
    n = stats["n"].values
    present = n > 0
    effective = stats["sum"].values / arm_dispersion(stats)[:, None]
    return (stats.sizes["segment"] > 1 and bool(np.all(n[present] >= NORMAL_CELL_USERS))
            and bool(np.all(effective[present] >= NORMAL_CELL_EVENTS)))


def log_cells(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Each cell's log mean and its variance ``phi[arm] / sum`` -- the robust likelihood's ``phi * mu / n`` on
    the log scale (whichever likelihood was chosen: on large cells they agree on the variance, which the
    negative binomial is kept only when it matches); an empty cell gets 0 and a variance that carries nothing."""
    n, total = stats["n"].values.astype(float), stats["sum"].values.astype(float)
    present = (n > 0) & (total > 0)
    phi = arm_dispersion(stats)[:, None]
    mean = np.where(present, total / np.maximum(n, 1.0), 1.0)
    return {LINK_Y: np.where(present, np.log(mean), 0.0),
            LINK_V: np.where(present, phi / np.where(present, total, 1.0), EMPTY_CELL_VARIANCE)}


def cell_moments(stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's sample mean and the standard error the robust likelihood gives it.

    The variance is floored at the mean (a count varies at least as a Poisson count does) and at 1/n, so
    that a cell where every user has the same count still carries a finite precision.
    """
    n = stats["n"].values.astype(float)
    safe = np.maximum(n, 1.0)
    mean = stats["sum"].values / safe
    variance = np.maximum(stats["sumsq"].values - n * mean ** 2, 0.0) / np.maximum(n - 1, 1.0)
    variance = np.maximum(variance, np.maximum(mean, 1.0 / safe))
    se = np.where(n > 0, np.sqrt(variance / safe), 1e6)
    return mean, se


def count_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    values: Sequence[int],
    histogram: np.ndarray,
    metric: str,
) -> xr.Dataset:
    """Exact statistics of a count metric: how many users had each count value.

    Parameters
    ----------
    values
        The distinct count values (non-negative integers), dim ``value``.
    histogram
        Users per arm x segment x value, shape ``(arms, segments, values)``.
    """
    values = np.asarray(values)
    if values.ndim != 1 or len(np.unique(values)) != len(values):
        raise DataError(f"metric {metric!r}: count values must be a list of distinct integers")
    bad = ~np.isfinite(values.astype(float)) | (values.astype(float) < 0) | (values != np.round(values))
    if bad.any():
        raise DataError(f"metric {metric!r}: count value {values[bad][0]!r} is not a non-negative integer")
    hist = np.asarray(histogram, dtype=float)
    if hist.shape != (len(arms), len(segments), len(values)):
        raise DataError(f"metric {metric!r}: histogram must have shape (arms, segments, values) = "
                        f"{(len(arms), len(segments), len(values))}, got {hist.shape}")
    users = hist.sum(axis=2)
    as_counts(users, "users", metric, arms, segments)
    for k in range(len(values)):
        as_counts(hist[:, :, k], f"users with count {values[k]}", metric, arms, segments)
    v = values.astype("int64")
    order = np.argsort(v)
    hist = hist[:, :, order].astype("int64")
    v = v[order]
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), hist.sum(axis=2)),
            "users": (("arm", "segment", "value"), hist),
            "sum": (("arm", "segment"), (hist * v).sum(axis=2).astype(float)),
            "sumsq": (("arm", "segment"), (hist * v.astype(float) ** 2).sum(axis=2)),
        },
        coords={"arm": list(arms), "segment": list(segments), "value": v},
        attrs={"family": Count.name, "metric": metric},
    )
    check_arms_have_users(ds)
    return ds


def sample_count(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                 prior_shape: float = 0.5):
    """Unpooled posterior of each cell's mean count, matching the likelihood the count model chose:
    Gamma-Poisson (Jeffreys prior ``Gamma(0.5, 0)``) where the counts are Poisson; otherwise the robust
    likelihood's own closed form, a flat-prior Student-t around each cell's mean with its observed
    variance (the negative binomial has no conjugate form, and a Gamma-Poisson posterior would ignore
    overdispersion)."""
    rng = np.random.default_rng(sampler.seed)
    size = (sampler.chains, sampler.draws)
    if variant(stats, metric) != "poisson":
        n = stats["n"].values.astype(float)
        mean, se = cell_moments(stats)
        return posterior_dataset(stats, sampler,
                                 mean_draws(rng, n, mean, se ** 2 * n * np.maximum(n - 1, 1), n - 1, size))
    shape, rate = prior_shape + stats["sum"].values, stats["n"].values.astype(float)
    draws = rng.gamma(shape, 1.0 / np.where(rate > 0, rate, np.nan), size=size + shape.shape)
    return posterior_dataset(stats, sampler, draws)


COUNT_BARS = 30
"""Bars of the report's count histogram (larger values share the last)."""


class _CountTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric, self.means, self.shape = metric, baseline.value * factors, baseline.spread

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        mean = self.means[arms]
        if self.shape is None:
            return rng.poisson(mean)            # no user-level rate to carry a latent activity: independent
        if latent is None:
            return rng.negative_binomial(self.shape, self.shape / (self.shape + mean))
        # the negative binomial as a gamma-Poisson mixture, the user's gamma rate at its latent quantile
        from scipy.special import gammaincinv

        rate = gammaincinv(self.shape, np.clip(latent, 1e-12, 1 - 1e-12)) / self.shape * mean
        return rng.poisson(rate)


class _Counts(MeanSums):
    """Simulated counts, kept as n, sum and sum of squares and analysed with the Student-t posterior of the
    mean (the Gamma-Poisson form ignores overdispersion and is overconfident). The histogram is not kept:
    the mean family's statistics carry what the closed form reads. Only the link differs: log."""

    def link(self, means: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(means, 1e-12))


class Count(SumsFamily):
    """Non-negative whole numbers per user (trades, sessions, game rounds); the metric is the mean count."""

    name = "count"
    params_type = CountParams
    baseline_fields = ("mean", "dispersion")
    min_mean = 0.0

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The effect is a log ratio of means: log(1 + r) has slope 1 at r = 0."""
        return 1.0

    def draw_from_means(self, rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
        """A user's count is Poisson given its own mean (the heterogeneity is in ``means``)."""
        return rng.poisson(means).astype(float)

    def parse_params(self, read: ParamReader) -> CountParams:
        model = CountModel(read.choice("count_model", tuple(CountModel), CountModel.AUTO))
        cap = None
        if read.get("cap") is not None:
            cap = read.positive("cap", 1.0)
            if not float(cap).is_integer():
                read.fail("cap", f"must be a whole number for counts, got {cap}")
        return CountParams(model, cap)

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """``{mean, dispersion}``: the control arm's mean count and negative-binomial shape (optional:
        without it, Poisson)."""
        mean, spread = mean_baseline(raw, where, "dispersion")
        if mean <= 0:
            raise SpecError(f"{where}: mean must be positive for a count, got {mean}")
        if spread is not None and finite(spread, "dispersion", where) <= 0:
            raise SpecError(f"{where}: dispersion must be positive, got {spread}")
        return Baseline(mean, None if spread is None else float(spread))

    cluster_sums = True

    def unit_values(self, metric: Metric, kinds: dict[str, str]) -> tuple[str, str | None]:
        """The user's (capped) count: a cluster's total is its users' events."""
        column = metric_column(metric, metric.column, kinds, "counts")
        return capped(column, CountParams.of(metric).cap), None

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """Users per count value (capped): aggregated rows carry the value in the metric's column and the
        users who had it in ``users_column``."""
        column = metric_column(metric, metric.column, kinds, "counts")
        checks = numeric_checks(column, metric.name, alias, whole=True, minimum=0, what="counts")
        cap = CountParams.of(metric).cap
        key = f"CAST({column.sql} AS BIGINT)" if column.kind == INTEGER and cap is None else \
            f"CAST({capped(column, cap)} AS BIGINT)"

        def build(arms, segments, table, detail):
            values = np.sort(detail["key"].unique()).astype("int64")
            index = pd.MultiIndex.from_product([arms, segments, values], names=["arm", "segment", "key"])
            hist = detail.set_index(["arm", "segment", "key"])[f"{alias}_users"].reindex(index, fill_value=0)
            return count_stats(arms, segments, values,
                               hist.to_numpy(dtype=float).reshape(len(arms), len(segments), len(values)),
                               metric.name)

        return MetricQuery([], {}, build, detail_key=key, detail_users={f"{alias}_users": None},
                           keys={metric.column: key}, key_checks=checks)

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        """Count values and users per arm x segment x value; each cell's mean and quasi-likelihood weight
        (robust)."""
        if normal_cells(stats):
            return log_cells(stats)
        mean, _ = cell_moments(stats)
        control = stats.isel(arm=0)
        pooled = (float(control["sum"].sum()) + 0.5) / (float(control["n"].sum()) + 1.0)
        return {"values": stats["value"].values.astype("int64"), "users": stats["users"].values.astype("float64"),
                "cell_mean": mean, "cell_weight": quasi_weights(stats),
                "baseline_center": np.asarray(np.log(pooled))}

    inverse_link = staticmethod(np.exp)

    def variant(self, stats: xr.Dataset, metric: Metric) -> str:
        """The likelihood (:func:`variant`), with ``+normal_cells`` where every cell is large (:func:`normal_cells`)."""
        return variant(stats, metric) + (f"+{NORMAL_CELLS}" if normal_cells(stats) else "")

    def definition(self, metric: Metric) -> str:
        return f"mean of {metric.column!r} per user, a whole number per user (events such as trades per user)"

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        note = describe(stats, metric)
        if normal_cells(stats):
            note += (f"; every cell has at least {NORMAL_CELL_USERS} users and {NORMAL_CELL_EVENTS} effective counts, "
                     "so each is approximated by a normal on the log scale with that likelihood's variance and the "
                     "segment effects are integrated out exactly")
        return note

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        return super().warnings(stats, metric) + influence_warning(stats)

    def build_model(self, stats: xr.Dataset, metric: Metric) -> "pm.Model":
        import pymc as pm

        if normal_cells(stats):
            return normal_cells_model(stats, metric, self.model_data(stats))

        coords = coords_for(stats)
        arms, segments = coords["arm"], coords["segment"]
        data = self.model_data(stats)
        with pm.Model(coords=coords) as model:
            # no dims on the histogram: new data may bring new count values without recompiling
            values = pm.Data("values", data["values"])
            users = pm.Data("users", data["users"])
            # every variant declares every data array, so one set of data re-fits any of them
            cell_mean = pm.Data("cell_mean", data["cell_mean"], dims=("arm", "segment"))
            cell_weight = pm.Data("cell_weight", data["cell_weight"], dims=("arm", "segment"))
            center = pm.Data("baseline_center", data["baseline_center"])
            baseline = segment_baselines(center, BASELINE_LOG_SD, len(segments))
            effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
            log_mu = with_control(baseline, effect)
            mu = pm.Deterministic("mean", pm.math.exp(log_mu), dims=("arm", "segment"))
            chosen = variant(stats, metric)
            if chosen == "robust":
                pm.Potential("obs", (cell_weight * (cell_mean * log_mu - mu)).sum())
                return model
            if chosen == "poisson":
                dist = pm.Poisson.dist(mu=mu[:, :, None])
            else:
                log_alpha = pm.Normal("log_alpha", mu=0.0, sigma=LOG_ALPHA_SD, dims=("arm", "segment"))
                dist = pm.NegativeBinomial.dist(mu=mu[:, :, None], alpha=pm.math.exp(log_alpha)[:, :, None])
            pm.Potential("obs", (users * pm.logp(dist, values[None, None, :])).sum())
        return model

    def pools_baselines(self, variant: str) -> bool:
        """The exact likelihood's hierarchy does (:func:`~bayes_ab.models.hierarchy.segment_baselines`); normal
        cells integrate their baselines out."""
        return not is_normal_cells(variant)

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """Each likelihood (set in the spec, as ``count_model: auto`` picks one of them) on small cells, and on
        large ones (normal cells, :func:`normal_cells`)."""
        values = np.arange(6)
        found = []
        for model in (CountModel.POISSON, CountModel.NEGATIVE_BINOMIAL, CountModel.ROBUST):
            metric = Metric(name="events", family=self.name, column="events", params=CountParams(count_model=model))
            for size, users in (("small", 40), ("large", 4000)):
                histogram = np.broadcast_to(users * np.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05]),
                                            (len(arms), len(segments), len(values)))
                found.append(WarmupCase(f"{model}, {size} cells", metric,
                                        count_stats(arms, segments, values, np.round(histogram), metric.name)))
        return tuple(found)

    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        if variant(stats, metric) == "poisson":
            return "Gamma-Poisson (Jeffreys prior)"
        return ("Student-t around each cell's mean with its observed variance (the robust likelihood, "
                "no distribution assumed)")

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        """Poisson or negative-binomial variance at ``mean``."""
        if mean <= 0:
            raise SpecError(f"metric {metric.name!r}: the change leaves a non-positive mean count ({mean})")
        return mean + (0.0 if baseline.spread is None else mean ** 2 / baseline.spread)

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """Negative-binomial shape by moments (``None`` = Poisson: no overdispersion)."""
        mean, variance = moments_spread(stats)
        return mean ** 2 / (variance - mean) if variance > mean and mean > 0 else None

    def figure(self, fit, interval: float) -> tuple[str | None, str]:
        """The observed share of users per count value, per arm."""
        from bayes_ab import figures

        users = fit.stats["users"].sum("segment")
        values = fit.stats["value"].values
        cap = int(min(values.max(), max(COUNT_BARS - 1, 1)))
        shown = np.arange(cap + 1)
        shares = {}
        for arm in users["arm"].values:
            row = users.sel(arm=arm).values.astype(float)
            binned = np.array([row[values == v].sum() for v in shown[:-1]] + [row[values >= cap].sum()])
            shares[str(arm)] = binned / row.sum()
        largest = int(values[(users.sum("arm").values > 0)].max())
        return figures.count_distribution(shown, shares, cap), (
            f"Observed share of users per count value (values of {cap} or more in the last bar; the largest "
            f"is {largest:,}). The model is negative binomial on this exact histogram.")

    sample_conjugate = staticmethod(sample_count)
    truth_type = _CountTruth
    accumulator_type = _Counts
