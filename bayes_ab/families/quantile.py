"""Quantile: a percentile of a per-user value (p95 latency, median order value), per user or per event.

**Input.** One row per user with the value in ``column`` (the quantile is over users), or a panel of rows per
user and activity (``activity_column``: a request, an event, a day) with the value on each row, where the
quantile is over the rows and each user is a cluster of them: a user with 1,000 slow requests is one draw of
the experiment's randomness, not 1,000. Rows without a value are left out (record a timeout as its time, not
as NULL: leaving it out would hide the tail).

**Statistics.** A histogram on fixed log-spaced bins of 0.1% relative width (:mod:`bayes_ab.models.quantiles`),
per arm x segment: values per bin and, for clustered rows, the two per-bin cross sums the cluster-robust
variance needs. Every statistic is a sum over users, so histograms add across days, partitions and
warehouses. Aggregated rows carry each bin as its centre value in ``column`` with its users in
``users_column`` (per-user values; clustered rows are analysed from the panel itself).

**Posterior.** The Bayesian bootstrap over users (Dirichlet(1, ..., 1) weights): the posterior CDF of the
quantile at every bin edge in closed form (the beta argument), exact with one value per user and with the
delta method's cluster-robust variance for several (:func:`~bayes_ab.models.quantiles.quantile_cdf`), then
independent draws by inversion. The effect prior (``Normal(0, effect_sd)`` on the log of the ratio of a
treatment's quantile to control's, the sceptical 0.1 of a guardrail included; or a learned prior) is applied by
importance resampling of those draws (:mod:`bayes_ab.models.prior_resampling`), whose effective sample size is
the fit's ESS. **Segments are not pooled**: a segment's quantile is its own histogram's (its effect's prior is
the overall prior widened by ``heterogeneity_sd``), and the overall quantile is the quantile of all users'
values together -- a quantile of a mixture is not an average of the segments' quantiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

from bayes_ab.data.queries import MetricQuery, metric_column, numeric_checks
from bayes_ab.data.stats import ALL_USERS, as_counts, check_arms_have_users
from bayes_ab.errors import DataError
from bayes_ab.families.base import ExactOnly, Family, ParamReader, positive_baseline
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import posterior_dataset
from bayes_ab.models.fitdata import FitData
from bayes_ab.models.hierarchy import PRIOR_EFFECT_SD, PRIOR_HETEROGENEITY_SD, mapped_prior_data
from bayes_ab.models.prior_resampling import PROPOSALS_PER_DRAW, resampled, resampled_information
from bayes_ab.models.quantiles import (BIN_WIDTH, LOG_STEP, LOWEST, bin_centres, bin_keys, observed_quantile,
                                       quantile_cdf, quantile_draws)
from bayes_ab.sampling import SamplerSettings

STATISTICS = ("events", "cross", "square")


@dataclass(frozen=True)
class QuantileParams(FamilyParams):
    """``quantile``: which one, in (0, 1) (0.95 is p95); or ``quantiles``, several, each its own metric
    (:meth:`Quantile.expand`). ``unit``: how its values read (``ms``)."""

    quantile: float = 0.5
    unit: str | None = None
    quantiles: tuple[float, ...] = ()


def bin_sql(value: str) -> str:
    """SQL of a value's bin (:func:`~bayes_ab.models.quantiles.bin_keys`); NULL for a NULL value."""
    return (f"(CASE WHEN {value} <= {LOWEST!r} THEN 0 "
            f"ELSE 1 + CAST(FLOOR(LN({value} / {LOWEST!r}) / {LOG_STEP!r}) AS BIGINT) END)")


