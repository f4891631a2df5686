"""Hierarchical model of a continuous per-user mean, exact normal likelihood on (n, sum, sum of squares).

``y ~ Normal(mu[arm, s] + theta * (x - x_bar), sigma[arm, s])`` with ``mu[arm, s] = baseline[s] +
effect[arm, s]`` (identity link). Without a covariate ``theta = 0``. With a pre-period covariate
x (CUPED) the regression adjustment is part of the model: ``theta`` is estimated jointly from the
within-cell sums of x, x^2 and x*y, so its uncertainty is carried into the effect.

The likelihood only needs, per cell, n, the mean of y, and the within-cell centred sums
``Syy``, ``Sxx``, ``Sxy`` (numerically stable). Priors are on the data's scale: ``scale`` is the
pooled within-cell standard deviation of y, and the treatment-effect prior is in units of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence, TYPE_CHECKING

import numpy as np
import xarray as xr

from bayes_ab.data.queries import (MetricQuery, Sum, capped, cells, metric_column, numeric_checks, product_name,
                                   value_name)
from bayes_ab.data.stats import ALL_USERS, cell_sums, check_arms_have_users
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families.base import ParamReader, WarmupCase, cells_of, finite, mean_baseline, moments_spread
from bayes_ab.families.sums import Sums, SumsFamily
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import mean_draws, posterior_dataset
from bayes_ab.models.gaussian_pool import EMPTY_CELL_VARIANCE, pooled_gaussian_cells
from bayes_ab.models.hierarchy import coords_for, with_control
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:     # PyMC is imported where a model is built: a load from the model cache never needs it
    import pymc as pm


@dataclass(frozen=True)
class MeanParams(FamilyParams):
    """``covariate``: a pre-period column for CUPED. ``cap``: per-user values above it count as ``cap``."""

    covariate: str | None = None
    cap: float | None = None

    def columns(self, metric: str) -> dict[str, str]:
        return {self.covariate: f"covariate of metric {metric!r}"} if self.covariate else {}

LOG_SIGMA_SD = 1.0
THETA_SD = 5.0          # standardised slope
EQUAL_VALUES = 1e-12
"""A cell's centred sum of squares below this share of its raw one: its values are all equal (up to rounding)."""


