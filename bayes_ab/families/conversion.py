"""Conversion: did the user convert (0/1)? Statistics: users and converted users per arm x segment.

Model: binomial likelihood, ``logit p[arm, s] = baseline[s] + effect[arm, s]`` with ``effect[control] = 0``.
Segment baselines get independent weakly-informative priors (``Normal(logit of the control's overall rate,
2.5)`` on the logit scale); they
are well identified at any realistic traffic, and pooling them gave the sampler funnels without changing
the answer. Treatment effects are partially pooled across segments (:mod:`bayes_ab.models.hierarchy`).
Closed form: ``Beta(1 + successes, 1 + failures)`` per arm x segment (flat prior).
"""

from __future__ import annotations

from typing import Sequence, TYPE_CHECKING

import numpy as np
import xarray as xr
from scipy.special import expit

from bayes_ab.data.engine import BOOLEAN, INTEGER
from bayes_ab.data.queries import Check, MetricQuery, Sum, cells, metric_column
from bayes_ab.data.stats import ALL_USERS, as_counts, check_arms_have_users, first_cell
from bayes_ab.errors import DataError
from bayes_ab.families.base import RateFamily, WarmupCase, cells_of
from bayes_ab.families.covariates import fractional
from bayes_ab.families.sums import initial
from bayes_ab.metric import Baseline, Metric
from bayes_ab.models.conjugate import posterior_dataset, rate_draws
from bayes_ab.models.gaussian_pool import (EMPTY_CELL_VARIANCE, LINK_V, LINK_Y, NORMAL_CELLS, is_normal_cells,
                                            normal_cells_model)
from bayes_ab.models.quadrature import IntegrableModel, binomial_logit
from bayes_ab.models.hierarchy import coords_for, pooled_mean, segment_baselines, segment_effects, with_control
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:     # PyMC is imported where a model is built: a load from the model cache never needs it
    import pymc as pm

BASELINE_LOGIT_SD = 2.5
DATA_NAMES = ("n", "successes")
NORMAL_CELL_EVENTS = 50
"""Conversions and non-conversions every cell needs before its binomial likelihood is replaced by a normal on
the logit scale (:func:`~bayes_ab.models.gaussian_pool.normal_cells_model`): the logit's sampling skewness is
then below about 1 / sqrt(50) of its sd."""


def normal_cells(stats: xr.Dataset) -> bool:
    """Whether every cell with users has :data:`NORMAL_CELL_EVENTS` conversions and non-conversions (and there
    are segments to pool: one segment is integrated exactly)."""
    n, successes = stats["n"].values, stats["successes"].values
    present = n > 0
    return (stats.sizes["segment"] > 1
            and bool(np.all(np.minimum(successes, n - successes)[present] >= NORMAL_CELL_EVENTS)))


def smoothed_rate(successes, n):
    """``(successes + 1/2) / (n + 1)``: a rate kept off 0 and 1, whose logit is finite."""
    return (np.asarray(successes, dtype=float) + 0.5) / (np.asarray(n, dtype=float) + 1.0)


