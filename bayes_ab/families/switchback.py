"""Switchback: a metric of an experiment that switches whole units (regions, servers) between arms period by period.

A change that cannot be toggled per user (a core API's latency, a marketplace's matching) is switched on or off per
unit and time period on a randomised schedule; every row of a (unit, period) cell saw the same arm. The cell is
the unit of the analysis: its rows' per-row values summed (the families' per-user values: a conversion, a count,
a value, a ratio's numerator over its denominator), divided by its rows (or its denominator), make the cell mean.

Model, per metric, on the cell means ``y[u, p]``::

    y[u, p] = unit[u] + period[p] + theta * T[u, p] + kappa * C[u, p] + noise,   noise ~ Normal(0, sigma^2)

with unit and period fixed effects (a unit's level; a period's level shared by every unit: the daily cycle, a
holiday, an outage), the treatment effect ``theta`` and the carry-over ``kappa``: in the first ``washout`` periods
after a switch ``C = T[previous period] - T[this period]`` (+1 where treatment lingers into a control period, -1
where control lingers into a treatment period). The effect is estimated from the cells outside the washout
(``theta`` from the others when ``washout`` > 0); the carry-over from all cells, reported with its interval, and
warned about when ``washout`` is 0 and it is clear. With flat priors on the fixed effects and ``log sigma``, the
posterior of ``theta`` and of the control's level (the fixed effects averaged over the analysed cells, weighted by
their rows) is a bivariate Student-t (the normal linear model's conjugate answer); the spec's effect prior on the
relative lift is applied by importance resampling (:mod:`bayes_ab.models.prior_resampling`), as for quantiles.

Cells are weighed alike: with many rows per cell the cell-to-cell noise (an hour's own randomness) dominates the
sampling noise of a mean, and the fixed-effects regression of the cell means is the reference analysis of
switchbacks. Noise that is correlated over time within a unit (a drift the period effects do not share) makes the
interval too narrow: the lag-1 autocorrelation of the residuals is reported and warned about above 0.3.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from bayes_ab.data.queries import MetricQuery
from bayes_ab.data.stats import ALL_USERS
from bayes_ab.errors import DataError, ModelError
from bayes_ab.families.base import ExactOnly, Family, positive_baseline
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import posterior_dataset
from bayes_ab.models.fitdata import FitData
from bayes_ab.models.hierarchy import mapped_prior_data
from bayes_ab.models.prior_resampling import resampled_enough
from bayes_ab.sampling import SamplerSettings

AUTOCORRELATION_WARNING = 0.3
MIN_UNITS = 2


@dataclass(frozen=True)
class SwitchbackParams(FamilyParams):
    """Built in code from a spec's ``switchback:`` block (:func:`~bayes_ab.families.clustered.switchback_metric`):
    the switched ``unit`` column, the ``period`` as the spec gives it, the ``washout`` periods after a switch, and
    what the declared metric measures."""

    unit: str = ""
    period: str = ""
    washout: int = 0
    measured: str = ""
    declared_family: str = ""


def switchback_stats(metric: str, arms: list[str], units: list[str], cell_unit: np.ndarray, cell_period: np.ndarray,
                     cell_arm: np.ndarray, cell_total: np.ndarray, cell_weight: np.ndarray,
                     washout: int) -> xr.Dataset:
    """Statistics of a switchback metric: per cell its unit (index into ``units``), period number, arm (index into
    ``arms``), total and weight (rows, or the denominator's total); per arm the cells and the totals.

    Raises
    ------
    DataError
        Not two arms, a cell without weight, fewer than :data:`MIN_UNITS` units, or an arm without cells.
    """
    if len(arms) != 2:
        raise DataError(f"metric {metric!r}: a switchback compares two arms (control and one treatment), got "
                        f"{len(arms)}")
    weight = np.asarray(cell_weight, dtype=float)
    if (weight <= 0).any():
        raise DataError(f"metric {metric!r}: a switchback cell (unit {units[int(cell_unit[weight <= 0][0])]!r}, period "
                        f"{int(cell_period[weight <= 0][0])}) has no rows or a zero denominator")
    if len(units) < MIN_UNITS:
        raise DataError(f"metric {metric!r}: a switchback needs at least {MIN_UNITS} units, got {len(units)}")
    arm = np.asarray(cell_arm, dtype=np.int64)
    per_arm = np.bincount(arm, minlength=2)
    if (per_arm == 0).any():
        raise DataError(f"metric {metric!r}: arm {arms[int(np.argmin(per_arm))]!r} has no switchback cells")
    total = np.asarray(cell_total, dtype=float)
    cells = ("arm", "segment")
    ds = xr.Dataset({
        "n": (cells, per_arm[:, None].astype(np.int64)),
        "sum_total": (cells, np.bincount(arm, weights=total, minlength=2)[:, None]),
        "sum_weight": (cells, np.bincount(arm, weights=weight, minlength=2)[:, None]),
        "cell_unit": ("cell", np.asarray(cell_unit, dtype=np.int64)),
        "cell_period": ("cell", np.asarray(cell_period, dtype=np.int64)),
        "cell_arm": ("cell", arm),
        "cell_total": ("cell", total),
        "cell_weight": ("cell", weight),
    }, coords={"arm": list(arms), "segment": [ALL_USERS], "unit": list(units)},
        attrs={"family": Switchback.name, "metric": metric, "washout": int(washout)})
    return ds


@dataclass(frozen=True)
class Regression:
    """The fixed-effects regression of one metric's cell means (see the module docstring)."""

    theta: float              # the effect, per row (flat prior)
    control: float            # the control's level per row: fixed effects averaged over the analysed cells
    scale: np.ndarray         # (2, 2) covariance of (theta, control) per unit of sigma^2
    sigma2: float             # residual variance of a cell mean
    dof: int
    cells: int                # analysed
    left_out: int             # in the washout
    carry: float              # kappa, from every cell
    carry_se: float
    carry_dof: int
    autocorrelation: float    # lag-1, of the residuals within units (NaN with too few pairs)

    def draws(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, 2) draws of (control, treatment) means: the bivariate Student-t of the flat-prior posterior."""
        sigma2 = self.dof * self.sigma2 / rng.chisquare(self.dof, size)
        chol = np.linalg.cholesky(self.scale + 1e-300 * np.eye(2))
        z = rng.standard_normal((size, 2)) @ chol.T * np.sqrt(sigma2)[:, None]
        theta, control = self.theta + z[:, 0], self.control + z[:, 1]
        return np.column_stack([control, control + theta])


def _positions(stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: periods since its unit's last switch (a large number before any switch) and the carry-over
    regressor of the periods right after a switch (previous arm minus this arm, else 0)."""
    unit, period, arm = (stats[name].values for name in ("cell_unit", "cell_period", "cell_arm"))
    washout = int(stats.attrs.get("washout", 0))
    order = np.lexsort((period, unit))
    position = np.full(unit.size, 10 ** 9, dtype=np.int64)
    carry = np.zeros(unit.size)
    for k in range(1, order.size):
        i, j = order[k], order[k - 1]
        if unit[i] != unit[j]:
            continue
        position[i] = 0 if arm[i] != arm[j] else min(position[j] + 1, 10 ** 9)
        if position[i] < max(washout, 1):
            # the arm the unit was on just before this run began: the arm of the cell before the switch
            carry[i] = (1 - arm[i]) - arm[i]
    return position, carry


def _fixed_effects(stats: xr.Dataset, keep: np.ndarray) -> np.ndarray:
    """Unit dummies and period dummies (the first present period left out) of the kept cells."""
    unit, period = stats["cell_unit"].values[keep], stats["cell_period"].values[keep]
    units = np.unique(unit)
    periods = np.unique(period)[1:]
    return np.column_stack([(unit[:, None] == units[None, :]).astype(float),
                            (period[:, None] == periods[None, :]).astype(float)])


_FITTED: dict[int, tuple[weakref.ref, "Regression"]] = {}


def regression(stats: xr.Dataset) -> Regression:
    """The cell means' fixed-effects regression: the effect from the cells outside the washout, the carry-over from
    all of them. Computed once per statistics object (the posterior, the description and the warnings read it).

    Raises
    ------
    DataError
        A schedule that leaves the effect unidentified (no unit and period with both arms) or no residual degrees of
        freedom.
    """
    key = id(stats)
    if key in _FITTED and _FITTED[key][0]() is stats:
        return _FITTED[key][1]
    fitted = _regression(stats)
    _FITTED[key] = (weakref.ref(stats), fitted)
    weakref.finalize(stats, _FITTED.pop, key, None)        # forgotten with the statistics (Datasets are unhashable)
    return fitted


def _regression(stats: xr.Dataset) -> Regression:
    metric = stats.attrs.get("metric")
    washout = int(stats.attrs.get("washout", 0))
    y_all = stats["cell_total"].values / stats["cell_weight"].values
    treated_all = stats["cell_arm"].values.astype(float)
    position, carry = _positions(stats)
    keep = position >= washout
    fe = _fixed_effects(stats, keep)
    x = np.column_stack([fe, treated_all[keep]])
    y = y_all[keep]
    dof = int(y.size - x.shape[1])
    if not _full_rank(x) or dof < 1:
        raise DataError(f"metric {metric!r}: the switchback schedule leaves the effect unidentified (it needs periods "
                        "in which units are on different arms, and more cells than units plus periods)")
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    residual = y - x @ beta
    sigma2 = float(residual @ residual / dof)
    weight = stats["cell_weight"].values[keep]
    level = np.r_[weight @ fe / weight.sum(), 0.0]            # the fixed effects averaged, arm set to control
    effect = np.r_[np.zeros(fe.shape[1]), 1.0]
    rows = np.vstack([effect, level])
    scale = rows @ xtx_inv @ rows.T
    # the carry-over from every cell: the washout cells measure it
    fe_all = _fixed_effects(stats, np.ones(y_all.size, dtype=bool))
    x_all = np.column_stack([fe_all, treated_all, carry])
    carry_value, carry_se, carry_dof = math.nan, math.nan, 0
    if np.any(carry != 0) and y_all.size > x_all.shape[1] and _full_rank(x_all):
        inverse = np.linalg.inv(x_all.T @ x_all)
        b = inverse @ x_all.T @ y_all
        rest = y_all - x_all @ b
        carry_dof = int(y_all.size - x_all.shape[1])
        carry_value = float(b[-1])
        carry_se = float(math.sqrt(rest @ rest / carry_dof * inverse[-1, -1]))
    return Regression(float(beta[-1]), float(level @ beta), scale, sigma2, dof, int(keep.sum()), int((~keep).sum()),
                      carry_value, carry_se, carry_dof, _lag_one(stats, keep, residual))


def _full_rank(x: np.ndarray) -> bool:
    """Whether the columns of ``x`` are independent: the rank of ``x'x`` (a few hundred columns: the SVD of the
    cross-product, not of the thousands of cells)."""
    return bool(np.linalg.matrix_rank(x.T @ x, hermitian=True) == x.shape[1])


def _lag_one(stats: xr.Dataset, keep: np.ndarray, residual: np.ndarray) -> float:
    """Lag-1 autocorrelation of the residuals of consecutive analysed periods within units."""
    unit, period = stats["cell_unit"].values[keep], stats["cell_period"].values[keep]
    order = np.lexsort((period, unit))
    u, p, r = unit[order], period[order], residual[order]
    pairs = (u[1:] == u[:-1]) & (p[1:] == p[:-1] + 1)
    if pairs.sum() < 10:
        return math.nan
    a, b = r[:-1][pairs], r[1:][pairs]
    return float(np.corrcoef(a, b)[0, 1])


def sample_switchback(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                      prior: dict[str, np.ndarray] | None = None) -> tuple[FitData, float]:
    """Independent posterior draws of the arms' means (flat prior: the Student-t of the regression; with ``prior``,
    the spec's effect prior on the log of treatment over control, by importance resampling) and their effective
    sample size."""
    rng = np.random.default_rng(sampler.seed)
    fitted = regression(stats)
    kept = sampler.chains * sampler.draws

    def propose(size: int) -> tuple[np.ndarray, np.ndarray]:
        means = fitted.draws(rng, size)
        # the prior is on the log lift: a draw with a mean <= 0 has none, and gets no weight (an effect of -inf;
        # NaN would be read as "no information" and weigh as much as the prior's mode)
        positive = (means > 0).all(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return means, np.where(positive, np.log(means[:, 1:] / means[:, :1]), -np.inf)

    if prior is None:
        means, ess = fitted.draws(rng, kept), float(kept)
    else:
        means, ess = resampled_enough(propose, prior, rng, kept)
    shape = (sampler.chains, sampler.draws)
    return posterior_dataset(stats, sampler, means.reshape(shape + (2, 1))), ess


class Switchback(ExactOnly, Family):
    """A metric of a switchback experiment: cell means, unit and period fixed effects, carry-over."""

    name = "switchback_cells"
    declared = False            # a spec's switchback: block turns its metrics into this family's
    uses_column = False
    unit = "per row"
    panel_total = None
    weekly = False
    baseline_fields = ("mean", "cell_sd")
    exact_method = "the normal linear model's closed form"

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """``{mean, cell_sd}``: the control's mean per row and the sd of a cell mean around the unit and period
        effects (``bayes-ab plan`` of a switchback spec uses them)."""
        return positive_baseline(raw, where, ("mean", "cell_sd"), "the sd of a cell's mean")

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        raise ModelError(f"metric {metric.name!r}: switchback statistics are built from the per-cell totals "
                         "(bayes_ab.aggregation.switchback), not by the per-user query")

    def kind_of(self, metric: Metric) -> str:
        return f"{SwitchbackParams.of(metric).declared_family}, switchback"

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Per arm, the rows' mean over its cells (no unit or period adjustment)."""
        return (stats["sum_total"] / stats["sum_weight"]).sum("segment")

    def segment_weights(self, stats: xr.Dataset) -> xr.DataArray:
        return xr.DataArray([1.0], coords={"segment": stats["segment"].values}, dims="segment")

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The prior is on the log of treatment over control: a small relative effect r moves it by r."""
        return 1.0

    def exact_posterior(self, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> tuple[FitData, float]:
        return sample_switchback(stats, metric, sampler, mapped_prior_data(self, stats, metric))

    def sample_conjugate(self, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> FitData:
        return sample_switchback(stats, metric, sampler)[0]

    def closed_form(self, stats: xr.Dataset | None, metric: Metric | None) -> str:
        return "Student-t of the fixed-effects regression of the cell means, flat priors"

    def definition(self, metric: Metric) -> str:
        p = SwitchbackParams.of(metric)
        return (f"{p.measured}; switched as a whole per {p.unit!r} and period ({p.period}), read from the cells' means "
                "net of each unit's and each period's level")

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        p = SwitchbackParams.of(metric)
        fitted = regression(stats)
        units, periods = stats.sizes["unit"], np.unique(stats["cell_period"].values).size
        left = (f"; {fitted.left_out:,} cell(s) in the first {p.washout} period(s) after a switch left out"
                if p.washout else "")
        return (f"switchback by {p.unit!r} x {p.period}: {fitted.cells:,} cells analysed ({units} units x {periods} "
                f"periods){left}; normal linear model of the cell means with unit and period fixed effects (flat "
                f"priors), the effect prior by importance resampling; {self._carry_text(fitted)}")

    @staticmethod
    def _carry_text(fitted: Regression) -> str:
        if not math.isfinite(fitted.carry):
            return "carry-over not estimable (no switches)"
        share = f", {fitted.carry / fitted.theta:.0%} of the effect" if fitted.theta else ""
        return (f"carry-over into the period after a switch {fitted.carry:+.4g} per row (se {fitted.carry_se:.2g}"
                f"{share})")

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        """Carry-over that a zero washout leaves in the effect, and residuals correlated over time."""
        p = SwitchbackParams.of(metric)
        fitted = regression(stats)
        found = []
        if p.washout == 0 and math.isfinite(fitted.carry) and abs(fitted.carry) > 2 * fitted.carry_se:
            found.append(f"the period after a switch carries the previous arm ({self._carry_text(fitted)}): with "
                         "washout 0 it biases the effect towards 0; set switchback.washout to 1 or more")
        if math.isfinite(fitted.autocorrelation) and fitted.autocorrelation > AUTOCORRELATION_WARNING:
            found.append(f"the residuals of consecutive periods correlate at {fitted.autocorrelation:.2f} within units "
                         "(a drift the period effects do not share): the interval is likely too narrow; longer periods "
                         "help")
        return tuple(found)

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        """The variance of one cell's mean around the unit and period effects (the baseline's ``cell_sd``)."""
        return float(baseline.spread) ** 2

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """The residual sd of a cell mean."""
        return math.sqrt(regression(stats).sigma2)