def quantile_stats(arms: Sequence[str], segments: Sequence[str], keys: Sequence[int], histograms: dict[str, np.ndarray],
                   users: np.ndarray, metric: str, quantile: float) -> xr.Dataset:
    """Statistics of a quantile metric: ``n`` (arm, segment), the users with a value, and ``events``, ``cross``,
    ``square`` (arm, segment, bin), the histogram and its cross sums (:mod:`bayes_ab.models.quantiles`)."""
    keys = np.asarray(keys, dtype=np.int64)
    shape = (len(arms), len(segments), len(keys))
    data = {}
    for name in STATISTICS:
        values = np.asarray(histograms[name], dtype=float)
        if values.shape != shape:
            raise DataError(f"metric {metric!r}: {name} must have shape (arms, segments, bins) = {shape}, "
                            f"got {values.shape}")
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise DataError(f"metric {metric!r}: {name} holds a negative or non-finite value")
        data[name] = (("arm", "segment", "bin"), values)
    data["n"] = (("arm", "segment"), as_counts(np.asarray(users, dtype=float), "users", metric, arms, segments))
    ds = xr.Dataset(data, coords={"arm": list(arms), "segment": list(segments), "bin": keys},
                    attrs={"family": Quantile.name, "metric": metric, "quantile": float(quantile)})
    check_arms_have_users(ds)
    return ds


def _share(ds: xr.Dataset) -> float:
    return float(ds.attrs["quantile"])