def logit_cells(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Each cell's observed logit and its variance ``1 / (n p (1 - p))`` (the binomial's information); an
    empty cell gets 0 and a variance so large that it carries nothing."""
    n = stats["n"].values.astype(float)
    rate = smoothed_rate(stats["successes"].values, n)
    present = n > 0
    variance = np.where(present, 1.0 / (np.maximum(n, 1.0) * rate * (1.0 - rate)), EMPTY_CELL_VARIANCE)
    return {LINK_Y: np.where(present, np.log(rate / (1.0 - rate)), 0.0), LINK_V: variance}


def conversion_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    users: np.ndarray,
    successes: np.ndarray,
    metric: str,
) -> xr.Dataset:
    """Build and validate the conversion statistics of one metric.

    Parameters
    ----------
    arms, segments
        Labels; ``arms[0]`` is the control.
    users, successes
        Arrays of shape ``(len(arms), len(segments))``: users exposed and users converted.
    metric
        Metric name, kept in ``attrs`` and used in error messages.
    """
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), as_counts(users, "users", metric, arms, segments)),
            "successes": (("arm", "segment"), as_counts(successes, "successes", metric, arms, segments)),
        },
        coords={"arm": list(arms), "segment": list(segments)},
        attrs={"family": Conversion.name, "metric": metric},
    )
    over = ds["successes"] > ds["n"]
    if bool(over.any()):
        arm, seg = first_cell(over)
        raise DataError(
            f"metric {metric!r}: successes ({int(ds['successes'].sel(arm=arm, segment=seg))}) exceed "
            f"users ({int(ds['n'].sel(arm=arm, segment=seg))}) for arm {arm!r}, segment {seg!r}"
        )
    check_arms_have_users(ds)
    return ds


def sample_conversion(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                      prior_a: float = 1.0, prior_b: float = 1.0):
    """Independent draws from every arm x segment Beta posterior, shaped like an MCMC fit."""
    rng = np.random.default_rng(sampler.seed)
    draws = rate_draws(rng, stats["successes"].values, stats["n"].values, (sampler.chains, sampler.draws),
                       prior_a, prior_b)
    return posterior_dataset(stats, sampler, draws)


class _RateTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric = metric
        self.rates = np.clip(baseline.value * factors, 0.0, 1.0)

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        # a user converts when its uniform is in the top ``rate`` share: a high latent activity converts
        u = rng.random(arms.size) if latent is None else 1.0 - latent
        return (u < self.rates[arms]).astype(np.int8)


class _Conversions:
    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.n = initial(start, "n", len(arms))
        self.successes = initial(start, "successes", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        self.n += np.bincount(arms, minlength=len(self.arms))
        self.successes += np.bincount(arms, weights=values, minlength=len(self.arms))

    def users(self) -> np.ndarray:
        return self.n

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        return rate_draws(rng, self.successes, self.n, (draws,))

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        rate = self.successes / np.maximum(self.n, 1)
        return rate, rate * (1 - rate) / np.maximum(self.n, 1)

    def link(self, means: np.ndarray) -> np.ndarray:
        p = np.clip(means, 1e-12, 1 - 1e-12)
        return np.log(p / (1 - p))

    def stats(self) -> xr.Dataset:
        return conversion_stats(self.arms, [ALL_USERS], self.n[:, None].astype(np.int64),
                                self.successes[:, None].astype(np.int64), self.metric.name)


def pooled_logit(stats: xr.Dataset) -> np.ndarray:
    """The logit of the control arm's conversion over all segments, where the segment baselines' prior is
    centred (kept off the boundary: half a conversion either way).

    Centred at logit 0 (a 50% rate), the prior pulled every small segment's rate towards one half: with 1,000
    segments of 30 control users at 10% the control's overall rate came out 6.7 standard errors above its
    observed value, and the overall lift at -11% with no true effect."""
    rate = smoothed_rate(stats["successes"].values[0].sum(), stats["n"].values[0].sum())
    return np.asarray(np.log(rate / (1.0 - rate)))


class Conversion(RateFamily):
    """Binary per-user outcome; the metric is the conversion rate."""

    name = "conversion"
    binary = True
    panel_total = "MAX"         # converted in the period: on any of its days

    def draw_from_means(self, rng: np.random.Generator, means: np.ndarray) -> np.ndarray:
        """A user converts with probability its own rate (capped at 1)."""
        return (rng.random(np.shape(means)) < np.minimum(means, 1.0)).astype(float)
    cluster_sums = True

    def unit_values(self, metric: Metric, kinds: dict[str, str]) -> tuple[str, str | None]:
        """The user's 0/1 as a number: a cluster's total is its converted users."""
        return metric_column(metric, metric.column, kinds, "conversions").number(), None

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """Successes: per user a 0/1 (or boolean) value; in aggregated rows the column holds converted users."""
        column = metric_column(metric, metric.column, kinds, "conversions")
        checks = [Check(f"{alias}_missing", column.missing(), "has missing values (NULL/NaN)",
                        metric.column, metric.name, column.missing_detector())]
        v = column.number()
        problem = "is not binary (conversion needs 0/1 or true/false)"
        if column.kind == INTEGER:
            checks.append(Check(f"{alias}_nonbinary", f"({column.sql} NOT IN (0, 1))", problem, metric.column,
                                metric.name,
                                f"CASE WHEN MIN({column.sql}) < 0 OR MAX({column.sql}) > 1 THEN 1 ELSE 0 END"))
            successes = f"SUM({column.sql})"
        elif column.kind == BOOLEAN:
            successes = f"SUM(CAST({column.sql} AS INTEGER))"
        else:
            checks.append(Check.counted(
                f"{alias}_nonbinary", f"(NOT {column.missing()} AND ({v} IS NULL OR {v} NOT IN (0, 1)))",
                problem, metric.column, metric.name))
            successes = f"COUNT(*) FILTER (WHERE {v} = 1)"

        def build(arms, segments, table, detail):
            shape = (len(arms), len(segments))
            return conversion_stats(arms, segments, cells(table, "users", shape),
                                    cells(table, f"{alias}_successes", shape), metric.name)

        return MetricQuery(checks, {f"{alias}_successes": Sum(successes, metric.column, whole=True, minimum=0,
                                                                 per_user_max=1)},
                           build)

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        if normal_cells(stats):
            return logit_cells(stats)
        return binomial_data(stats)

    inverse_link = staticmethod(expit)

    def variant(self, stats: xr.Dataset, metric: Metric) -> str:
        """``binomial``, or ``normal_cells`` where every cell is large (:func:`normal_cells`)."""
        return NORMAL_CELLS if normal_cells(stats) else ("binomial_effective" if fractional(stats) else "binomial")

    def definition(self, metric: Metric) -> str:
        return f"share of users whose {metric.column!r} is 1 (true): a conversion rate"

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        if normal_cells(stats):
            return (f"binomial likelihood, logit link; every cell has at least {NORMAL_CELL_EVENTS} conversions and "
                    "non-conversions, so each is approximated by a normal on the logit scale and the segment "
                    "effects are integrated out exactly")
        return "binomial likelihood, logit link"

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        """Besides empty cells: no user converted yet (or every user did), so the lift is the prior's."""
        successes, users = int(stats["successes"].sum()), int(stats["n"].sum())
        if users and successes in (0, users):
            which = "no user has converted" if successes == 0 else "every user has converted"
            return super().warnings(stats, metric) + (
                f"{which} in any arm yet: there is nothing to compare, the lift is the prior's",)
        return super().warnings(stats, metric)

    def effective_cells(self, stats: xr.Dataset, metric: Metric, means: np.ndarray, users: np.ndarray) -> xr.Dataset:
        """``users`` effective users of whom the share ``means`` (kept in [0, 1]) converted: fractional counts, which
        the binomial likelihood takes as they are (:func:`binomial_model`)."""
        cells = ("arm", "segment")
        return stats.assign(n=(cells, users), successes=(cells, np.clip(means, 0.0, 1.0) * users))

    def user_moments(self, stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A 0/1 value is its own square: the sum of squares is the conversions."""
        successes = stats["successes"].values.astype(float)
        return stats["n"].values.astype(float), successes, successes

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Raw conversion rate per arm over all segments in ``stats`` (no model, no prior)."""
        return pooled_mean(stats, "successes")

    def build_model(self, stats: xr.Dataset, metric: Metric) -> "pm.Model":
        if normal_cells(stats):
            return normal_cells_model(stats, metric, self.model_data(stats))
        return binomial_model(stats, metric)

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """d/dr [logit(p (1 + r)) - logit(p)] at r = 0 is 1 / (1 - p), p the control's observed rate."""
        rate = float(pooled_mean(stats, "successes").values[0])
        return 1.0 / (1.0 - min(rate, 0.999)) if np.isfinite(rate) else 1.0

    def integrable(self, stats: xr.Dataset, metric: Metric) -> IntegrableModel | None:
        """With one segment the model has one logit per arm: integrated exactly (no sampler, no MC chains),
        a learned Student-t effect prior as its scale mixture of normals (both modes of a prior-data conflict)."""
        if stats.sizes["segment"] != 1:
            return None
        users, successes = stats["n"].values[:, 0], stats["successes"].values[:, 0]
        return IntegrableModel(tuple(binomial_logit(y, n) for y, n in zip(successes, users)),
                               BASELINE_LOGIT_SD, lambda x: 1.0 / (1.0 + np.exp(-x)))

    def pools_baselines(self, variant: str) -> bool:
        """The exact likelihood's hierarchy does (:func:`~bayes_ab.models.hierarchy.segment_baselines`); normal
        cells integrate their baselines out."""
        return not is_normal_cells(variant)

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """Small cells (the exact binomial hierarchy) and large ones (normal cells, :func:`normal_cells`)."""
        metric = Metric(name="converted", family=self.name, column="converted")
        normal_seconds = 9.0 if len(arms) == 2 else 17.5
        return tuple(WarmupCase(label, metric, conversion_stats(arms, segments, cells_of(arms, segments, users),
                                                                cells_of(arms, segments, users // 10), metric.name),
                                seconds)
                     for label, users, seconds in (("binomial, small cells", 40, 6.0),
                                                   (f"{NORMAL_CELLS}, large cells", 4000, normal_seconds)))

    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        return "Beta-Binomial, flat prior"

    sample_conjugate = staticmethod(sample_conversion)
    truth_type = _RateTruth
    accumulator_type = _Conversions


def binomial_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """The exact binomial hierarchy's data: users and conversions per cell (whole numbers; fractional for the
    effective cells of a covariate-adjusted metric), the baselines' prior centre (the pooled control logit)."""
    dtype = "float64" if fractional(stats) else "int64"
    return {**{name: stats[name].values.astype(dtype) for name in DATA_NAMES},
            "baseline_center": pooled_logit(stats)}


def binomial_model(stats: xr.Dataset, metric: Metric) -> "pm.Model":
    """The exact binomial hierarchy: non-centred segment effects, baselines pooled from many segments on
    (:func:`~bayes_ab.models.hierarchy.segment_baselines`)."""
    import pymc as pm

    coords = coords_for(stats)
    arms, segments = coords["arm"], coords["segment"]
    data = binomial_data(stats)
    with pm.Model(coords=coords) as model:
        n = pm.Data("n", data["n"], dims=("arm", "segment"))
        successes = pm.Data("successes", data["successes"], dims=("arm", "segment"))
        center = pm.Data("baseline_center", data["baseline_center"])
        baseline = segment_baselines(center, BASELINE_LOGIT_SD, len(segments))
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        logit_p = with_control(baseline, effect)
        if fractional(stats):
            # the binomial log-likelihood in the logit without its constant, which fractional counts leave defined
            pm.Potential("obs", (successes * logit_p - n * pm.math.log1pexp(logit_p)).sum())
        else:
            pm.Binomial("obs", n=n, logit_p=logit_p, observed=successes, dims=("arm", "segment"))
        pm.Deterministic("mean", pm.math.sigmoid(logit_p), dims=("arm", "segment"))
    return model
