"""Simulated traffic for operating characteristics: one day's users per arm -> cumulative statistics.

Each primary metric gets an accumulator that adds one day of simulated users at a time and returns
the cumulative sufficient statistics, which are what the models consume. The decision rule then runs
on those exactly as on real data (through the conjugate closed forms, for speed).

- conversion: binomial successes per arm;
- count: per-user negative-binomial (or Poisson) counts, kept as n, sum and sum of squares and
  analysed with the mean family's Student-t posterior (the Gamma-Poisson closed form ignores
  overdispersion and would be overconfident);
- mean: exact normal sufficient statistics (sum ~ normal, within-arm sum of squares ~ chi-square);
- retention: daily cohorts with a constant daily churn hazard giving the baseline D-horizon
  retention; at each look every user is observed up to the look (censored after), as in a real test.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, Sequence

import numpy as np
import xarray as xr

from bayes_ab.data.stats import ALL_USERS, conversion_stats, mean_stats, retention_stats
from bayes_ab.spec import Baseline, Metric


class Accumulator(Protocol):
    """Cumulative statistics of one metric, grown one simulated day at a time."""

    metric: Metric

    def add_day(self, rng: np.random.Generator, users: np.ndarray) -> None:
        """Add one day's new users (per arm, control first)."""

    def stats(self) -> xr.Dataset:
        """The cumulative statistics so far."""


def accumulator(metric: Metric, baseline: Baseline, lift: float, arms: tuple[str, ...],
                start: xr.Dataset | None = None) -> Accumulator:
    """An accumulator for ``metric`` whose treatment arms differ from control by relative ``lift`` in the
    metric's good direction (``decrease is good`` metrics fall by ``lift``).

    ``start``: statistics already observed (any segments; they are pooled into one), to which the
    simulated days are added, as when predicting the rest of a running experiment.
    """
    sign = 1.0 if metric.direction == "increase" else -1.0
    return accumulator_with_factors(metric, baseline, [1.0] + [1.0 + sign * lift] * (len(arms) - 1), arms, start)


def accumulator_with_factors(metric: Metric, baseline: Baseline, factors: Sequence[float],
                             arms: tuple[str, ...], start: xr.Dataset | None = None) -> Accumulator:
    """An accumulator whose arm ``k`` has true mean ``baseline.value * factors[k]`` (control first)."""
    kinds = {"conversion": _Conversion, "count": _Count, "mean": _Mean, "retention": _Retention}
    pooled = None if start is None else start.sum("segment")
    return kinds[metric.family](metric, baseline, np.asarray(factors, dtype=float), arms, pooled)


class _Conversion:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray, arms: tuple[str, ...],
                 start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.rates = np.clip(baseline.value * factors, 0.0, 1.0)
        self.n = _initial(start, "n", len(arms)).astype(np.int64)
        self.successes = _initial(start, "successes", len(arms)).astype(np.int64)

    def add_day(self, rng: np.random.Generator, users: np.ndarray) -> None:
        self.n += users
        self.successes += rng.binomial(users, self.rates)

    def stats(self) -> xr.Dataset:
        return conversion_stats(self.arms, [ALL_USERS], self.n[:, None], self.successes[:, None], self.metric.name)


class _Sums:
    """n, sum and sum of squares per arm, analysed with the mean family."""

    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = replace(metric, family="mean", covariate=None), arms
        self.n = _initial(start, "n", len(arms)).astype(np.int64)
        self.sum = _initial(start, "sum", len(arms))
        self.sumsq = _initial(start, "sumsq", len(arms))

    def stats(self) -> xr.Dataset:
        return mean_stats(self.arms, [ALL_USERS], self.n[:, None],
                          {"sum": self.sum[:, None], "sumsq": self.sumsq[:, None]}, self.metric.name)


class _Count(_Sums):
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray, arms: tuple[str, ...],
                 start: xr.Dataset | None):
        super().__init__(metric, arms, start)
        self.means, self.shape = baseline.value * factors, baseline.spread

    def add_day(self, rng: np.random.Generator, users: np.ndarray) -> None:
        for k, (count, mean) in enumerate(zip(users, self.means)):
            if self.shape is None:
                values = rng.poisson(mean, count)
            else:
                values = rng.negative_binomial(self.shape, self.shape / (self.shape + mean), count)
            self.n[k] += count
            self.sum[k] += values.sum()
            self.sumsq[k] += np.square(values, dtype=float).sum()


class _Mean(_Sums):
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray, arms: tuple[str, ...],
                 start: xr.Dataset | None):
        super().__init__(metric, arms, start)
        self.means, self.sd = baseline.value * factors, float(baseline.spread)

    def add_day(self, rng: np.random.Generator, users: np.ndarray) -> None:
        for k, (count, mean) in enumerate(zip(users, self.means)):
            if count == 0:
                continue
            day_sum = rng.normal(count * mean, self.sd * np.sqrt(count))
            within = self.sd ** 2 * rng.chisquare(count - 1) if count > 1 else 0.0
            self.n[k] += count
            self.sum[k] += day_sum
            self.sumsq[k] += within + day_sum ** 2 / count


class _Retention:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray, arms: tuple[str, ...],
                 start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        # users observed before the simulation keep the life table they had (they are not followed further)
        self.start = start
        # the improvement is on D-horizon retention; the constant daily hazard that gives it
        retention = np.clip(baseline.value * factors, 1e-9, 1 - 1e-9)
        self.hazards = 1.0 - retention ** (1.0 / metric.horizon)
        self.churn_days: list[list[np.ndarray]] = [[] for _ in arms]     # per arm, per cohort day
        self.day = 0

    def add_day(self, rng: np.random.Generator, users: np.ndarray) -> None:
        self.day += 1
        for k, count in enumerate(users):
            self.churn_days[k].append(rng.geometric(self.hazards[k], count))

    def stats(self) -> xr.Dataset:
        at_risk = np.zeros((len(self.arms), 1, self.metric.max_day))
        lost = np.zeros_like(at_risk)
        n = np.zeros((len(self.arms), 1))
        for k, cohorts in enumerate(self.churn_days):
            for start, churn in enumerate(cohorts, start=1):
                observed = min(self.day - start, self.metric.max_day)     # whole days seen so far
                n[k, 0] += churn.size
                # users at risk on day d survived d-1 days; lost on day d if they churned on day d
                counts = np.bincount(np.minimum(churn, observed + 1), minlength=observed + 2)
                survivors = churn.size - np.concatenate([[0], np.cumsum(counts[1:observed + 1])])
                at_risk[k, 0, :observed] += survivors[:observed]
                lost[k, 0, :observed] += counts[1:observed + 1]
        if self.start is not None:
            days = min(self.start.sizes["day"], self.metric.max_day)
            at_risk[:, 0, :days] += self.start["at_risk"].values[:, :days]
            lost[:, 0, :days] += self.start["lost"].values[:, :days]
            n[:, 0] += self.start["n"].values
        return retention_stats(self.arms, [ALL_USERS], at_risk, lost, self.metric.name, users=n)


def _initial(start: xr.Dataset | None, name: str, arms: int) -> np.ndarray:
    """Per-arm totals of statistic ``name`` observed so far (zeros without a start)."""
    if start is None:
        return np.zeros(arms)
    return np.asarray(start[name].values, dtype=float).copy()
