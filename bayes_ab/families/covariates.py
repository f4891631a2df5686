"""Regression adjustment on pre-period covariates (CUPED and its multi-covariate form) for conversion, count, mean,
ratio and retention metrics (retention through its Kaplan-Meier influence function: :mod:`bayes_ab.families.retention`).

**Statistics.** A metric's ``covariates:`` add to the one aggregation query, per arm x segment, the sums of each
covariate, of each pair's products and of the metric's per-user value (a ratio: its numerator and its denominator)
times each covariate (:func:`covariate_sums`). With the family's own sums they are the sufficient statistics of the
within-cell regression of the value on the covariates. They come from per-user rows and from aggregated rows alike,
on every engine.

**Adjustment.** One slope vector is estimated from the within-cell (centred) cross-products pooled over every arm
and segment (:func:`adjustment`). It is pooled across arms, as CUPED requires: a slope fitted per arm could absorb
part of the effect. It is estimated within cells, so segment and arm differences in level never bias it. Each cell's
mean moves by the slope times the gap between its covariate means and its *segment's* (all arms together): arms are
compared at the covariates their segment has, and a segment's level stays where its users are. Pre-period values
cannot depend on the arm, so the adjustment changes no expected difference. It removes the part of the noise the
covariates predict: the residual variance is the share ``1 - R^2`` of the raw (pooled within cells). A ratio is
regressed through its linearisation, each user's ``(Y - r X) / Xbar`` (numerator and denominator jointly, the delta
method's influence), so the covariates remove what they predict of the ratio's own noise.

**Model.** A cell of ``n`` users whose adjusted mean has the residual variance carries the information of
``n / (1 - R^2)`` users without covariates. The family's own likelihood is fitted to *effective cells*
(:meth:`~bayes_ab.families.base.Family.effective_cells`): the adjusted mean over ``n / (1 - R^2)`` users with the
cell's raw per-user variance. So the binomial, robust count, normal and delta-method likelihoods, the segment
pooling, the exact one-segment integration and the closed forms all apply unchanged. One pooled ``R^2`` is used
rather than a residual variance per cell because a small cell's own residual variance is noisy, and tying each
cell's weight to it biased the pooled answer (the robust count model's lesson). The slope's own uncertainty is left
out: it is estimated from every user, so it moves the effect by ``O(1/N)``, far below the effect's standard error at
any size a test has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bayes_ab.data.queries import Check, Column, Sum, metric_column, numeric_checks, product_name
from bayes_ab.data.sql import quote_literal
from bayes_ab.errors import DataError
from bayes_ab.metric import Metric

Family = Any
"""A :class:`~bayes_ab.families.base.Family` (which imports this module: named here without importing it back)."""

MIN_RESIDUAL_SHARE = 1e-6
"""The smallest residual variance share an adjustment may claim: covariates that predict the value exactly (a
covariate that *is* the outcome) would otherwise turn every cell into infinitely many effective users."""


def sum_name(k: int) -> str:
    """The statistics variable of the sum of covariate ``k``."""
    return f"cov{k}"


def cross_name(k: int, j: int) -> str:
    """The statistics variable of the sum of covariate ``k`` times covariate ``j`` (``k <= j``)."""
    return f"cov{min(k, j)}_cov{max(k, j)}"


def value_cross_name(k: int, part: str = "value") -> str:
    """The statistics variable of the sum of the metric's value (or of a ratio's ``denominator``) times covariate
    ``k``."""
    return f"{part}_cov{k}"


def variable_names(count: int, parts: tuple[str, ...] = ("value",)) -> tuple[str, ...]:
    """Every covariate statistic of a metric with ``count`` covariates whose per-user values are ``parts``."""
    return (tuple(sum_name(k) for k in range(count))
            + tuple(cross_name(k, j) for k in range(count) for j in range(k, count))
            + tuple(value_cross_name(k, part) for part in parts for k in range(count)))


def covariate_sums(family: "Family", metric: Metric, alias: str,
                   kinds: dict[str, str]) -> tuple[list[Check], dict[str, Sum]]:
    """The checks of the covariate columns and the per-cell sums the adjustment needs, for the grouped query.

    In aggregated rows the sums are the columns ``<x>``, ``<x>_sq``, ``<x>_x_<z>`` and ``<y>_x_<x>`` (``<y>`` the
    metric's value column, ``<column>_cap<cap>`` with a cap), as for the mean family's CUPED; a categorical
    covariate's terms are named ``<column>=<level>``.
    """
    values = family.covariate_values(metric, kinds)
    checks, terms = covariate_terms(metric, alias, kinds)
    sums: dict[str, Sum] = {}
    for k, (name, x) in enumerate(terms):
        sums[f"{alias}_{sum_name(k)}"] = Sum(f"SUM({x})", name, factors=(name,))
        for j in range(k, len(terms)):
            other, z = terms[j]
            sums[f"{alias}_{cross_name(k, j)}"] = Sum(f"SUM({x} * {z})", product_name(name, other),
                                                      minimum=0 if j == k else None, factors=(name, other))
        for part, (value, value_column) in values.items():
            sums[f"{alias}_{value_cross_name(k, part)}"] = Sum(f"SUM({value} * {x})", product_name(value_column, name),
                                                                factors=(value_column, name))
    return checks, sums


def covariate_terms(metric: Metric, alias: str, kinds: dict[str, str]) -> tuple[list[Check], list[tuple[str, str]]]:
    """The checks of the covariate columns and each regression term as (name, per-user SQL): a numeric column as a
    number; a categorical one as a 0/1 per level but the reference, its values checked against the levels."""
    checks: list[Check] = []
    terms: list[tuple[str, str]] = []
    for i, covariate in enumerate(metric.covariates):
        if not covariate.levels:
            column = metric_column(metric, covariate.column, kinds, "covariate values")
            checks += numeric_checks(column, metric.name, f"{alias}c{i}", what="covariate values")
            terms.append((covariate.column, column.number()))
            continue
        column = Column(covariate.column, kinds[covariate.column])
        text = f"CAST({column.sql} AS VARCHAR)"
        listed = ", ".join(quote_literal(level) for level in covariate.levels)
        checks += [Check(f"{alias}c{i}_missing", column.missing(), "has missing values (NULL/NaN)", column.name,
                         metric.name, column.missing_detector()),
                   Check.counted(f"{alias}c{i}_level", f"(NOT {column.missing()} AND {text} NOT IN ({listed}))",
                                 f"has values outside its covariate levels ({', '.join(covariate.levels)})",
                                 column.name, metric.name)]
        terms += [(term, f"CASE WHEN {text} = {quote_literal(level)} THEN 1.0 ELSE 0.0 END")
                  for term, level in zip(covariate.terms, covariate.levels[1:])]
    return checks, terms


def with_covariates(stats: xr.Dataset, table, alias: str, metric: Metric, parts: tuple[str, ...]) -> xr.Dataset:
    """``stats`` with the covariate sums of the grouped query's ``table`` (rows in arm x segment order); ``parts``:
    the per-user values the covariates were crossed with (:meth:`~bayes_ab.families.base.Family.covariate_values`)."""
    shape = (stats.sizes["arm"], stats.sizes["segment"])
    data = {}
    for name in variable_names(len(metric.covariate_terms), parts):
        values = table[f"{alias}_{name}"].to_numpy(dtype=float).reshape(shape)
        if not np.isfinite(values).all():
            raise DataError(f"metric {metric.name!r}: the covariate sums are not finite (values too large for double "
                            "precision): rescale the covariate columns")
        data[name] = (("arm", "segment"), values)
    return stats.assign(data)


@dataclass(frozen=True)
class Adjustment:
    """The regression adjustment of one metric's cells.

    ``slopes``: the change of the value per unit of each covariate (pooled within cells). ``means``: each cell's
    adjusted mean (arm x segment; 0 for an empty cell). ``residual_share``: the pooled within-cell residual
    variance over the raw one, ``1 - R^2`` after degrees of freedom; ``correlation``: the multiple correlation
    ``R`` (with one covariate, its within-cell correlation with the value, signed).
    """

    covariates: tuple[str, ...]
    slopes: np.ndarray
    means: np.ndarray
    residual_share: float
    correlation: float

    @property
    def variance_reduction(self) -> float:
        """The share of the variance of every cell's mean the covariates remove."""
        return 1.0 - self.residual_share

    def describe(self) -> str:
        """One clause for the model line."""
        names = ", ".join(repr(c) for c in self.covariates)
        slopes = ", ".join(f"{s:.3g}" for s in self.slopes)
        return (f"adjusted for the pre-period covariate{'s' if len(self.covariates) > 1 else ''} {names} "
                f"(slope{'s' if len(self.covariates) > 1 else ''} {slopes}, pooled within cells across arms; "
                f"{'correlation' if len(self.covariates) == 1 else 'multiple correlation'} {self.correlation:.2f}): "
                f"variance reduced by {self.variance_reduction:.0%}, intervals x{np.sqrt(self.residual_share):.2f}")

    def to_dict(self) -> dict:
        """The adjustment's numbers for ``summary.json``."""
        return {"covariates": list(self.covariates), "slopes": [float(s) for s in self.slopes],
                "correlation": self.correlation, "variance_reduction": self.variance_reduction}


def adjustment(family: "Family", stats: xr.Dataset, metric: Metric,
               terms: tuple[str, ...] | None = None) -> Adjustment | None:
    """The adjustment of ``metric``'s cells by its covariates; ``None`` without covariates. ``terms``: the names of
    the covariate terms in ``stats`` (default: the metric's; a simulation names the one it draws)."""
    terms = metric.covariate_terms if terms is None else terms
    count = len(terms)
    if not count:
        return None
    try:
        x = np.stack([stats[sum_name(k)].values for k in range(count)], axis=-1)                 # (A, S, K)
        xx = np.empty(x.shape + (count,))
        for k in range(count):
            for j in range(count):
                xx[..., k, j] = stats[cross_name(k, j)].values
        means, within, crossed = family.covariate_moments(stats, metric, x)
    except KeyError as missing:
        raise DataError(f"metric {metric.name!r}: its statistics lack the covariate sums ({missing}): they were "
                        "aggregated without the covariates the spec names; aggregate again") from None
    n = stats["n"].values.astype(float)
    slopes, adjusted, share, correlation = regression(n, means, within, crossed, x, xx)
    return Adjustment(terms, slopes, adjusted, share, correlation)


def mean_moments(n: np.ndarray, total: np.ndarray, squares: np.ndarray, x: np.ndarray,
                 xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell, from the sums of a value (``total``, ``squares``), of the covariates (``x``, last axis K) and of
    the value times each (``xy``): the value's mean, its within-cell centred sum of squares, and its within-cell
    centred cross-products with the covariates (what :func:`regression` takes)."""
    safe = np.maximum(n, 1.0)
    mean = total / safe
    return mean, np.maximum(squares - total * mean, 0.0), xy - x * mean[..., None]


def regression(n: np.ndarray, means: np.ndarray, within: np.ndarray, crossed: np.ndarray, x: np.ndarray,
               xx: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The pooled within-cell regression of the value on the covariates.

    Parameters
    ----------
    n, means, within, crossed
        Per cell (arm x segment): users, the value's mean, its within-cell centred sum of squares and its centred
        cross-products with the covariates (last axis K): :func:`mean_moments`, or a ratio's linearisation.
    x, xx
        Per cell: the covariates' sums (last axis K) and their cross-products (K x K).

    Returns
    -------
    slopes, means, residual_share, correlation
        See :class:`Adjustment`; ``means`` is each cell's adjusted mean (0 for an empty cell), the last axis of the
        cells being the segment whose covariate means (all arms together) the cells are moved to.
    """
    count = x.shape[-1]
    safe = np.maximum(n, 1.0)
    present = n > 0
    cxx = (xx - x[..., :, None] * x[..., None, :] / safe[..., None, None])[present].sum(axis=0)
    cxy = crossed[present].sum(axis=0)
    cyy = float(within[present].sum())
    slopes, rank = _solve(cxx, cxy)
    users, cells = float(n.sum()), int(present.sum())
    raw_dof, residual_dof = users - cells, users - cells - rank
    if cyy <= 0 or residual_dof <= 0:
        share, correlation = 1.0, 0.0
    else:
        explained = float(slopes @ cxy)
        residual = max(cyy - explained, 0.0)
        share = float(np.clip((residual / residual_dof) / (cyy / raw_dof), MIN_RESIDUAL_SHARE, None))
        correlation = float(np.sqrt(max(explained, 0.0) / cyy))
        if count == 1 and cxy[0] < 0:
            correlation = -correlation
    segment_means = x.sum(axis=0) / np.maximum(n.sum(axis=0), 1.0)[..., None]                  # (S, K)
    adjusted = np.where(present, means - ((x / safe[..., None] - segment_means[None]) @ slopes), 0.0)
    return slopes, adjusted, share, correlation


def _solve(cxx: np.ndarray, cxy: np.ndarray) -> tuple[np.ndarray, int]:
    """Least-squares slopes of the pooled normal equations; a covariate constant within every cell, or one that
    repeats another, gets the minimum-norm solution (it adjusts nothing it cannot)."""
    scale = np.sqrt(np.clip(np.diag(cxx), 0.0, None))
    usable = scale > 0
    slopes = np.zeros(len(cxy))
    if not usable.any():
        return slopes, 0
    s = scale[usable]
    standardised = cxx[np.ix_(usable, usable)] / np.outer(s, s)
    solution, _, rank, _ = np.linalg.lstsq(standardised, cxy[usable] / s, rcond=1e-10)
    slopes[usable] = solution / s
    return slopes, int(rank)


def fractional(stats: xr.Dataset) -> bool:
    """Whether ``stats`` are a covariate adjustment's effective cells: their users are fractional (floats), where the
    aggregation gives whole counts. A family's model of such cells drops its likelihood's count constant."""
    return stats["n"].dtype.kind == "f"


def effective_statistics(family: "Family", stats: xr.Dataset, metric: Metric,
                         terms: tuple[str, ...] | None = None) -> xr.Dataset:
    """The statistics the family's model is fitted to: ``stats`` itself without covariates, else its effective
    cells (the adjusted means over ``n / (1 - R^2)`` users, :meth:`~bayes_ab.families.base.Family.effective_cells`);
    ``terms`` as for :func:`adjustment`."""
    found = adjustment(family, stats, metric, terms)
    if found is None:
        return stats
    n = stats["n"].values.astype(float)
    return family.effective_cells(stats, metric, found.means, n / found.residual_share)


# -- simulation ---------------------------------------------------------------------------------------------------

REACH_USERS = 200_000
"""Simulated control users from which the strongest reachable correlation of a covariate is measured."""


SIMULATED_TERMS = ("covariate",)
"""The one covariate term a simulated user carries."""


class CovariateTruth:
    """A metric's truth with a pre-period covariate per user: ``x = loading * z + sqrt(1 - loading^2) * e`` with
    ``z`` the normal score of the user's latent activity (which drives its value) and ``e`` independent noise. ``x``
    does not depend on the arm, as a value from before the experiment cannot. The correlation is with the user's
    outcome as the family defines it (:meth:`~bayes_ab.families.base.Family.covariate_outcome`: the value; retention:
    retained at the horizon). :meth:`draw` gives each user's value and covariate as two columns; :meth:`accumulator`
    wraps a family accumulator to keep them."""

    def __init__(self, truth, family: "Family", correlation: float, rng: np.random.Generator):
        from scipy.special import ndtr

        self.truth, self.metric, self.correlation = truth, truth.metric, correlation
        z = rng.standard_normal(REACH_USERS)
        values = np.asarray(truth.draw(rng, np.zeros(REACH_USERS, dtype=int), ndtr(z)), dtype=float)
        if values.ndim != 1:
            raise DataError(f"metric {self.metric.name!r}: a covariate correlation is simulated for metrics with one "
                            "value per user (conversion, count, mean, retention); leave this metric out of "
                            "plan.covariate_correlation")
        outcome = family.covariate_outcome(self.metric, values)
        reach = float(np.corrcoef(z, outcome)[0, 1]) if outcome.std() > 0 else 0.0
        if not reach > abs(correlation) * 1.001:
            raise DataError(f"metric {self.metric.name!r}: a covariate correlation of {correlation:g} cannot be "
                            f"simulated for its baseline; the strongest a covariate of the user's activity reaches is "
                            f"{reach:.2f}")
        self.loading = correlation / reach

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        from scipy.special import ndtr, ndtri

        z = rng.standard_normal(arms.size) if latent is None else ndtri(np.clip(latent, 1e-12, 1 - 1e-12))
        values = np.asarray(self.truth.draw(rng, arms, ndtr(z)), dtype=float)
        covariate = self.loading * z + np.sqrt(1.0 - self.loading ** 2) * rng.standard_normal(arms.size)
        return np.column_stack([values, covariate])

    def accumulator(self, inner, family: "Family"):
        """``inner`` (the family's accumulator of the values) kept with the covariate
        (:meth:`~bayes_ab.families.base.Family.adjusted_accumulator`)."""
        return family.adjusted_accumulator(inner)


class AdjustedAccumulator:
    """A family accumulator plus one covariate; its posterior and estimate are the adjusted ones: the family's
    closed form on the effective cells :func:`effective_statistics` makes of :meth:`covariate_stats`, as in the
    analysis. This class keeps the covariate's per-arm sums for a family of one value per user
    (:meth:`~bayes_ab.families.base.Family.user_moments`); a family whose covariate statistics need more overrides
    :meth:`add_covariate` and :meth:`covariate_stats`."""

    summed = (sum_name(0), cross_name(0, 0), value_cross_name(0))
    """The covariate statistics this accumulator keeps per arm (users and the values' sums are the inner one's)."""

    def __init__(self, inner, family: "Family"):
        self.inner, self.family, self.metric = inner, family, inner.metric
        self.sums = {name: np.zeros(len(inner.arms)) for name in self.summed}

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        self.add_covariate(arms, values[:, 0], values[:, 1])

    def add_covariate(self, arms: np.ndarray, values: np.ndarray, covariate: np.ndarray) -> None:
        """Add users' values to the inner accumulator and their covariate to this one's sums."""
        self.inner.add(arms, values)
        k = len(self.inner.arms)
        for name, weights in zip(self.sums, (covariate, covariate * covariate, covariate * values)):
            self.sums[name] += np.bincount(arms, weights=weights, minlength=k)

    def covariate_stats(self) -> xr.Dataset:
        """The inner statistics (one segment) with the covariate's, as the aggregation gives them."""
        return self.inner.stats().assign({name: (("arm", "segment"), total[:, None])
                                          for name, total in self.sums.items()})

    def users(self) -> np.ndarray:
        return self.inner.users()

    def link(self, means: np.ndarray) -> np.ndarray:
        return self.inner.link(means)

    def stats(self) -> xr.Dataset:
        return self.inner.stats()

    def effective(self):
        """The family's accumulator of the effective cells (the inner one while an arm has fewer than 3 users)."""
        if np.any(self.inner.users() < 3):
            return self.inner
        effective = effective_statistics(self.family, self.covariate_stats(), self.metric, SIMULATED_TERMS)
        return self.family.accumulator(self.metric, tuple(self.inner.arms), effective.sum("segment"))

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        return self.effective().posterior(rng, draws)

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        return self.effective().estimate()