def _cell_draws(rng: np.random.Generator, stats: xr.Dataset, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat-prior draws of every cell's quantile (size, arm, segment) and of every arm's overall one (size, arm)."""
    p, keys = _share(stats), stats["bin"].values
    hist = {name: stats[name].transpose("arm", "segment", "bin").values for name in STATISTICS}
    arms, segments = stats.sizes["arm"], stats.sizes["segment"]
    cells = np.full((size, arms, segments), np.nan)
    overall = np.full((size, arms), np.nan)
    for a in range(arms):
        for s in range(segments):
            if hist["events"][a, s].sum() > 0:
                cdf = quantile_cdf(hist["events"][a, s], hist["cross"][a, s], hist["square"][a, s], p)
                cells[:, a, s] = quantile_draws(rng, keys, cdf, size)
        cdf = quantile_cdf(*(hist[name][a].sum(0) for name in STATISTICS), p)
        overall[:, a] = quantile_draws(rng, keys, cdf, size)
    return cells, overall


def _log_effects(draws: np.ndarray) -> np.ndarray:
    """log(treatment / control) per draw, (draws, treatments[, segments]) from draws (draws, arms[, segments])."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(draws)
    return logs[:, 1:] - logs[:, :1]


def sample_quantile(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
                    prior: dict[str, np.ndarray] | None = None) -> tuple[FitData, float]:
    """Independent posterior draws of every cell's and arm's quantile, and the effective sample size.

    Without ``prior`` the flat-prior Bayesian bootstrap (the family's closed form); with it (the model's effect
    prior, :func:`~bayes_ab.models.hierarchy.prior_data`), those draws importance-resampled by the prior of the
    overall effect, and each segment's by that prior widened by the heterogeneity scale.
    """
    rng = np.random.default_rng(sampler.seed)
    chains = sampler.chains
    draws = (sampler.exact_draws // chains) if sampler.exact and prior is not None else sampler.draws
    kept = chains * draws
    proposals = kept * (PROPOSALS_PER_DRAW if prior is not None else 1)
    cells, overall = _cell_draws(rng, stats, proposals)
    ess = float(kept)

    if prior is not None:
        overall, found = resampled(overall, _log_effects(overall), prior, rng, kept)
        ess = resampled_information(kept, found)
        segment_prior = {**prior, PRIOR_EFFECT_SD: np.asarray(math.hypot(float(prior[PRIOR_EFFECT_SD]),
                                                                         float(prior[PRIOR_HETEROGENEITY_SD])))}
        kept_cells = np.empty((kept,) + cells.shape[1:])
        for s in range(cells.shape[2]):
            kept_cells[:, :, s], found = resampled(cells[:, :, s], _log_effects(cells[:, :, s]), segment_prior, rng,
                                                   kept)
            if np.isfinite(cells[:, :, s]).all():
                ess = min(ess, resampled_information(kept, found))
        cells = kept_cells
    shape = (chains, draws)
    overall_dims = (("chain", "draw", "arm"), overall.reshape(shape + overall.shape[1:]))
    extra = {"overall_mean": overall_dims,
             "effect_mu": (("chain", "draw", "treatment"), _log_effects(overall).reshape(shape + (-1,))),
             "effect": (("chain", "draw", "treatment", "segment"),
                        _log_effects(cells).reshape(shape + (cells.shape[1] - 1, cells.shape[2])))}
    settings = SamplerSettings(chains=chains, draws=draws, seed=sampler.seed)
    return posterior_dataset(stats, settings, cells.reshape(shape + cells.shape[1:]), extra), ess


class _LogNormalTruth:
    """Log-normal values whose ``quantile`` is ``baseline.value * factors[k]`` in arm ``k`` (the same log-sd in
    every arm: a treatment scales every quantile alike)."""

    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric = metric
        p = QuantileParams.of(metric).quantile
        self.sigma = float(baseline.spread)
        self.log_medians = np.log(baseline.value * factors) - self.sigma * float(ndtri(p))

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        z = rng.standard_normal(len(arms)) if latent is None else ndtri(np.clip(latent, 1e-12, 1 - 1e-12))
        return np.exp(self.log_medians[arms] + self.sigma * z)


class Histograms:
    """Simulated per-user values kept as each arm's histogram on the family's bins (one value per user)."""

    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.counts: dict[int, np.ndarray] = {}
        self.n = np.zeros(len(arms))
        if start is not None:
            events = start["events"].transpose("arm", "bin").values
            for j, key in enumerate(start["bin"].values):
                self.counts[int(key)] = events[:, j].astype(float).copy()
            self.n = start["n"].values.astype(float).copy()

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        keys = bin_keys(values)
        self.n += np.bincount(arms, minlength=len(self.arms))
        found, inverse = np.unique(keys, return_inverse=True)
        table = np.zeros((len(found), len(self.arms)))
        np.add.at(table, (inverse, arms), 1.0)
        for key, row in zip(found, table):
            self.counts.setdefault(int(key), np.zeros(len(self.arms)))
            self.counts[int(key)] += row

    def users(self) -> np.ndarray:
        return self.n

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """The occupied bins in order and the users per arm and bin, (arms, bins)."""
        keys = np.array(sorted(self.counts), dtype=np.int64)
        table = np.array([self.counts[int(k)] for k in keys]).T if len(keys) else np.zeros((len(self.arms), 0))
        return keys, table

    def stats(self) -> xr.Dataset:
        keys, table = self.histogram()
        return quantile_stats(self.arms, [ALL_USERS], keys, {name: table[:, None, :] for name in STATISTICS},
                              self.n[:, None], self.metric.name, QuantileParams.of(self.metric).quantile)

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        keys, table = self.histogram()
        p = QuantileParams.of(self.metric).quantile
        out = np.full((draws, len(self.arms)), np.nan)
        for a, events in enumerate(table):
            if events.sum() > 0:
                out[:, a] = quantile_draws(rng, keys, quantile_cdf(events, events, events, p), draws)
        return out

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """The observed quantile per arm and the variance of its flat-prior posterior (from 2,000 draws of a
        fixed stream, so the same statistics give the same)."""
        keys, table = self.histogram()
        p = QuantileParams.of(self.metric).quantile
        draws = self.posterior(np.random.default_rng(0), 2000)
        return np.array([observed_quantile(keys, events, p) for events in table]), np.nanvar(draws, axis=0)

    def link(self, means: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(means)


class Quantile(ExactOnly, Family):
    """A quantile of a per-user (or per-event) value; the metric is the quantile, its effect the log ratio."""

    name = "quantile"
    params_type = QuantileParams
    baseline_fields = ("quantile", "log_sd")
    panel_total = "MIN"
    """In a panel, a user's smallest value serves the data checks only: the quantile is of the rows themselves."""
    weekly = False
    panel_rows = True
    exact_method = "the Bayesian bootstrap in closed form"

    def parse_params(self, read: ParamReader) -> QuantileParams:
        unit = read.string("unit", None)
        several = read.get("quantiles")
        if several is not None:
            if read.get("quantile") is not None:
                read.fail("quantiles", "and quantile exclude each other: give one quantile or a list of them")
            if not isinstance(several, list) or not several:
                read.fail("quantiles", f"must be a non-empty list such as [0.5, 0.95, 0.99], got {several!r}")
            for value in several:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                    read.fail("quantiles", f"every quantile must be a number in (0, 1), got {value!r}")
            if len(set(several)) != len(several):
                read.fail("quantiles", f"lists a quantile twice: {several!r}")
            return QuantileParams(float(several[0]), unit, tuple(float(v) for v in several))
        if read.get("quantile") is None:
            read.fail("quantile", "is required: which quantile, e.g. 0.95 for p95 (or quantiles: [0.5, 0.95])")
        p = read.number("quantile", 0.5)
        if not 0 < p < 1:
            read.fail("quantile", f"must be in (0, 1), e.g. 0.95 for p95, got {p}")
        return QuantileParams(p, unit)

    def expand(self, metric: Metric) -> tuple[Metric, ...]:
        """``quantiles: [0.5, 0.95]`` on metric ``latency``: metrics ``latency_p50`` and ``latency_p95``, each with
        the entry's role, direction, margin and prior (declare quantiles separately to give them other roles)."""
        params = QuantileParams.of(metric)
        if not params.quantiles:
            return (metric,)
        return tuple(replace(metric, name=f"{metric.name}_p{format(p * 100, 'g').replace('.', '_')}",
                             params=QuantileParams(p, params.unit)) for p in params.quantiles)

    def unit_of(self, metric: Metric) -> str:
        return QuantileParams.of(metric).unit or "in the metric's unit"

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """``{quantile, log_sd}``: the control's value of the quantile and the sd of the log of a user's value
        (a log-normal: 0.5 is a moderate spread, 1.5 a heavy tail)."""
        return positive_baseline(raw, where, self.baseline_fields,
                                 "the control's value of the quantile and the log-normal's sd of log values")

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """Users per bin of their value (key -1: no value); aggregated rows carry the bin's centre value in the
        metric's column and its users in ``users_column``. On a panel's rows the same bins, per user, with the
        cross sums of the cluster-robust variance."""
        column = metric_column(metric, metric.column, kinds, "values")
        checks = numeric_checks(column, metric.name, alias, allow_missing=True, minimum=0)
        value = column.number()
        key = f"COALESCE({bin_sql(value)}, -1)"
        centre = (f"CASE WHEN {value} IS NULL THEN NULL WHEN {value} <= {LOWEST!r} THEN {LOWEST / 2!r} "
                  f"ELSE {LOWEST!r} * EXP(({bin_sql(value)} - 0.5) * {LOG_STEP!r}) END")
        p = QuantileParams.of(metric).quantile

        def build(arms, segments, table, detail):
            shape = (len(arms), len(segments))
            detail = detail[detail["key"] >= 0]
            keys = np.sort(detail["key"].unique()).astype("int64")
            index = pd.MultiIndex.from_product([arms, segments, keys], names=["arm", "segment", "key"])
            indexed = detail.set_index(["arm", "segment", "key"])

            def cube(name):
                return indexed[name].reindex(index, fill_value=0).to_numpy(dtype=float).reshape(shape + (len(keys),))

            if f"{alias}_events" in detail:      # a panel's rows, users as clusters
                hist = {name: cube(f"{alias}_{name}") for name in STATISTICS}
                users = cube(f"{alias}_first").sum(-1)
            else:
                users_per_bin = cube(f"{alias}_users")
                hist = {name: users_per_bin for name in STATISTICS}
                users = users_per_bin.sum(-1)
            return quantile_stats(arms, segments, keys, hist, users, metric.name, p)

        cluster_sums = {f"{alias}_events": "SUM(CAST(e AS DOUBLE))",
                        f"{alias}_cross": "SUM(CAST(e AS DOUBLE) * m)",
                        f"{alias}_square": "SUM(CAST(e AS DOUBLE) * (2 * e_before + e))",
                        f"{alias}_first": "SUM(CASE WHEN e_before = 0 THEN 1 ELSE 0 END)"}
        return MetricQuery([], {}, build, detail_key=key, detail_users={f"{alias}_users": None},
                           keys={metric.column: centre}, key_checks=checks,
                           cluster_key=bin_sql(value), cluster_sums=cluster_sums)

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """The quantile of each arm's values over all segments (no model), located inside its bin."""
        events = stats["events"].sum("segment").transpose("arm", "bin").values
        keys = stats["bin"].values
        return xr.DataArray([observed_quantile(keys, row, _share(stats)) for row in events],
                            dims=("arm",), coords={"arm": stats["arm"].values})

    def definition(self, metric: Metric) -> str:
        q = QuantileParams.of(metric).quantile
        return (f"the {100 * q:g}th percentile of {metric.column!r} over all rows of an arm (with a daily or "
                "request panel, each user's rows are one cluster)")

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        users = float(stats["n"].sum())
        values = float(stats["events"].sum())
        rows = ("one value per user" if values <= users
                else f"{values:,.0f} values of {users:,.0f} users, each user a cluster (cluster-robust)")
        return (f"p{_share(stats) * 100:g} by the Bayesian bootstrap over users on {BIN_WIDTH:.1%} log bins ({rows}); "
                "segments not pooled, the overall quantile from all values together")

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        """Besides empty cells: an arm whose values in the quantile's tail are too few to place it (fewer than
        5 values beyond it), where the quantile is as far as the data reach."""
        found = list(super().warnings(stats, metric))
        p = _share(stats)
        for arm, values in zip(stats["arm"].values, stats["events"].sum(("segment", "bin")).values):
            beyond = values * min(p, 1 - p)
            if values > 0 and beyond < 5:
                found.append(f"arm {str(arm)!r} has {values:,.0f} values: about {beyond:.1f} lie beyond its "
                             f"p{p * 100:g}, too few to place it; read the interval as the data's range")
        return tuple(found)

    def constant_value(self, stats: xr.Dataset) -> float | None:
        occupied = stats["events"].sum(("arm", "segment")).values > 0
        if occupied.sum() == 1 and stats["bin"].values[occupied][0] == 0:
            return 0.0
        return None

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The effect is the log of the ratio of quantiles: a small relative effect r moves it by r."""
        return 1.0

    def exact_posterior(self, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> tuple[FitData, float]:
        return sample_quantile(stats, metric, sampler, mapped_prior_data(self, stats, metric))

    def sample_conjugate(self, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> FitData:
        return sample_quantile(stats, metric, sampler)[0]

    def closed_form(self, stats: xr.Dataset | None, metric: Metric | None) -> str:
        return "Bayesian bootstrap over users, beta argument on log bins"

    # -- simulation and planning ----------------------------------------------------------------
    truth_type = _LogNormalTruth
    accumulator_type = Histograms

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        """Asymptotic variance of a sample quantile per user, ``p (1 - p) / f(q)^2``, for the baseline's
        log-normal: ``f(q) = phi(z_p) / (q log_sd)``."""
        p = QuantileParams.of(metric).quantile
        z = float(ndtri(p))
        density = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) / (mean * float(baseline.spread))
        return p * (1 - p) / density ** 2

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """The control's sd of log values, from its histogram (bin centres; bin 0 left out)."""
        events = stats["events"].isel(arm=0).sum("segment").values
        keys = stats["bin"].values
        keep = (keys > 0) & (events > 0)
        if events[keep].sum() < 2:
            return None
        logs = np.log(bin_centres(keys[keep]))
        mean = np.average(logs, weights=events[keep])
        return float(math.sqrt(np.average((logs - mean) ** 2, weights=events[keep])))
