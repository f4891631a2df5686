"""Effects from posterior draws: lifts, P(beat control), P(best), expected loss, ROPE.

All functions are pure functions of a :class:`~bayes_ab.posterior.result.Fit`. Direction-aware: for a
"decrease is good" metric, beating control means a lower value and losses are counted the other way.
The overall effect averages segment means weighted by each segment's share of traffic.
"""

from __future__ import annotations

import warnings

from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import ndtri

from bayes_ab import format as fmt
from bayes_ab.display import HtmlRepr
from bayes_ab.effects.conflict import PriorConflict, prior_conflicts
from bayes_ab.families import family_for
from bayes_ab.families.covariates import Adjustment, adjustment
from bayes_ab.intervals import credible_interval
from bayes_ab.models.diagnostics import Diagnostics
from bayes_ab.posterior.fit import fit as refit
from bayes_ab.posterior.result import Fit
from bayes_ab.sampling import EXACT, Backend
from bayes_ab.spec import Metric, SamplerSettings

if TYPE_CHECKING:
    from bayes_ab.compliance.effects import ComplianceEffects
    from bayes_ab.novelty.effects import NoveltyEffects

OVERALL = "overall"


@dataclass(frozen=True)
class ArmEffect(HtmlRepr):
    """Posterior summary of one arm in one segment (or overall) against control.

    ``*_mcse`` are Monte Carlo standard errors of the probabilities and the loss the decision rule reads
    (from the effective sample size of what each averages): the sampling noise in the number itself.
    Lifts are arm minus control (absolute, in metric units) and arm / control - 1 (relative);
    ``*_low``/``*_high`` bound the credible interval (equal-tailed unless the spec asks for the HDI). Losses are
    expected values of the amount given up: ``loss_ship`` if this arm replaces control and control was better,
    ``loss_keep`` if control stays and this arm was better, ``loss_vs_best`` against the best arm.
    """

    segment: str
    arm: str
    is_control: bool
    is_overall: bool
    users: int
    observed_mean: float
    mean: float
    mean_low: float
    mean_high: float
    abs_lift: float
    abs_low: float
    abs_high: float
    rel_lift: float
    rel_low: float
    rel_high: float
    p_beat_control: float
    p_beat_control_mcse: float
    p_best: float
    p_best_mcse: float
    loss_ship_abs: float
    loss_ship_rel: float
    loss_ship_rel_mcse: float
    loss_keep_abs: float
    loss_keep_rel: float
    loss_vs_best_abs: float
    p_rope: float
    p_beyond_margin: float
    """P(worse than control by more than the metric's ``margin``, relative): what the rule judges a guardrail by."""


DATA_ONLY_APART = 0.25
"""Posterior sds between the model's overall lift and the data-only one beyond which every output shows both: a
prior that moved the answer that far is worth saying when a reader compares with another tool."""


@dataclass(frozen=True)
class DataOnly:
    """What the data alone say about one treatment arm: its overall relative lift under a flat prior, each segment on
    its own (the family's closed form), beside the model's. ``apart``: the model's lift minus this one, in the
    model's posterior sds (its interval's width over that of a normal's)."""

    arm: str
    rel_lift: float
    rel_low: float
    rel_high: float
    apart: float

    @property
    def shown(self) -> bool:
        """Whether the prior moved the answer more than :data:`DATA_ONLY_APART` posterior sds."""
        return bool(np.isfinite(self.apart) and abs(self.apart) > DATA_ONLY_APART)