def centred_sums(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Per cell: n, mean of y, within-cell centred Syy and, with a covariate centred on its overall
    mean, the cell mean of x and the within-cell centred Sxx and Sxy (zeros without one)."""
    n = stats["n"].values.astype(float)
    safe = np.where(n > 0, n, 1.0)
    sy, syy = stats["sum"].values, stats["sumsq"].values
    out = {"n": n, "ybar": sy / safe, "syy": np.maximum(syy - sy ** 2 / safe, 0.0)}
    if "sum_x" in stats:
        x_bar = stats["sum_x"].values.sum() / n.sum()
        sc = stats["sum_x"].values - n * x_bar
        scc = stats["sum_x2"].values - 2 * x_bar * stats["sum_x"].values + n * x_bar ** 2
        scy = stats["sum_xy"].values - x_bar * sy
        out.update(cbar=sc / safe, scc=np.maximum(scc - sc ** 2 / safe, 0.0), scy=scy - sc * sy / safe)
    else:
        zeros = np.zeros_like(n)
        out.update(cbar=zeros, scc=zeros, scy=zeros)
    return out


def covariate_fit(stats: xr.Dataset) -> tuple[float, float]:
    """Pooled within-cell correlation of y and x, and the implied variance reduction ``rho^2``."""
    c = centred_sums(stats)
    if "sum_x" not in stats or c["scc"].sum() <= 0 or c["syy"].sum() <= 0:
        return 0.0, 0.0
    rho = c["scy"].sum() / np.sqrt(c["scc"].sum() * c["syy"].sum())
    return float(rho), float(rho ** 2)


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """``cuped`` when the statistics carry a covariate, else ``plain``."""
    return "cuped" if "sum_x" in stats else "plain"


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Likelihood and, with CUPED, the variance reduction."""
    capped = "" if MeanParams.of(metric).cap is None else f"; values capped at {MeanParams.of(metric).cap:g}"
    if variant(stats, metric) == "plain":
        return "normal likelihood on per-cell n, mean and variance" + capped
    rho, reduction = covariate_fit(stats)
    return (f"normal likelihood with CUPED on covariate {MeanParams.of(metric).covariate!r}: within-cell correlation "
            f"{rho:.2f}, variance reduced by {reduction:.0%} (interval width x{np.sqrt(1 - reduction):.2f})"
            + capped)


def mean_model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-cell centred sums plus the pooled location and scale that set the priors.

    ``present`` (1 for a cell with users, 0 for an empty one), ``n_safe`` (n, at least 1) and ``empty_variance``
    (:data:`~bayes_ab.models.gaussian_pool.EMPTY_CELL_VARIANCE` for an empty cell) keep an empty cell out of the
    likelihood. ``spread_seen`` is 0 for a cell whose values are all equal (a small segment where nobody spent):
    the normal's estimate of its sd is 0 and its within-cell likelihood grows without bound as the sd goes to 0,
    which drove such fits to R-hat 10^14; that cell's spread is left to its segment's and arm's factors.
    """
    c = centred_sums(stats)
    n = c["n"]
    dof = max(n.sum() - np.count_nonzero(n), 1.0)
    scale = np.sqrt(c["syy"].sum() / dof)
    x_scale = np.sqrt(c["scc"].sum() / dof) if c["scc"].sum() > 0 else 1.0
    squares = c["syy"] + n * c["ybar"] ** 2             # the cell's raw sum of squares, the scale of its rounding
    return {**c, "present": (n > 0).astype(float), "n_safe": np.maximum(n, 1.0),
            "empty_variance": np.where(n > 0, 0.0, EMPTY_CELL_VARIANCE),
            "spread_seen": (c["syy"] > EQUAL_VALUES * squares).astype(float),
            "center": np.array((c["ybar"] * n).sum() / n.sum()),
            "scale": np.array(scale if scale > 0 else 1.0), "x_scale": np.array(x_scale)}




MEAN_SUMS = ("sum", "sumsq")
COVARIATE_SUMS = ("sum_x", "sum_x2", "sum_xy")


def mean_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    n: np.ndarray,
    sums: dict[str, np.ndarray],
    metric: str,
) -> xr.Dataset:
    """Statistics of a continuous metric: ``n``, ``sum``, ``sumsq`` per arm x segment, and with a
    pre-period covariate x also ``sum_x``, ``sum_x2``, ``sum_xy`` (for CUPED).
    """
    data = cell_sums(n, sums, MEAN_SUMS + (COVARIATE_SUMS if "sum_x" in sums else ()), metric, arms, segments)
    ds = xr.Dataset(data, coords={"arm": list(arms), "segment": list(segments)},
                    attrs={"family": Mean.name, "metric": metric})
    variance = ds["sumsq"] - ds["sum"] ** 2 / ds["n"].where(ds["n"] > 0)
    if bool((variance < -1e-6 * (1 + abs(ds["sumsq"]))).any()):
        raise DataError(f"metric {metric!r}: sumsq is smaller than sum^2 / n (not a sum of squares)")
    check_arms_have_users(ds)
    return ds


def sample_mean(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings()):
    """Flat-prior Student-t posterior of each cell mean (CUPED-adjusted with the pooled slope)."""
    rng = np.random.default_rng(sampler.seed)
    c = centred_sums(stats)
    n = c["n"]
    theta = c["scy"].sum() / c["scc"].sum() if c["scc"].sum() > 0 else 0.0
    residual = c["syy"] - 2 * theta * c["scy"] + theta ** 2 * c["scc"]
    draws = mean_draws(rng, n, c["ybar"] - theta * c["cbar"], residual, n - 1 - (theta != 0),
                       (sampler.chains, sampler.draws))
    return posterior_dataset(stats, sampler, draws)


class _NormalTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric, self.means, self.sd = metric, baseline.value * factors, float(baseline.spread)

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        if latent is None:
            return rng.normal(self.means[arms], self.sd)
        from scipy.special import ndtri

        return self.means[arms] + self.sd * ndtri(np.clip(latent, 1e-12, 1 - 1e-12))


class MeanSums(Sums):
    """Simulated per-user values kept as n, sum and sum of squares, as the mean family's statistics."""

    def link(self, means: np.ndarray) -> np.ndarray:
        n, _, squares = self.moments()          # the mean model's effect is in pooled standard deviations
        scale = np.sqrt(squares.sum() / max(n.sum() - len(n), 1))
        return means / (scale if scale > 0 else 1.0)

    def stats(self) -> xr.Dataset:
        return mean_stats(self.arms, [ALL_USERS], self.n[:, None].astype(np.int64),
                          {"sum": self.sum[:, None], "sumsq": self.sumsq[:, None]}, self.metric.name)


class Mean(SumsFamily):
    """A number per user (revenue, time spent); the metric is its mean, optionally CUPED-adjusted."""

    name = "mean"
    params_type = MeanParams
    baseline_fields = ("mean", "sd")

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The effect is in pooled standard deviations: a relative effect r moves the mean by r times the
        control's mean, that is r * mean / sd standard deviations."""
        control = float(self.observed_mean(stats, metric).values[0])
        scale = float(mean_model_data(stats)["scale"])
        if not np.isfinite(control) or control == 0:
            raise DataError(f"metric {metric.name!r}: a learned prior of relative effects needs "
                            f"a control mean other than 0, got {control!r}")
        return abs(control) / scale

    def parse_params(self, read: ParamReader) -> MeanParams:
        cap = read.positive("cap", 1.0) if read.get("cap") is not None else None
        return MeanParams(read.string("covariate", None), cap)

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """``{mean, sd}``: the control arm's mean and per-user standard deviation (both required)."""
        mean, spread = mean_baseline(raw, where, "sd")
        if spread is None or finite(spread, "sd", where) <= 0:
            raise SpecError(f"{where}: sd is required and must be positive, got {spread!r}")
        if mean == 0:
            raise SpecError(f"{where}: mean must not be 0 (relative lifts are measured against it)")
        return Baseline(mean, float(spread))

    cluster_sums = True

    def unit_values(self, metric: Metric, kinds: dict[str, str]) -> tuple[str, str | None]:
        """The user's (capped) value: a cluster's total is the sum over its users."""
        column = metric_column(metric, metric.column, kinds, "values")
        return capped(column, MeanParams.of(metric).cap), None

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """Sums of y and y^2 (and x, x^2, xy with a covariate); aggregated rows carry them in the columns
        ``<y>``, ``<y>_sq``, ``<x>``, ``<x>_sq`` and ``<y>_x_<x>`` (``<y>`` is ``<column>_cap<cap>`` with a
        cap, whose sums are of capped values)."""
        params = MeanParams.of(metric)
        column = metric_column(metric, metric.column, kinds, "values")
        y, y_name = capped(column, params.cap), value_name(metric.column, params.cap)
        checks = numeric_checks(column, metric.name, alias)
        sums = {f"{alias}_sum": Sum(f"SUM({y})", y_name, factors=(y_name,)),
                f"{alias}_sumsq": Sum(f"SUM({y} * {y})", product_name(y_name, y_name), minimum=0,
                                      factors=(y_name, y_name))}
        if params.covariate:
            covariate = metric_column(metric, params.covariate, kinds, "covariate values")
            x = covariate.number()
            checks += numeric_checks(covariate, metric.name, alias + "x")
            c = params.covariate
            sums.update({f"{alias}_sum_x": Sum(f"SUM({x})", c, factors=(c,)),
                         f"{alias}_sum_x2": Sum(f"SUM({x} * {x})", product_name(c, c), minimum=0, factors=(c, c)),
                         f"{alias}_sum_xy": Sum(f"SUM({y} * {x})", product_name(y_name, c), factors=(y_name, c))})

        def build(arms, segments, table, detail):
            shape = (len(arms), len(segments))
            stats = {name[len(alias) + 1:]: cells(table, name, shape) for name in sums}
            return mean_stats(arms, segments, cells(table, "users", shape), stats, metric.name)

        return MetricQuery(checks, sums, build)

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        return mean_model_data(stats)

    # the module's functions of (statistics, metric) serve as the family's methods
    variant = staticmethod(variant)
    describe = staticmethod(describe)

    def definition(self, metric: Metric) -> str:
        p = MeanParams.of(metric)
        capped = f", each user's value capped at {p.cap:g}" if p.cap is not None else ""
        adjusted = f", adjusted for the pre-period {p.covariate!r} (CUPED)" if p.covariate else ""
        return f"mean of {metric.column!r} per user{capped}{adjusted}"

    def build_model(self, stats: xr.Dataset, metric: Metric) -> "pm.Model":
        """The segment hierarchy with the cell means' levels and effects integrated out exactly.

        Per cell the n values' likelihood splits into the within-cell sum of squares, which involves only
        ``sigma`` (and the CUPED slope ``theta``), and the cell mean, ``ybar - theta * cbar ~ Normal(mu,
        sigma^2 / n)``. Given the sigmas, ``theta`` and the pooling scale, the cell means are Gaussian cells
        (:func:`~bayes_ab.models.gaussian_pool.pooled_gaussian_cells`, on the standardised scale ``(y -
        center) / scale``), so the baselines, ``effect_mu`` and the segment effects are integrated out and
        drawn from their conditionals: NUTS samples only the sigmas, ``theta`` and the pooling scale. Until
        0.2 all of them were sampled, and real spend data (mostly zeros, 3 segments) ended with 1-4 divergent
        transitions after the retry. The baselines' prior is flat (it was Normal(0, 10) pooled standard
        deviations around the pooled mean: no difference at any sample size a test has).

        A cell's sd is a segment's factor times an arm's (``log_sigma_segment_z``, ``log_sigma_arm_z``; the
        control's arm factor is 1), not the cell's own. On skewed data (spend: mostly zeros, a few large purchases)
        a cell's sample sd rises and falls with its sample mean -- a cell that drew no large purchase has both small
        -- and the within-cell normal likelihood pins each cell's sd to its own sample sd, so with a free sd per
        cell (this model's earlier form) the cells that came out low got the most weight and pulled the segments'
        baselines down: the e-mail campaign's spend by 9 segments put the control's overall mean 0.36 standard
        errors below its observed mean, and simulated spend like it 0.27 below on average, with 7 fits of 40 failing
        their diagnostics (now +0.14, none failing). With the product, both arms of a segment share the segment's
        factor, so within a segment the arms are weighed by their sizes and the arms' overall spreads alone. One
        segment keeps one sd per cell (two factors for two cells).
        """
        import pymc as pm
        import pytensor.tensor as pt

        coords = coords_for(stats)
        arms, segments = coords["arm"], coords["segment"]
        data = mean_model_data(stats)
        cells_dims = ("arm", "segment")
        with pm.Model(coords=coords) as model:
            d = {name: pm.Data(name, values, dims=cells_dims if np.ndim(values) == 2 else None)
                 for name, values in data.items()}
            # each cell's sd is its segment's times its arm's: a cell's weight never follows its own noise (see above)
            segment_sigma = pm.Normal("log_sigma_segment_z", mu=0.0, sigma=LOG_SIGMA_SD, dims="segment")
            arm_sigma = pm.Normal("log_sigma_arm_z", mu=0.0, sigma=LOG_SIGMA_SD, dims="treatment")
            sigma = d["scale"] * pt.exp(with_control(segment_sigma, arm_sigma[:, None]))
            if variant(stats, metric) == "cuped":
                theta = pm.Normal("theta_z", mu=0.0, sigma=THETA_SD) * d["scale"] / d["x_scale"]
            else:
                theta = 0.0
            n, present = d["n"], d["present"]
            residual = d["syy"] - 2 * theta * d["scy"] + theta ** 2 * d["scc"]
            # the within-cell part: -(n - 1) log sigma - residual / (2 sigma^2); nothing for an empty cell or one
            # whose values are all equal (mean_model_data)
            within = -(n - present) * pt.log(sigma) - residual / (2 * sigma ** 2)
            pm.Potential("within", (d["spread_seen"] * within).sum())
            y = (d["ybar"] - theta * d["cbar"] - d["center"]) / d["scale"]
            # an empty cell's huge variance comes as data: written as (1 - present) * 1e12 in the graph, PyTensor's
            # rewrites expanded it into a difference of 1e12-sized terms and the compiled density lost all digits
            v = present * (sigma / d["scale"]) ** 2 / d["n_safe"] + d["empty_variance"]
            baseline, effect = pooled_gaussian_cells(y, v, metric.prior, len(arms) - 1, len(segments))
            pm.Deterministic("mean", d["center"] + d["scale"] * with_control(baseline, effect), dims=cells_dims)
        return model

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """Plain, and with a covariate (CUPED)."""
        n = cells_of(arms, segments, 500)
        plain = {"sum": 2.0 * n, "sumsq": 8.0 * n}
        adjusted = {**plain, "sum_x": 1.5 * n, "sum_x2": 4.0 * n, "sum_xy": 4.5 * n}
        seconds = 11.5 if len(arms) == 2 else 19.5
        return tuple(WarmupCase(label, metric, mean_stats(arms, segments, n, sums, metric.name), seconds)
                     for label, metric, sums in (
                         ("plain", Metric(name="value", family=self.name, column="value"), plain),
                         ("cuped", Metric(name="value", family=self.name, column="value",
                                          params=MeanParams(covariate="before")), adjusted)))

    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        return "Student-t, flat prior"

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        return float(baseline.spread) ** 2

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """The control arm's standard deviation (a tiny positive one when every value is equal)."""
        mean, variance = moments_spread(stats)
        return math.sqrt(variance) if variance > 0 else abs(mean) * 1e-6

    sample_conjugate = staticmethod(sample_mean)
    truth_type = _NormalTruth
    accumulator_type = MeanSums
