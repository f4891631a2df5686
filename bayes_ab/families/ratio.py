"""Ratio: sum(numerator) / sum(denominator) over users, randomised by user (DMs per story view, revenue per
session, clicks per impression).

The unit of randomisation is the user but the metric is a ratio of two per-user sums that move together (a
user with more story views sends more DMs), so neither the mean nor the count family answers it: a mean of
per-user ratios weighs a one-view user like a thousand-view user, and treating views as independent units
ignores that they come in per-user bundles. The delta method (Deng, Knoblich and Lu, "Applying the Delta
Method in Metric Analytics", KDD 2018) gives the variance of the ratio of sums from per-user sums only.

Statistics per arm x segment: users ``n`` and the sums ``sum_num`` (Y), ``sum_den`` (X), ``sum_num2``,
``sum_den2``, ``sum_num_den`` -- all additive, so aggregation stays one grouped query, and
``zero_den``, the users with a zero denominator (reported, see below). With ``r = Ybar / Xbar``::

    Var(r) ~= (s_Y^2 - 2 r s_XY + r^2 s_X^2) / (n Xbar^2)

Model: ``log r[arm, s] = baseline[s] + effect[arm, s]`` with the treatment effects pooled across segments by
the same priors as every family (``effect_mu``, ``effect_sd``), and each cell's observed log-ratio normal
around it with the delta-method variance ``(se / r)^2``. Because every cell is Gaussian on that scale, the
segment effects and baselines are integrated out exactly and drawn from their conditionals (see
:meth:`Ratio.build_model`): large experiments measure ratios precisely, and there the shared non-centred
parametrisation diverges when segments respond alike. The overall ratio weighs segments by their share of
the denominator, so that with one arm it is the ratio of sums over all users. Closed form (one segment, no
pooling): a flat-prior Student-t around each cell's ratio with the delta-method scale.

Data rules: denominators must be non-negative (views, sessions and impressions are); numerators may be
negative (refunds), but every arm x segment cell with users must have a positive ratio, as the model works
on the log scale (a cell whose numerator sums to zero -- no DMs at all in a small segment -- is refused,
naming it: merge the segment). Users with a zero denominator stay in the analysis -- they are randomised users, and whatever
numerator they have counts in the sum -- and their number is reported. A cell with users but a zero total
denominator has no ratio and is refused, naming the arm and segment.

Planning baseline: ``{ratio, denominator}``, the control ratio and the mean denominator per user. Simulated
users have a geometric denominator with that mean and a Poisson numerator with mean ``ratio x denominator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, TYPE_CHECKING

import numpy as np
import xarray as xr

from bayes_ab.data.queries import MetricQuery, Sum, cells, metric_column, numeric_checks, product_name
from bayes_ab.data.stats import ALL_USERS, as_counts, cell_sums, check_arms_have_users
from bayes_ab.errors import DataError
from bayes_ab.families.base import Family, ParamReader, WarmupCase, cells_of, positive_baseline
from bayes_ab.families.covariates import value_cross_name
from bayes_ab.families.sums import initial
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import mean_draws, posterior_dataset
from bayes_ab.models.gaussian_pool import EMPTY_CELL_VARIANCE, pooled_gaussian_cells
from bayes_ab.models.hierarchy import coords_for, with_control
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:     # PyMC is imported where a model is built: a load from the model cache never needs it
    import pymc as pm

SUMS = ("sum_num", "sum_den", "sum_num2", "sum_den2", "sum_num_den")
MIN_CLUSTERS_PER_ARM = 10
"""Fewer clusters than this in an arm of a cluster-randomised experiment is warned about: the delta method's
variance is then estimated from too few clusters to tell the effect from cluster noise."""
CONCENTRATION_USERS = 5.0
"""Fewer effective users than this holding an arm's numerator or denominator (of at least twice as many users)
is warned about (:meth:`Ratio.warnings`)."""


@dataclass(frozen=True)
class RatioParams(FamilyParams):
    """``numerator`` and ``denominator``: the per-user columns whose sums make the ratio."""

    numerator: str | None = None
    denominator: str | None = None

    def columns(self, metric: str) -> dict[str, str]:
        wanted = {}
        if self.numerator:
            wanted[self.numerator] = f"numerator of metric {metric!r}"
        if self.denominator:
            wanted[self.denominator] = f"denominator of metric {metric!r}"
        return wanted


@dataclass(frozen=True)
class ClusterTotals(RatioParams):
    """A metric of a cluster-randomised experiment read as a ratio of cluster totals
    (:mod:`bayes_ab.families.clustered`): ``numerator`` and ``denominator`` name the columns of the per-cluster
    rows, ``cluster`` the randomised unit and ``measured`` what the declared metric measures (its definition).
    Built in code only: a spec's ratio metric cannot declare these fields."""

    cluster: str = ""
    measured: str = ""
    declared_family: str = ""