@dataclass(frozen=True)
class MetricEffects:
    """Every arm's effect for one metric, overall and per segment, with the fit's diagnostics."""

    metric: Metric
    control: str
    interval: float
    rows: tuple[ArmEffect, ...]
    diagnostics: Diagnostics
    backend: str
    sampler: SamplerSettings
    model_note: str
    warnings: tuple[str, ...] = ()
    """Facts about the data that change what the numbers mean (:meth:`Family.warnings`)."""
    novelty: "NoveltyEffects | None" = None
    """The effect by week since exposure and the long-run effect (metrics with ``novelty``)."""
    compliance: "ComplianceEffects | None" = None
    """The effect on users who received the treatment (CACE), beside this effect of assigning it (with a
    ``received_column``)."""
    prior_checks: tuple[PriorConflict, ...] = ()
    """Per treatment arm, the data-only estimate against the learned prior (metrics with a learned prior)."""
    data_only: tuple[DataOnly, ...] = ()
    """Per treatment arm, the data-only (flat-prior, unpooled) lift beside the model's; empty for a fit that is the
    closed form already, and for a long-run lift (novelty), which no whole-test answer compares with."""
    unpooled: "MetricEffects | None" = None
    """When the fit failed its diagnostics: the family's unpooled closed form (each segment on its own, flat
    prior) on the same statistics, shown beside the failed answer so that the reader still has one. It is
    labelled as such everywhere and no decision acts on it: the rule's checks on this metric stay blocked."""
    adjustment: "Adjustment | None" = None
    """The regression adjustment on the metric's pre-period covariates (``covariates:``): slopes, correlation,
    variance reduction."""
    unadjusted: tuple[DataOnly, ...] = ()
    """With covariates: per treatment arm, the lift without them (the closed form on the observed statistics) and
    how far the adjusted lift sits from it, in posterior sds: the reviewer's check that the adjustment moved the
    noise, not the answer."""

    def unadjusted_lines(self) -> tuple[str, ...]:
        """With covariates: per treatment arm, one line giving the lift without them beside the adjusted one (the
        console and the report print the same lines)."""
        level = f"{self.interval:.0%}"
        return tuple(
            f"Without the covariates ({u.arm}): {fmt.relative(u.rel_lift)} ({level} interval {fmt.relative(u.rel_low)} "
            f"to {fmt.relative(u.rel_high)}; observed statistics, flat prior); the adjusted lift sits "
            f"{u.apart:+.2f} posterior sds from it" for u in self.unadjusted)

    def conflict(self, arm: str) -> PriorConflict | None:
        """The prior-data conflict of ``arm``, if its check failed."""
        return next((c for c in self.prior_checks if c.arm == arm and c.conflicts), None)

    def overall(self, arm: str) -> ArmEffect:
        """The overall (traffic-weighted) effect of ``arm``."""
        return next(r for r in self.rows if r.is_overall and r.arm == arm)

    @property
    def shown_rows(self) -> tuple[ArmEffect, ...]:
        """The rows a table shows: every row, or with one segment only the overall ones (the segment's rows repeat
        them number for number; they stay in :attr:`rows`, ``effects.csv`` and ``summary.json``)."""
        if len({r.segment for r in self.rows if not r.is_overall}) > 1:
            return self.rows
        return tuple(r for r in self.rows if r.is_overall)

    @property
    def treatments(self) -> tuple[str, ...]:
        """Arms other than control, in spec order."""
        return tuple(r.arm for r in self.rows if r.is_overall and not r.is_control)

    def to_pandas(self) -> pd.DataFrame:
        """One row per segment (``overall`` first) and arm."""
        frame = pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(ArmEffect)])
        frame.insert(0, "metric", self.metric.name)
        return frame

    def _repr_html_(self) -> str:
        return self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}")


