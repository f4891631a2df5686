"""Hierarchical discrete-time survival model of retention, on life tables with censoring.

``lost[arm, s, d] ~ Binomial(at_risk[arm, s, d], h[arm, s, d])`` with
``logit h[arm, s, d] = day[d] + segment[s] + effect[arm, s]`` (proportional odds of churning;
segment offsets sum to zero). Users exposed too recently to be observed on day d are not in ``at_risk`` on
that day, so a mid-test analysis is unbiased. Retention to day D is ``prod_{d <= D} (1 - h)``;
``mean`` is retention at the metric's ``horizon`` and ``survival`` the whole curve.
A negative ``effect`` lowers the churn hazard, i.e. improves retention.

**Covariates.** Pre-period covariates adjust the Kaplan-Meier retention at the horizon by its influence function,
the augmentation of Lu & Tsiatis (2008) for randomised comparisons of survival: a user's influence on the estimate
is ``phi_i = -S * sum_{d <= H} (lost_i(d) - at_risk_i(d) h_d) / (R_d - L_d)``, and the covariates' sums per exit day
(over the users at risk and over those lost) give ``sum_i phi_i x_i`` exactly, as the life table gives
``sum_i phi_i^2`` (Greenwood's variance). So ``n phi_i`` plays the per-user value of the pooled regression of
:mod:`bayes_ab.families.covariates`: without censoring it *is* the user's retained-or-not, and the adjustment is
CUPED of that conversion. The effective cells keep the life table's shape: every day's users at risk scaled by
``1 / (1 - R^2)`` and its churn hazards moved on the cumulative-hazard scale, ``1 - (1 - h)^c``, so that retention at
the horizon is the adjusted one. Why not a covariate in the hazard: a hazard ratio conditional on covariates is a
different (non-collapsible) quantity from the retention difference the decision reads, and a logistic hazard in a
per-user covariate has no sufficient statistics that an aggregation query could return.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence, TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.data.queries import Check, DetailSum, MetricQuery, metric_column, numeric_checks
from bayes_ab.data.stats import ALL_USERS, as_counts, check_arms_have_users
from bayes_ab.errors import DataError
from bayes_ab.families.base import ParamReader, RateFamily, WarmupCase
from bayes_ab.families.covariates import AdjustedAccumulator, covariate_terms, cross_name, fractional, sum_name
from bayes_ab.families.sums import initial
from bayes_ab.intervals import credible_interval
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.conjugate import posterior_dataset
from bayes_ab.models.hierarchy import coords_for, dimension_length, segment_effects
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:     # PyMC is imported where a model is built: a load from the model cache never needs it
    import pymc as pm


@dataclass(frozen=True)
class RetentionParams(FamilyParams):
    """``observed_column``: days each user has been observable; ``horizon``: the headline day N of "DN
    retention"; ``max_day``: the last day of the retention curve."""

    observed_column: str | None = None
    horizon: int = 7
    max_day: int = 30

    def columns(self, metric: str) -> dict[str, str]:
        return {self.observed_column: f"days observed of metric {metric!r}"} if self.observed_column else {}

DAY_MU, DAY_SD = -2.0, 2.5
SEGMENT_SD = 1.5


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """Retention has one likelihood (binomial life table; without its constant for the fractional counts of
    covariate-adjusted effective cells); the horizon is part of the structure."""
    return f"horizon {RetentionParams.of(metric).horizon}" + (", effective cells" if fractional(stats) else "")


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Curve length and how many users are still censored before the horizon."""
    users = float(stats["n"].sum())
    observed = float(stats["at_risk"].sel(day=RetentionParams.of(metric).horizon).sum() + stats["lost"].sel(
        day=slice(1, RetentionParams.of(metric).horizon)).sum())
    censored = max(users - observed, 0.0) / users if users else 0.0
    return (f"discrete-time survival to day {stats.sizes['day']}; headline D{RetentionParams.of(metric).horizon} retention; "
            f"{censored:.0%} of users censored (not yet observable) before day {RetentionParams.of(metric).horizon}")


def model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Users at risk and lost per arm x segment x day (whole numbers; fractional in effective cells)."""
    dtype = "float64" if fractional(stats) else "int64"
    return {"at_risk": stats["at_risk"].values.astype(dtype), "lost": stats["lost"].values.astype(dtype)}