def ratio_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    n: np.ndarray,
    sums: dict[str, np.ndarray],
    metric: str,
    zero_den: np.ndarray | None = None,
) -> xr.Dataset:
    """Statistics of a ratio metric: per arm x segment, users ``n`` and the sums in :data:`SUMS`.

    ``zero_den`` (users with a zero denominator) is optional; it is reported, not modelled.

    Raises
    ------
    DataError
        A sum missing, not finite or of the wrong shape; a negative denominator sum; sums of squares that
        cannot be; a cell with users but no denominator, or with a ratio that is not positive.
    """
    data = cell_sums(n, sums, SUMS, metric, arms, segments)
    counts = data["n"][1]
    zeros = np.zeros(counts.shape) if zero_den is None else zero_den
    data["zero_den"] = (("arm", "segment"), as_counts(zeros, "users with a zero denominator", metric, arms, segments))
    ds = xr.Dataset(data, coords={"arm": list(arms), "segment": list(segments)},
                    attrs={"family": Ratio.name, "metric": metric})
    safe = np.maximum(counts, 1)
    for total, squares in (("sum_num", "sum_num2"), ("sum_den", "sum_den2")):
        spread = ds[squares].values - ds[total].values ** 2 / safe
        if (spread < -1e-6 * (1 + np.abs(ds[squares].values))).any():
            raise DataError(f"metric {metric!r}: {squares} is smaller than {total}^2 / n (not a sum of squares)")
    _refuse(ds["sum_den"] < 0, ds, metric, "has a negative denominator sum")
    _refuse((ds["n"] > 0) & (ds["sum_den"] == 0), ds, metric,
            "has users but a zero total denominator: the ratio is undefined")
    _refuse((ds["n"] > 0) & (ds["sum_num"] <= 0), ds, metric,
            "has a total numerator <= 0: the model is on the log-ratio scale and needs a positive ratio in "
            "every cell with users (merge small segments)")
    check_arms_have_users(ds)
    return ds


def _refuse(mask: xr.DataArray, ds: xr.Dataset, metric: str, problem: str) -> None:
    if bool(mask.any()):
        i, j = np.argwhere(mask.values)[0]
        raise DataError(f"metric {metric!r}: arm {str(ds['arm'].values[i])!r}, segment "
                        f"{str(ds['segment'].values[j])!r} {problem}")


def delta_moments(n: np.ndarray, sum_num: np.ndarray, sum_den: np.ndarray, sum_num2: np.ndarray,
                  sum_den2: np.ndarray, sum_num_den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's ratio of sums and its delta-method standard error (array-first: statistics and
    simulations call it on plain arrays).

    The per-user sample (co)variances use ``n - 1``. The standard error is floored at ``|pooled ratio| / n``
    (the resolution of a ratio from n users), so that a degenerate cell -- every user alike -- keeps a finite
    precision; cells without users get the pooled ratio and an effectively infinite standard error.
    """
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    pooled = float(np.sum(sum_num) / np.sum(sum_den)) if np.sum(sum_den) > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sum_den > 0, sum_num / np.where(sum_den > 0, sum_den, 1.0), pooled)
    x_bar, y_bar, var_y, var_x, cov, _ = user_covariances(n, sum_num, sum_den, sum_num2, sum_den2, sum_num_den)
    linear = np.maximum(var_y - 2 * ratio * cov + ratio ** 2 * var_x, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(linear / (safe * np.where(x_bar > 0, x_bar, np.inf) ** 2))
    se = np.maximum(np.nan_to_num(se, nan=0.0), abs(pooled) / safe)
    return ratio, np.where(n > 0, se, 1e6 * max(abs(pooled), 1.0))


def user_covariances(n: np.ndarray, sum_num: np.ndarray, sum_den: np.ndarray, sum_num2: np.ndarray,
                     sum_den2: np.ndarray, sum_num_den: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per cell: the mean denominator and numerator per user, the per-user sample variances of numerator and
    denominator and their covariance (with ``n - 1``, at least 1), and that divisor."""
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    x_bar, y_bar = sum_den / safe, sum_num / safe
    dof = np.maximum(n - 1, 1.0)
    var_y = np.maximum(sum_num2 - n * y_bar ** 2, 0.0) / dof
    var_x = np.maximum(sum_den2 - n * x_bar ** 2, 0.0) / dof
    cov = (sum_num_den - n * x_bar * y_bar) / dof
    return x_bar, y_bar, var_y, var_x, cov, dof