def compute_effects(fit: Fit, interval: float = 0.9) -> MetricEffects:
    """Summarise a fit into :class:`MetricEffects` (``interval`` is the credible level, carrying its kind)."""
    metric, stats = fit.metric, fit.stats
    mean = fit.mean.transpose("chain", "draw", "arm", "segment")
    overall = fit.overall_mean
    family = family_for(metric)
    rows = _rows(overall, metric, interval, OVERALL, True, stats["n"].sum("segment"),
                 family.observed_mean(stats, metric))
    for segment in stats["segment"].values:
        rows += _rows(mean.sel(segment=segment), metric, interval, str(segment), False,
                      stats["n"].sel(segment=segment), family.observed_mean(stats.sel(segment=[segment]), metric))
    note = family.describe(stats, metric)
    adjusted = adjustment(family, stats, metric)
    if adjusted is not None:
        note += "; " + adjusted.describe()
    if fit.backend == Backend.CONJUGATE:
        note += f" [conjugate backend: unpooled closed form, {family.closed_form(stats, metric)}]"
    if metric.prior.learned is not None and fit.backend != Backend.CONJUGATE:
        note += f" [effect prior {metric.prior.learned.describe()}]"
    if fit.backend == EXACT:
        draws = fit.sampler.chains * fit.sampler.draws
        note += f" [exact posterior by {family.exact_method}, {draws:,} independent draws]"
    # the data alone: the closed form under a flat prior, drawn once for the prior-data check, the data-only lift
    # beside the model's and, when the fit failed, the unpooled answer shown instead
    flat_fit = None if fit.backend == Backend.CONJUGATE else \
        refit(stats, metric, replace(fit.sampler, backend=Backend.CONJUGATE))
    checks = prior_conflicts(fit, flat_fit, interval)
    warned = tuple(family.warnings(stats, metric)) + tuple(
        f"prior-data conflict ({c.arm}): the data alone say {c.data_lift:+.1%} ({interval:.0%} interval "
        f"{c.data_low:+.1%} to {c.data_high:+.1%}), where the learned prior predicts an estimate this far from "
        f"{metric.prior.learned.location:+.2%} with probability {c.p_value:.2g}; the posterior is the prior's word "
        "against the data's, and no decision acts on it" for c in checks if c.conflicts)
    flat = None if flat_fit is None else compute_effects(flat_fit, interval)
    unpooled = flat if not fit.diagnostics.passed and fit.backend not in (Backend.CONJUGATE, EXACT) else None
    unadjusted = ()
    if adjusted is not None:
        plain = replace(metric, covariates=())
        raw = refit(stats, plain, replace(fit.sampler, backend=Backend.CONJUGATE))
        unadjusted = _data_only(rows, compute_effects(raw, interval), interval)
    return MetricEffects(metric, str(stats["arm"].values[0]), interval, tuple(rows),
                         fit.diagnostics, fit.backend, fit.sampler, note, warned, prior_checks=checks,
                         data_only=() if flat is None else _data_only(rows, flat, interval), unpooled=unpooled,
                         adjustment=adjusted, unadjusted=unadjusted)


def _data_only(rows: list[ArmEffect], flat: "MetricEffects", interval: float) -> tuple[DataOnly, ...]:
    """Each treatment arm's flat-prior overall lift and how far the model's sits from it, in posterior sds."""
    z = float(ndtri(0.5 + interval / 2))
    found = []
    for row in rows:
        if not row.is_overall or row.is_control:
            continue
        alone = flat.overall(row.arm)
        sd = (row.rel_high - row.rel_low) / (2 * z)
        apart = (row.rel_lift - alone.rel_lift) / sd if sd > 0 else float("nan")
        found.append(DataOnly(row.arm, alone.rel_lift, alone.rel_low, alone.rel_high, apart))
    return tuple(found)


def _rows(mean: xr.DataArray, metric: Metric, interval: float, segment: str, is_overall: bool,
          users: xr.DataArray, observed: xr.DataArray) -> list[ArmEffect]:
    """Effects of every arm in one segment; ``mean`` has dims chain, draw, arm.

    A cell without users, or a control mean of exactly 0, has no relative lift: its row carries NaN, and
    the metric's warnings (:meth:`Family.warnings`) say why, instead of a page of numpy warnings.
    """
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _segment_rows(mean, metric, interval, segment, is_overall, users, observed)


def _segment_rows(mean: xr.DataArray, metric: Metric, interval: float, segment: str, is_overall: bool,
                  users: xr.DataArray, observed: xr.DataArray) -> list[ArmEffect]:
    chains = mean.sizes["chain"]
    draws = mean.transpose("chain", "draw", "arm").values.reshape(-1, mean.sizes["arm"])
    sign = 1.0 if metric.increase_is_good else -1.0
    control = draws[:, 0]
    goodness = sign * draws
    best = goodness.max(axis=1)
    winners = np.argmax(goodness, axis=1)
    rows = []
    for k, arm in enumerate(mean["arm"].values):
        value = draws[:, k]
        diff = value - control
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(control > 0, value / control - 1.0, np.nan)
        lift = _NO_LIFT if k == 0 else _lift(diff, rel, sign, metric.rope, metric.margin, interval, chains)
        p_best = float(np.mean(winners == k))
        rows.append(ArmEffect(
            segment=segment,
            arm=str(arm),
            is_control=k == 0,
            is_overall=is_overall,
            users=int(users.values[k]),
            observed_mean=float(observed.values[k]),
            mean=float(np.median(value)),
            **dict(zip(("mean_low", "mean_high"), credible_interval(value, interval))),
            p_best=p_best,
            p_best_mcse=probability_mcse(p_best, effective_draws(winners == k, chains)),
            loss_vs_best_abs=float(np.mean(best - goodness[:, k])),
            **lift,
        ))
    return rows