def daily_hazards(at_risk: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Each day's churn hazard from a life table, lost over at risk (0 on a day nobody reached)."""
    return np.where(at_risk > 0, lost / np.where(at_risk > 0, at_risk, 1), 0.0)


def kaplan_meier(at_risk: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Kaplan-Meier retention curve from a life table (last axis is the day)."""
    return np.cumprod(1.0 - daily_hazards(at_risk, lost), axis=-1)


def observed_mean(stats: xr.Dataset, metric: Metric) -> xr.DataArray:
    """Kaplan-Meier retention at the horizon per arm, pooling the segments in ``stats``."""
    day = RetentionParams.of(metric).horizon
    curve = kaplan_meier(stats["at_risk"].sum("segment").values, stats["lost"].sum("segment").values)
    return xr.DataArray(curve[:, day - 1], dims="arm", coords={"arm": stats["arm"].values})


def build_model(stats: xr.Dataset, metric: Metric) -> "pm.Model":
    """Build the PyMC model for one retention metric's life table."""
    import pymc as pm
    import pytensor.tensor as pt

    coords = {**coords_for(stats), "day": [int(d) for d in stats["day"].values]}
    arms, segments = coords["arm"], coords["segment"]
    dims = ("arm", "segment", "day")
    data = model_data(stats)
    with pm.Model(coords=coords) as model:
        at_risk = pm.Data("at_risk", data["at_risk"], dims=dims)
        lost = pm.Data("lost", data["lost"], dims=dims)
        day = pm.Normal("day_logit", mu=DAY_MU, sigma=DAY_SD, dims="day")
        # zero-sum segment offsets: identified against the day baselines without a reference segment
        segment = (pm.ZeroSumNormal("segment_logit", sigma=SEGMENT_SD, dims="segment")
                   if len(segments) > 1 else pt.zeros(1))
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        arm_segment = pt.concatenate([pt.zeros((1, dimension_length("segment"))), effect], axis=0) + segment[None, :]
        logit_h = day[None, None, :] + arm_segment[:, :, None]
        if fractional(stats):
            # the binomial log-likelihood in the logit without its constant, which fractional counts leave defined
            pm.Potential("obs", (lost * logit_h - at_risk * pm.math.log1pexp(logit_h)).sum())
        else:
            pm.Binomial("obs", n=at_risk, logit_p=logit_h, observed=lost, dims=dims)
        survival = pm.Deterministic("survival", pt.cumprod(1 - pm.math.sigmoid(logit_h), axis=2), dims=dims)
        pm.Deterministic("mean", survival[:, :, RetentionParams.of(metric).horizon - 1], dims=("arm", "segment"))
    return model


MILESTONES = (1, 7, 30)


def retention_milestones(fit, days: tuple[int, ...] = MILESTONES, interval: float = 0.9) -> pd.DataFrame:
    """Overall (traffic-weighted) retention on each day in ``days`` per arm of a retention fit
    (:class:`bayes_ab.posterior.result.Fit`), with the credible interval, relative lift against control and
    P(beat control).
    Days beyond the fitted curve are left out.
    """
    survival = fit.idata.posterior["survival"]
    weights = fit.stats["n"].sum("arm") / fit.stats["n"].sum()
    overall = (survival * weights).sum("segment").transpose("chain", "draw", "arm", "day")
    draws = overall.values.reshape(-1, overall.sizes["arm"], overall.sizes["day"])
    arms = [str(a) for a in overall["arm"].values]
    day_index = {int(d): i for i, d in enumerate(overall["day"].values)}
    rows = []
    for day in (d for d in days if d in day_index):
        values = draws[:, :, day_index[day]]
        for k, arm in enumerate(arms):
            low, high = credible_interval(values[:, k], interval)
            rel = values[:, k] / values[:, 0] - 1
            rows.append({
                "day": day, "arm": arm, "retention": float(np.median(values[:, k])),
                "low": low, "high": high,
                "rel_lift": np.nan if k == 0 else float(np.median(rel)),
                "p_beat_control": np.nan if k == 0 else float(np.mean(values[:, k] > values[:, 0])),
            })
    return pd.DataFrame(rows)


def retention_curve(fit, interval: float = 0.9) -> pd.DataFrame:
    """The whole overall retention curve per arm and day, with credible bands (for plots)."""
    last = int(fit.idata.posterior["day"].values.max())
    return retention_milestones(fit, tuple(range(1, last + 1)), interval)


def retention_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    at_risk: np.ndarray,
    lost: np.ndarray,
    metric: str,
    users: np.ndarray | None = None,
) -> xr.Dataset:
    """Life table of a retention metric: per arm x segment x day, users at risk and users lost.

    Day ``d`` (1, 2, ...) counts users still retained at the start of day ``d`` and observable on it
    (``at_risk``) and those of them first not retained on day ``d`` (``lost``). Users exposed too
    recently to be observed on day ``d`` are censored: they leave the risk set without counting as
    lost. ``users`` (exposed users per arm x segment) defaults to ``at_risk`` on day 1.
    """
    risk = np.asarray(at_risk, dtype=float)
    gone = np.asarray(lost, dtype=float)
    if risk.ndim != 3 or risk.shape != gone.shape or risk.shape[:2] != (len(arms), len(segments)):
        raise DataError(f"metric {metric!r}: at_risk and lost must both have shape (arms, segments, days)")
    days = np.arange(1, risk.shape[2] + 1)
    for d in range(risk.shape[2]):
        as_counts(risk[:, :, d], f"at risk on day {d + 1}", metric, arms, segments)
        as_counts(gone[:, :, d], f"lost on day {d + 1}", metric, arms, segments)
    over = gone > risk
    if over.any():
        i, j, d = np.argwhere(over)[0]
        raise DataError(f"metric {metric!r}: lost ({int(gone[i, j, d])}) exceed users at risk "
                        f"({int(risk[i, j, d])}) on day {d + 1} for arm {arms[i]!r}, segment {segments[j]!r}")
    later = risk[:, :, 1:] > risk[:, :, :-1] - gone[:, :, :-1]
    if later.any():
        i, j, d = np.argwhere(later)[0]
        raise DataError(f"metric {metric!r}: users at risk on day {d + 2} exceed those still retained "
                        f"after day {d + 1} for arm {arms[i]!r}, segment {segments[j]!r}")
    n = risk[:, :, 0] if users is None else as_counts(users, "users", metric, arms, segments)
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), np.asarray(n).astype("int64")),
            "at_risk": (("arm", "segment", "day"), risk.astype("int64")),
            "lost": (("arm", "segment", "day"), gone.astype("int64")),
        },
        coords={"arm": list(arms), "segment": list(segments), "day": days},
        attrs={"family": Retention.name, "metric": metric},
    )
    check_arms_have_users(ds)
    return ds