def _cell_sums(stats: xr.Dataset) -> tuple[np.ndarray, ...]:
    """``n`` and the five sums of every arm x segment cell, as floats."""
    return tuple(stats[name].values.astype(float) for name in ("n",) + SUMS)


def cell_ratios(stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """:func:`delta_moments` of every arm x segment cell of ``stats``."""
    return delta_moments(*_cell_sums(stats))


def sample_ratio(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings()):
    """Unpooled closed form: a flat-prior Student-t (n - 1 degrees of freedom) around each cell's ratio with
    its delta-method standard error, shaped like an MCMC fit."""
    rng = np.random.default_rng(sampler.seed)
    n = stats["n"].values.astype(float)
    ratio, se = cell_ratios(stats)
    squares = se ** 2 * n * np.maximum(n - 1, 1)
    return posterior_dataset(stats, sampler, mean_draws(rng, n, ratio, squares, n - 1,
                                                        (sampler.chains, sampler.draws)))


class _RatioTruth:
    """Per user: a geometric denominator with the baseline's mean, and a Poisson numerator with mean
    ``ratio x denominator`` (so numerator and denominator are correlated, as views and DMs are)."""

    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric, self.ratios, self.denominator = metric, baseline.value * factors, float(baseline.spread)

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        p = 1.0 / (1.0 + self.denominator)
        if latent is None:
            den = rng.geometric(p, size=arms.size) - 1.0
        else:       # the geometric's inverse CDF: a high latent activity, a large denominator
            den = np.floor(np.log1p(-np.clip(latent, 0.0, 1 - 1e-12)) / np.log1p(-p))
        return np.column_stack([rng.poisson(self.ratios[arms] * den), den])


class _RatioSums:
    """The ratio statistics of the simulated users, per arm."""

    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.n = initial(start, "n", len(arms))
        self.sums = {name: initial(start, name, len(arms)) for name in SUMS}
        self.zero_den = initial(start, "zero_den", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        y, x = values[:, 0].astype(float), values[:, 1].astype(float)
        k = len(self.arms)
        self.n += np.bincount(arms, minlength=k)
        for name, v in zip(SUMS, (y, x, y * y, x * x, y * x)):
            self.sums[name] += np.bincount(arms, weights=v, minlength=k)
        self.zero_den += np.bincount(arms, weights=(x == 0).astype(float), minlength=k)

    def users(self) -> np.ndarray:
        return self.n

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        return delta_moments(self.n, *(self.sums[name] for name in SUMS))

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        ratio, se = self._moments()
        n = np.maximum(self.n, 1)
        return mean_draws(rng, n, ratio, se ** 2 * n * np.maximum(n - 1, 1), n - 1, (draws,))

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        ratio, se = self._moments()
        return ratio, se ** 2

    def link(self, means: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(means, 1e-12))

    def stats(self) -> xr.Dataset:
        return ratio_stats(self.arms, [ALL_USERS], self.n[:, None].astype(np.int64),
                           {name: v[:, None] for name, v in self.sums.items()}, self.metric.name,
                           self.zero_den[:, None])


class Ratio(Family):
    """sum(numerator) / sum(denominator) over users, randomised by user; the delta method per cell."""

    name = "ratio"
    params_type = RatioParams

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The effect is a difference of log-ratios: log(1 + r) has slope 1 at r = 0."""
        return 1.0
    uses_column = False
    unit = "per unit of the denominator"
    baseline_fields = ("ratio", "denominator")

    def parse_params(self, read: ParamReader) -> RatioParams:
        numerator = read.string("numerator", None) or read.fail(
            "numerator", "is required for a ratio metric (the per-user column summed above the line)")
        denominator = read.string("denominator", None) or read.fail(
            "denominator", "is required for a ratio metric (the per-user column summed below the line)")
        if numerator == denominator:
            read.fail("denominator", f"must differ from the numerator ({numerator!r})")
        return RatioParams(numerator, denominator)

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """``{ratio, denominator}``: the control ratio and the mean denominator per user (both positive)."""
        return positive_baseline(raw, where, ("ratio", "denominator"), "the denominator as a mean per user")

    cluster_sums = True

    def unit_values(self, metric: Metric, kinds: dict[str, str]) -> tuple[str, str | None]:
        """The user's numerator, weighted by the user's denominator: a cluster's totals are the two sums."""
        p = RatioParams.of(metric)
        return (metric_column(metric, p.numerator, kinds, "numerator values").number(),
                metric_column(metric, p.denominator, kinds, "denominator values").number())

    def covariate_values(self, metric: Metric, kinds: dict[str, str]) -> dict[str, tuple[str, str]]:
        """The numerator and the denominator: the covariates are crossed with both (the ratio's linearisation)."""
        p = RatioParams.of(metric)
        numerator, denominator = self.unit_values(metric, kinds)
        return {"value": (numerator, p.numerator), "denominator": (denominator, p.denominator)}

    def covariate_moments(self, stats: xr.Dataset, metric: Metric, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The joint linearisation of numerator and denominator: a user's contribution to its cell's ratio ``r`` is
        ``u = (Y - r X) / Xbar`` (the delta method's influence), so the within-cell sum of squares is the delta
        method's ``(S_YY - 2 r S_XY + r^2 S_XX) / Xbar^2`` and the cross-product with a covariate ``Z`` is
        ``(S_YZ - r S_XZ) / Xbar``; the cell's value is ``r``."""
        sums = _cell_sums(stats)
        den = sums[2]
        ratio = np.where(den > 0, sums[1] / np.where(den > 0, den, 1.0), 0.0)
        x_bar, y_bar, var_y, var_x, cov, dof = user_covariances(*sums)
        scale = np.where(den > 0, x_bar, 1.0)
        within = np.maximum(var_y - 2 * ratio * cov + ratio ** 2 * var_x, 0.0) * dof / scale ** 2
        count = x.shape[-1]
        s_yz = np.stack([stats[value_cross_name(k)].values for k in range(count)], axis=-1) - x * y_bar[..., None]
        s_xz = (np.stack([stats[value_cross_name(k, "denominator")].values for k in range(count)], axis=-1)
                - x * x_bar[..., None])
        return ratio, within, (s_yz - ratio[..., None] * s_xz) / scale[..., None]

    def effective_cells(self, stats: xr.Dataset, metric: Metric, means: np.ndarray, users: np.ndarray) -> xr.Dataset:
        """``users`` effective users with the cell's mean denominator, a numerator giving the adjusted ratio
        ``means``, and the cell's own per-user (co)variances of numerator and denominator."""
        sums = _cell_sums(stats)
        n = sums[0]
        x_bar, _, var_y, var_x, cov, _ = user_covariances(*sums)
        bad = (n > 0) & (means <= 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise DataError(f"metric {stats.attrs.get('metric')!r}: arm {str(stats['arm'].values[i])!r}, segment "
                            f"{str(stats['segment'].values[j])!r}: the covariate-adjusted ratio is not positive "
                            f"({means[i, j]:.3g}); the model is on the log-ratio scale: merge small segments or "
                            "drop covariates that predict more than the cell holds")
        y_bar = means * x_bar
        rest = np.maximum(users - 1.0, 0.0)
        cells = ("arm", "segment")
        return stats.assign(n=(cells, users), sum_num=(cells, y_bar * users), sum_den=(cells, x_bar * users),
                            sum_num2=(cells, rest * var_y + users * y_bar ** 2),
                            sum_den2=(cells, rest * var_x + users * x_bar ** 2),
                            sum_num_den=(cells, rest * cov + users * x_bar * y_bar))

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """The five sums of the delta method and the users with a zero denominator; aggregated rows carry
        them in ``<num>``, ``<den>``, ``<num>_sq``, ``<den>_sq``, ``<num>_x_<den>`` and ``<den>_zero``."""
        p = RatioParams.of(metric)
        top = metric_column(metric, p.numerator, kinds, "numerator values")
        bottom = metric_column(metric, p.denominator, kinds, "denominator values")
        y, x = top.number(), bottom.number()
        checks = (numeric_checks(top, metric.name, alias + "n")
                  + numeric_checks(bottom, metric.name, alias + "d", minimum=0, what="denominators"))
        num, den = p.numerator, p.denominator
        sums = {f"{alias}_sum_num": Sum(f"SUM({y})", num, factors=(num,)),
                f"{alias}_sum_den": Sum(f"SUM({x})", den, minimum=0, factors=(den,)),
                f"{alias}_sum_num2": Sum(f"SUM({y} * {y})", product_name(num, num), minimum=0, factors=(num, num)),
                f"{alias}_sum_den2": Sum(f"SUM({x} * {x})", product_name(den, den), minimum=0, factors=(den, den)),
                f"{alias}_sum_num_den": Sum(f"SUM({y} * {x})", product_name(num, den), factors=(num, den)),
                f"{alias}_zero_den": Sum(f"COUNT(*) FILTER (WHERE {x} = 0)", f"{den}_zero", whole=True, minimum=0,
                                         per_user_max=1)}

        def build(arms, segments, table, detail):
            shape = (len(arms), len(segments))
            got = {name: cells(table, f"{alias}_{name}", shape) for name in SUMS}
            return ratio_stats(arms, segments, cells(table, "users", shape), got, metric.name,
                               cells(table, f"{alias}_zero_den", shape))

        return MetricQuery(checks, sums, build)

    def kind_of(self, metric: Metric) -> str:
        p = RatioParams.of(metric)
        return f"{p.declared_family}, as a ratio of cluster totals" if isinstance(p, ClusterTotals) else self.name

    def unit_of(self, metric: Metric) -> str:
        """Per user for a cluster-randomised metric (its cluster totals are over users), else the family's."""
        p = RatioParams.of(metric)
        return "per user" if isinstance(p, ClusterTotals) and p.declared_family != self.name else self.unit

    def segment_weights(self, stats: xr.Dataset) -> xr.DataArray:
        """Each segment's share of the denominator: the overall ratio is then the ratio of sums."""
        den = stats["sum_den"].sum("arm")
        return den / den.sum()

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        """Each cell's log-ratio and its delta-method variance ``(se / ratio)^2``; a cell without users gets
        the pooled log-ratio and a variance so large that it carries no information."""
        ratio, se = cell_ratios(stats)
        users = stats["n"].values > 0
        pooled = math.log(float(stats["sum_num"].sum() / stats["sum_den"].sum()))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.where(users, np.log(np.where(users, ratio, 1.0)), pooled)
            log_var = np.where(users, (se / np.where(users, ratio, 1.0)) ** 2, EMPTY_CELL_VARIANCE)
        return {"log_ratio": log_ratio, "log_var": log_var}

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Ratio of sums per arm over the segments in ``stats``."""
        den = stats["sum_den"].sum("segment")
        return stats["sum_num"].sum("segment") / den.where(den > 0)

    def variant(self, stats: xr.Dataset, metric: Metric) -> str:
        return "delta"

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        """Besides empty cells: an arm whose numerator or denominator a handful of users carry.

        ``(sum x)^2 / sum x^2`` is the number of users who, holding equal shares, would give the same concentration
        (the arm's users when all are alike; 1 when one user holds everything). Below
        :data:`CONCENTRATION_USERS`, with many more users in the arm, one or a few values decide the ratio (a
        denominator of 1e9 from a logging error turned a lift into -100% without a word)."""
        found = list(super().warnings(stats, metric))
        p = RatioParams.of(metric)
        if isinstance(p, ClusterTotals):
            few = [(str(arm), int(n)) for arm, n in zip(stats["arm"].values, stats["n"].sum("segment").values)
                   if n < MIN_CLUSTERS_PER_ARM]
            if few:
                found.append(f"arm {few[0][0]!r} has {few[0][1]} cluster(s) ({p.cluster!r}); with fewer than "
                             f"{MIN_CLUSTERS_PER_ARM} per arm the spread between clusters is poorly known and the "
                             "interval may be too narrow: randomise more, smaller clusters")
            return tuple(found)
        totals = stats.sum("segment")
        for part, column, total, squares in (("numerator", p.numerator, "sum_num", "sum_num2"),
                                             ("denominator", p.denominator, "sum_den", "sum_den2")):
            for arm in totals["arm"].values:
                cell = totals.sel(arm=arm)
                n, s, q = float(cell["n"]), float(cell[total]), float(cell[squares])
                if q <= 0 or n < 2 * CONCENTRATION_USERS:
                    continue
                effective = s * s / q
                if effective < CONCENTRATION_USERS:
                    found.append(f"arm {str(arm)!r}: the {part} ({column!r}) is as concentrated as if "
                                 f"{effective:.1f} of its {n:,.0f} users held all of it: one or a few users decide "
                                 "the ratio; check those values")
        return tuple(found)

    def definition(self, metric: Metric) -> str:
        p = RatioParams.of(metric)
        if isinstance(p, ClusterTotals):
            return (f"{p.measured}; randomised by {p.cluster!r}, so read per arm as the sum of its clusters' totals "
                    "over the sum of their users (or denominators): each cluster is one unit")
        return f"sum of {p.numerator!r} over sum of {p.denominator!r}, across an arm's users (not a mean of ratios)"

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        """The likelihood, the per-user correlation of numerator and denominator, and zero denominators."""
        p = RatioParams.of(metric)
        total = stats.sum(["arm", "segment"])
        n = float(total["n"])
        cov = float(total["sum_num_den"]) / n - float(total["sum_num"]) * float(total["sum_den"]) / n ** 2
        var_y = float(total["sum_num2"]) / n - (float(total["sum_num"]) / n) ** 2
        var_x = float(total["sum_den2"]) / n - (float(total["sum_den"]) / n) ** 2
        rho = cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else float("nan")
        zero = int(total["zero_den"])
        if isinstance(p, ClusterTotals):
            return (f"clusters ({p.cluster!r}) as the units: delta-method normal likelihood of each cell's ratio of "
                    f"cluster totals ({p.declared_family} metric), log link; {n:,.0f} clusters, correlation of a "
                    f"cluster's total and its size {rho:.2f}")
        return (f"delta-method normal likelihood of each cell's ratio sum({p.numerator}) / sum({p.denominator}), "
                f"log link; per-user correlation of numerator and denominator {rho:.2f}; "
                f"{zero:,} user(s) ({zero / n:.1%}) with a zero denominator, kept in the sums")

    def build_model(self, stats: xr.Dataset, metric: Metric) -> "pm.Model":
        """The segment hierarchy with everything but the pooling scale integrated out exactly.

        On the log scale every cell is Gaussian, ``y[a, s] ~ Normal(b[s] + e[a, s], v[a, s])`` with the
        delta-method variance ``v``, a flat prior on each segment's control log-ratio ``b[s]``, and the
        effects ``e[t, s] ~ Normal(effect_mu[t], effect_sd[t]^2)``, ``effect_mu ~ Normal(0, effect_sd
        prior)`` as in every family. Given ``effect_sd``, the likelihood is Gaussian in ``effect_mu``, ``b``
        and ``e``, so the sampler sees only ``effect_sd`` (with its exact marginal likelihood) and standard
        normals that place ``effect_mu``, ``b`` and ``e`` by their closed-form conditionals
        (:func:`~bayes_ab.models.gaussian_pool.pooled_gaussian_cells`). The posterior is the hierarchy's,
        without the funnels between the scale and the effects that precise ratios (large experiments) and few
        segments otherwise cause.
        """
        import pymc as pm
        import pytensor.tensor as pt

        coords = coords_for(stats)
        arms, segments = coords["arm"], coords["segment"]
        data = self.model_data(stats)
        cells = ("arm", "segment")
        with pm.Model(coords=coords) as model:
            y = pm.Data("log_ratio", data["log_ratio"], dims=cells)
            v = pm.Data("log_var", data["log_var"], dims=cells)
            baseline, effect = pooled_gaussian_cells(y, v, metric.prior, len(arms) - 1, len(segments))
            pm.Deterministic("mean", pt.exp(with_control(baseline, effect)), dims=cells)
        return model

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """The delta-method cells (the family's one structure)."""
        n = cells_of(arms, segments, 500)
        sums = {"sum_num": 3.0 * n, "sum_den": 2.0 * n, "sum_num2": 12.0 * n, "sum_den2": 6.0 * n,
                "sum_num_den": 7.0 * n}
        metric = Metric(name="per_session", family=self.name, params=RatioParams("revenue", "sessions"))
        return (WarmupCase("delta", metric, ratio_stats(arms, segments, n, sums, metric.name),
                           7.5 if len(arms) == 2 else 11.0),)

    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        return "Student-t around each cell's ratio with its delta-method standard error, flat prior"

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        """Per-user variance of the linearised ratio ``(Y - r X) / Xbar`` under the simulated users' model
        (Poisson numerator given the denominator): ``r / Xbar``."""
        return mean / float(baseline.spread)

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """The control arm's mean denominator per user."""
        control = stats.isel(arm=0).sum("segment")
        return float(control["sum_den"]) / float(control["n"])

    sample_conjugate = staticmethod(sample_ratio)
    truth_type = _RatioTruth
    accumulator_type = _RatioSums