def _lift(diff: np.ndarray, rel: np.ndarray, sign: float, rope: float, margin: float, interval: float,
          chains: int) -> dict[str, float]:
    """Lift fields of :class:`ArmEffect` from draws of the absolute and relative difference."""
    abs_low, abs_high = credible_interval(diff, interval)
    rel_low, rel_high = credible_interval(rel, interval)
    return dict(abs_lift=float(np.median(diff)), abs_low=abs_low, abs_high=abs_high,
                rel_lift=float(np.nanmedian(rel)), rel_low=rel_low, rel_high=rel_high,
                **lift_probabilities(diff, rel, sign, rope, chains, margin=margin))


def lift_probabilities(diff: np.ndarray, rel: np.ndarray, sign: float, rope: float,
                       chains: int | None = None, *, margin: float) -> dict[str, float]:
    """P(beat control), expected losses, P(inside the ROPE) and P(worse by more than ``margin``) from draws of
    arm - control (``diff``) and arm / control - 1 (``rel``); ``sign`` is +1 when an increase is good, -1
    otherwise.

    ``chains``: the draws are that many MCMC chains, one after the other; ``None`` (the default) means
    independent draws. It sets the Monte Carlo standard errors ``p_beat_control_mcse`` and
    ``loss_ship_rel_mcse``, each from the effective sample size of the quantity averaged (the indicator
    itself for a probability: its autocorrelation is not the lift's).

    The one definition of the numbers decisions turn on: the effects table and the decision rule's
    fast path in simulations both call it, so they cannot drift apart.
    """
    beats = sign * diff > 0
    p_beat = float(np.mean(beats))
    loss_ship_rel = np.maximum(0.0, -sign * rel)
    loss_ess = effective_draws(loss_ship_rel, chains)
    return dict(
        p_beat_control=p_beat,
        p_beat_control_mcse=probability_mcse(p_beat, effective_draws(beats, chains)),
        loss_ship_abs=float(np.mean(np.maximum(0.0, -sign * diff))),
        loss_ship_rel=float(np.nanmean(loss_ship_rel)),
        loss_ship_rel_mcse=float(np.nanstd(loss_ship_rel) / np.sqrt(loss_ess)) if loss_ess > 0 else float("nan"),
        loss_keep_abs=float(np.mean(np.maximum(0.0, sign * diff))),
        loss_keep_rel=float(np.nanmean(np.maximum(0.0, sign * rel))),
        p_rope=float(np.nanmean(np.abs(rel) < rope)),
        p_beyond_margin=float(np.nanmean(-sign * rel > margin)),
    )


def probability_mcse(p: float, ess: float) -> float:
    """Monte Carlo standard error of a probability estimated as the share of ``ess`` effective draws."""
    return float(np.sqrt(p * (1.0 - p) / ess)) if ess > 0 and np.isfinite(p) else float("nan")


def effective_draws(draws: np.ndarray, chains: int | None) -> float:
    """Effective sample size of flat chain-major ``draws`` (:func:`bayes_ab.models.convergence.ess`);
    their number when ``chains`` is ``None`` (independent draws)."""
    from bayes_ab.models.convergence import ess

    finite = np.nan_to_num(np.asarray(draws, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    if chains is None or finite.size < 4 * chains:
        return float(finite.size)
    return float(min(ess(finite.reshape(chains, -1, 1))[0], finite.size))


_NO_LIFT = dict.fromkeys(("abs_lift", "abs_low", "abs_high", "rel_lift", "rel_low", "rel_high",
                          "p_beat_control", "p_beat_control_mcse", "loss_ship_abs", "loss_ship_rel",
                          "loss_ship_rel_mcse", "loss_keep_abs", "loss_keep_rel", "p_rope", "p_beyond_margin"),
                         float("nan"))