def by_exit_day(arms: Sequence[str], segments: Sequence[str], detail: pd.DataFrame, column: str,
                max_day: int) -> np.ndarray:
    """The detail query's ``column`` per arm x segment x exit day (0 .. ``max_day``)."""
    table = np.zeros((len(arms), len(segments), max_day + 1))
    a = detail["arm"].map({name: i for i, name in enumerate(arms)}).to_numpy(dtype=int)
    s = detail["segment"].map({name: j for j, name in enumerate(segments)}).to_numpy(dtype=int)
    np.add.at(table, (a, s, detail["key"].to_numpy(dtype=int)), detail[column].to_numpy(dtype=float))
    return table


def at_risk_of(exits: np.ndarray) -> np.ndarray:
    """At risk on day d (1 .. last): the users (or their sums) whose exit day (churn, censoring or ``max_day``) is
    d or later, from the table by exit day 0 .. last."""
    return np.cumsum(exits[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]


def risk_name(k: int) -> str:
    """The statistics variable of covariate ``k`` summed over the users at risk on each day."""
    return f"risk_cov{k}"


def lost_name(k: int) -> str:
    """The statistics variable of covariate ``k`` summed over the users lost on each day."""
    return f"lost_cov{k}"


def life_table_moments(stats: xr.Dataset, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: Kaplan-Meier retention at ``horizon``, and per day up to it the hazard, ``1 / (R - L)`` (0 on a
    day that lost everyone at risk or had nobody) and ``L / (R (R - L))`` (Greenwood's terms)."""
    at_risk = stats["at_risk"].values[..., :horizon].astype(float)
    lost = stats["lost"].values[..., :horizon].astype(float)
    hazard = daily_hazards(at_risk, lost)
    left = at_risk - lost
    inverse = np.where(left > 0, 1.0 / np.where(left > 0, left, 1.0), 0.0)
    return np.prod(1.0 - hazard, axis=-1), hazard, inverse, lost * inverse / np.where(at_risk > 0, at_risk, 1.0)


def survival_draws(rng: np.random.Generator, lost: np.ndarray, at_risk: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Draws of the survival curve (last axis: day) from Beta(1 + lost, 1 + survivors) daily hazards."""
    hazard = rng.beta(1.0 + lost, 1.0 + at_risk - lost, size=size + np.shape(lost))
    return np.cumprod(1.0 - hazard, axis=-1)


def sample_retention(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings()):
    """Beta posterior of every day's churn hazard; retention is the product of survived days."""
    rng = np.random.default_rng(sampler.seed)
    survival = survival_draws(rng, stats["lost"].values, stats["at_risk"].values, (sampler.chains, sampler.draws))
    return posterior_dataset(stats, sampler, survival[..., RetentionParams.of(metric).horizon - 1],
                             {"survival": (("chain", "draw", "arm", "segment", "day"), survival)})


class _ChurnTruth:
    """A geometric churn day per user: the constant daily hazard that gives the baseline D-horizon
    retention (at each look every user is observed up to the look, censored after)."""

    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric = metric
        # the improvement is on D-horizon retention; the constant daily hazard that gives it
        retention = np.clip(baseline.value * factors, 1e-9, 1 - 1e-9)
        self.hazards = 1.0 - retention ** (1.0 / RetentionParams.of(metric).horizon)

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        if latent is None:
            return rng.geometric(self.hazards[arms])
        # the geometric's inverse CDF: a high latent activity stays longer
        days = np.ceil(np.log1p(-np.clip(latent, 0.0, 1 - 1e-12)) / np.log1p(-self.hazards[arms]))
        return np.maximum(days, 1.0).astype(np.int64)


class _LifeTables:
    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        # users observed before the simulation keep the life table they had (they are not followed further)
        self.start = start
        self.cohorts: list[list[np.ndarray]] = [[] for _ in arms]     # per arm: churn days, one array per day
        self.n = initial(start, "n", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        for k in range(len(self.arms)):
            self.cohorts[k].append(values[arms == k])
        self.n += np.bincount(arms, minlength=len(self.arms))

    def users(self) -> np.ndarray:
        return self.n

    def life_table(self, days: int, weights: list[list[np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Users at risk and lost on each of the first ``days`` days, per arm, as of the latest day; with
        ``weights`` (a value per user, in the cohorts' layout), the sums of those values over the same users."""
        at_risk = np.zeros((len(self.arms), days))
        lost = np.zeros_like(at_risk)
        for k, cohorts in enumerate(self.cohorts):
            for start, churn in enumerate(cohorts, start=1):
                weight = None if weights is None else weights[k][start - 1]
                observed = min(len(cohorts) - start, days)            # whole days seen so far
                # users at risk on day d survived d-1 days; lost on day d if they churned on day d
                counts = np.bincount(np.minimum(churn, observed + 1), weights=weight, minlength=observed + 2)
                total = churn.size if weight is None else weight.sum()
                survivors = total - np.concatenate([[0], np.cumsum(counts[1:observed + 1])])
                at_risk[k, :observed] += survivors[:observed]
                lost[k, :observed] += counts[1:observed + 1]
        if self.start is not None and weights is None:
            seen = min(self.start.sizes["day"], days)
            at_risk[:, :seen] += self.start["at_risk"].values[:, :seen]
            lost[:, :seen] += self.start["lost"].values[:, :seen]
        return at_risk, lost

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        at_risk, lost = self.life_table(RetentionParams.of(self.metric).horizon)
        return survival_draws(rng, lost, at_risk, (draws,))[..., -1]

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Kaplan-Meier D-horizon retention and Greenwood's variance (days nobody reached count as no loss)."""
        at_risk, lost = self.life_table(RetentionParams.of(self.metric).horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            greenwood = np.where(at_risk > lost, lost / (at_risk * (at_risk - lost)), 0.0)
        survival = np.prod(1.0 - daily_hazards(at_risk, lost), axis=1)
        return survival, survival ** 2 * greenwood.sum(axis=1)

    def link(self, means: np.ndarray) -> np.ndarray:
        # the model's effect is on the logit of the daily churn hazard; for small hazards that is the
        # complementary log-log of retention (a lower hazard, a higher retention)
        return np.log(-np.log(np.clip(means, 1e-12, 1 - 1e-12)))

    def stats(self) -> xr.Dataset:
        at_risk, lost = self.life_table(RetentionParams.of(self.metric).max_day)
        return retention_stats(self.arms, [ALL_USERS], at_risk[:, None, :], lost[:, None, :], self.metric.name,
                               users=self.n[:, None])


class _AdjustedLifeTables(AdjustedAccumulator):
    """Life tables with one covariate per user: its sums over all users and, per day, over the users at risk and
    lost, so that the analysis's influence-function adjustment applies to the simulated users as to real ones."""

    summed = (sum_name(0), cross_name(0, 0))        # no per-user value is crossed: the per-day sums replace it

    def __init__(self, inner: _LifeTables, family: "Retention"):
        super().__init__(inner, family)
        self.covariates: list[list[np.ndarray]] = [[] for _ in inner.arms]     # as the inner cohorts of churn days

    def add_covariate(self, arms: np.ndarray, values: np.ndarray, covariate: np.ndarray) -> None:
        self.inner.add(arms, values.astype(np.int64))
        for k, cohorts in enumerate(self.covariates):
            cohorts.append(covariate[arms == k])
        count = len(self.covariates)
        self.sums[sum_name(0)] += np.bincount(arms, weights=covariate, minlength=count)
        self.sums[cross_name(0, 0)] += np.bincount(arms, weights=covariate * covariate, minlength=count)

    def covariate_stats(self) -> xr.Dataset:
        days = RetentionParams.of(self.metric).max_day
        risk, lost = self.inner.life_table(days, self.covariates)
        per_day = ("arm", "segment", "day")
        return super().covariate_stats().assign({risk_name(0): (per_day, risk[:, None, :]),
                                                 lost_name(0): (per_day, lost[:, None, :])})


class Retention(RateFamily):
    """Is the user still active N days after exposure? Churn day per user, censored by days observed."""

    name = "retention"
    panel_total = None          # a churn day is a user's property, not a sum of days
    params_type = RetentionParams

    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """The effect shifts every day's churn-hazard logit by d, and retention at the horizon H is
        prod(1 - h_t): d log S / d d = -sum_{t <= H} h_t. A relative change r of retention is therefore a shift
        of -r / sum(h) (negative: better retention is lower churn), with the control's observed hazards."""
        control = stats.isel(arm=0).sum("segment").sel(day=slice(None, RetentionParams.of(metric).horizon))
        at_risk = control["at_risk"].values.astype(float)
        lost = control["lost"].values.astype(float)
        hazards = np.where(at_risk > 0, lost / np.where(at_risk > 0, at_risk, 1.0), 0.0).sum()
        if hazards <= 0:
            raise DataError(f"metric {metric.name!r}: a learned prior of relative retention needs some churn in the "
                            "control arm before the horizon (none observed yet)")
        return -1.0 / hazards

    def parse_params(self, read: ParamReader) -> RetentionParams:
        observed = read.string("observed_column", None) or read.fail(
            "observed_column", "is required for retention (days each user has been observable)")
        horizon = read.count("horizon", 7)
        max_day = read.count("max_day", max(30, horizon))
        if max_day < horizon:
            read.fail("max_day", f"must be at least horizon ({horizon}), got {max_day}")
        return RetentionParams(observed, horizon, max_day)

    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """Users by exit day (churn, end of observation, or ``max_day``) and how many of them churned.
        Aggregated rows carry the churn day (empty: not churned by ``max_day``) and the days observed (at
        most ``max_day``) in the metric's two columns, with the users who share them in ``users_column``."""
        p = RetentionParams.of(metric)
        if not p.observed_column:
            raise DataError(f"metric {metric.name!r}: retention needs observed_column (days each user has "
                            "been observable)")
        churn_column = metric_column(metric, metric.column, kinds, "churn days")
        seen_column = metric_column(metric, p.observed_column, kinds, "days observed")
        churn, seen = churn_column.number(), seen_column.number()
        checks = numeric_checks(churn_column, metric.name, alias + "c", allow_missing=True, whole=True,
                                minimum=1, what="churn days")
        checks += numeric_checks(seen_column, metric.name, alias + "o", whole=True, minimum=0,
                                 what="days observed")
        checks.append(Check.counted(
            f"{alias}_beyond", f"({churn} > {seen})",
            f"has churn days beyond the observation window (column {p.observed_column!r})",
            metric.column, metric.name))
        max_day = p.max_day

        def build(arms, segments, table, detail):
            exits, lost = (by_exit_day(arms, segments, detail, f"{alias}_{part}", max_day) for part in ("users", "lost"))
            return retention_stats(arms, segments, at_risk_of(exits), lost[:, :, 1:], metric.name,
                                   users=exits.sum(axis=2))

        churned = f"{churn} IS NOT NULL AND {churn} <= {max_day}"
        return MetricQuery(
            [], {}, build,
            detail_key=f"CAST(LEAST(COALESCE({churn}, {seen}), {seen}, {max_day}) AS BIGINT)",
            detail_users={f"{alias}_users": None, f"{alias}_lost": churned},
            # a user's churn day past max_day and days observed past it change nothing: dropped, so that
            # aggregated rows stay few
            keys={metric.column: f"CASE WHEN {churned} THEN {churn} END",
                  p.observed_column: f"LEAST({seen}, {max_day})"},
            key_checks=checks,
        )

    def statistics_query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> MetricQuery:
        """With covariates, the grouped query's covariate sums (:mod:`bayes_ab.families.covariates`) and, per exit
        day, each covariate term summed over the users exiting and over those lost that day: the life table's
        covariate sums (``risk_cov<k>``, ``lost_cov<k>``: arm x segment x day), which the influence function reads.
        Aggregated rows carry each term's sum over the row's users (``<x>``); a row's users share their exit day."""
        query = super().statistics_query(metric, alias, kinds)
        if not metric.covariates:
            return query
        _, terms = covariate_terms(metric, alias, kinds)
        lost = query.detail_users[f"{alias}_lost"]
        detail_sums = {}
        for k, (name, x) in enumerate(terms):
            detail_sums[f"{alias}_{risk_name(k)}"] = DetailSum(x, name)
            detail_sums[f"{alias}_{lost_name(k)}"] = DetailSum(x, name, lost)
        max_day = RetentionParams.of(metric).max_day
        inner = query.build

        def build(arms, segments, table, detail):
            stats = inner(arms, segments, table, detail)
            days = ("arm", "segment", "day")
            found = {}
            for k in range(len(terms)):
                exits = by_exit_day(arms, segments, detail, f"{alias}_{risk_name(k)}", max_day)
                found[risk_name(k)] = (days, at_risk_of(exits))
                found[lost_name(k)] = (days, by_exit_day(arms, segments, detail, f"{alias}_{lost_name(k)}",
                                                         max_day)[:, :, 1:])
            return stats.assign(found)

        return replace(query, detail_sums={**query.detail_sums, **detail_sums}, build=build)

    def covariate_values(self, metric: Metric, kinds: dict[str, str]) -> dict[str, tuple[str, str]]:
        """No per-user value is crossed with the covariates in the grouped query: the life table's covariate sums
        come per exit day (:meth:`statistics_query`)."""
        return {}

    def covariate_moments(self, stats: xr.Dataset, metric: Metric, x: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per cell, with ``n phi_i`` as each user's value (``phi_i`` the user's influence on the Kaplan-Meier
        retention ``S`` at the horizon; see the module): the mean ``S``, the centred sum of squares
        ``n^2 S^2 sum_d L/(R(R-L))`` (Greenwood's variance times ``n^2``, exact) and the centred cross-products
        ``-n S sum_d (Lx_d - h_d Rx_d)/(R_d - L_d)`` (``Lx``, ``Rx``: the covariate summed over the users lost on and
        at risk on day d; centred because the influences sum to 0)."""
        horizon = RetentionParams.of(metric).horizon
        n = stats["n"].values.astype(float)
        survival, hazard, inverse, greenwood = life_table_moments(stats, horizon)
        crossed = np.stack([
            -n * survival * ((stats[lost_name(k)].values[..., :horizon]
                              - hazard * stats[risk_name(k)].values[..., :horizon]) * inverse).sum(axis=-1)
            for k in range(x.shape[-1])], axis=-1)
        return survival, n ** 2 * survival ** 2 * greenwood.sum(axis=-1), crossed

    def effective_cells(self, stats: xr.Dataset, metric: Metric, means: np.ndarray, users: np.ndarray) -> xr.Dataset:
        """The life table of ``users`` effective users (every day's users at risk scaled by ``users / n``) whose
        retention at the horizon is ``means``: each day's hazard ``h`` becomes ``1 - (1 - h)^c`` with
        ``c = log(means) / log(S)``, which keeps the curve's shape on the cumulative-hazard scale. A cell with no
        churn yet (``S = 1``), none retained, or an adjusted retention outside (0, 1) keeps its own life table: its
        adjustment cannot be drawn as a life table, and such a cell carries next to no information on retention."""
        survival, _, _, _ = life_table_moments(stats, RetentionParams.of(metric).horizon)
        at_risk = stats["at_risk"].values.astype(float)
        lost = stats["lost"].values.astype(float)
        n = stats["n"].values.astype(float)
        movable = (survival > 0) & (survival < 1) & (means > 0) & (means < 1) & (n > 0)
        power = np.where(movable, np.log(np.where(movable, means, 0.5)) / np.log(np.where(movable, survival, 0.5)),
                         1.0)
        scale = np.where(movable, users / np.maximum(n, 1.0), 1.0)
        effective_risk = at_risk * scale[..., None]
        effective_lost = effective_risk * (1.0 - (1.0 - daily_hazards(at_risk, lost)) ** power[..., None])
        days = ("arm", "segment", "day")
        return stats.assign(n=(("arm", "segment"), n * scale), at_risk=(days, effective_risk),
                            lost=(days, effective_lost))

    def covariate_outcome(self, metric: Metric, values: np.ndarray) -> np.ndarray:
        """A planned covariate correlation is with retained-or-not at the horizon (as if every user were observed
        that long): the per-user value the adjustment regresses on without censoring."""
        return (values > RetentionParams.of(metric).horizon).astype(float)

    def adjusted_accumulator(self, inner: "_LifeTables") -> "_AdjustedLifeTables":
        """The life tables kept with each user's covariate, adjusted as the analysis adjusts them."""
        return _AdjustedLifeTables(inner, self)

    # the module's functions of (statistics, metric) serve as the family's methods
    model_data = staticmethod(model_data)
    build_model = staticmethod(build_model)
    observed_mean = staticmethod(observed_mean)
    variant = staticmethod(variant)
    describe = staticmethod(describe)

    def definition(self, metric: Metric) -> str:
        p = RetentionParams.of(metric)
        return (f"share of users still active {p.horizon} days after exposure (D{p.horizon} retention), from each "
                f"user's churn day {metric.column!r} and days observed {p.observed_column!r}: users not yet "
                "observed that long count for the days they were seen (Kaplan-Meier)")

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """The default horizon and curve (a structure per horizon: another horizon compiles on first use)."""
        params = RetentionParams()
        curve = np.round(1000 * 0.97 ** np.arange(params.max_day + 1))       # no one censored: each day's
        shape = (len(arms), len(segments), params.max_day)                    # risk set is the last one's stayers
        at_risk, lost = np.broadcast_to(curve[:-1], shape), np.broadcast_to(curve[:-1] - curve[1:], shape)
        metric = Metric(name="retained", family=self.name, column="churn_day", params=params)
        return (WarmupCase(f"horizon {params.horizon}", metric,
                           retention_stats(arms, segments, at_risk, lost, metric.name)),)

    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        return "Beta hazard per day, flat prior"

    def figure(self, fit, interval: float) -> tuple[str | None, str]:
        """The posterior retention curve per arm with its bands."""
        from bayes_ab import figures     # matplotlib only when a report is drawn

        curve = retention_curve(fit, interval)
        curves = {str(arm): (part["day"].values, part["retention"].values, part["low"].values, part["high"].values)
                  for arm, part in curve.groupby("arm", sort=False)}
        return figures.retention_curves(curves), (f"Posterior retention by day since exposure (overall, "
                                                  f"{interval:.0%} bands); users not yet old enough to be "
                                                  "observed on a day are censored, not counted as lost.")

    def text_lines(self, fit, interval: float) -> list[str]:
        """The retention milestones (D1, D7, D30) per arm."""
        from bayes_ab import format as fmt

        milestones = retention_milestones(fit, interval=interval)
        shown = pd.DataFrame({
            "day": "D" + milestones["day"].astype(str), "arm": milestones["arm"],
            "retention": [f"{v:.1%} [{lo:.1%}, {hi:.1%}]" for v, lo, hi in
                          zip(milestones["retention"], milestones["low"], milestones["high"])],
            "rel. lift": [("" if np.isnan(v) else fmt.relative(v)) for v in milestones["rel_lift"]],
            "P(beat ctrl)": [("" if np.isnan(v) else fmt.probability(v)) for v in milestones["p_beat_control"]],
        })
        return ["retention milestones (overall):"] + ["  " + line for line in shown.to_string(index=False).splitlines()]

    sample_conjugate = staticmethod(sample_retention)
    truth_type = _ChurnTruth
    accumulator_type = _LifeTables
