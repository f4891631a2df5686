"""Simulated users for operating characteristics: a truth draws them, an accumulator keeps their statistics.

A simulated experiment is a *world*: each day, the users who would enter at full traffic, in random
order, with their arm (drawn by the planned weights) and their value of every simulated metric (drawn by
a :class:`Truth`). A rule at a ramp stage sees the first ``traffic share x daily users`` of them, so rules
compared on the same world see nested samples of the same users: common random numbers, and differences
between rules are differences of the rules, not of luck.

An :class:`Accumulator` adds the users a rule saw and gives what the rules read: closed-form posterior
draws of each arm's mean (the conjugate forms of :mod:`bayes_ab.models.conjugate`), the classical
estimate and its variance (for the frequentist reference rules), and the sufficient statistics.

- conversion: Bernoulli users; Beta posterior;
- count: negative-binomial (or Poisson) users, kept as n, sum and sum of squares and analysed with the
  mean family's Student-t posterior (the Gamma-Poisson form ignores overdispersion and is overconfident);
- mean: normal users; Student-t posterior;
- retention: a geometric churn day per user (the constant daily hazard that gives the baseline
  D-horizon retention); at each look every user is observed up to the look (censored after).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import xarray as xr

from bayes_ab.data.stats import ALL_USERS, conversion_stats, mean_stats, retention_stats
from bayes_ab.models.conjugate import mean_draws, rate_draws, survival_draws
from bayes_ab.spec import Baseline, Metric


class Truth(Protocol):
    """The true behaviour of one metric in every arm."""

    metric: Metric

    def draw(self, rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
        """One value per user; ``arms`` holds each user's arm index (0 = control)."""


class Accumulator(Protocol):
    """Cumulative statistics of one metric over the simulated users a rule has seen."""

    metric: Metric

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        """Add users: their arm indices and their values."""

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Closed-form posterior draws of every arm's mean, shape (draws, arms)."""

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Per arm: the classical estimate of the mean and the variance of that estimate."""

    def link(self, means: np.ndarray) -> np.ndarray:
        """Means on the scale of the family model's treatment effect (its prior is on that scale)."""

    def users(self) -> np.ndarray:
        """Users seen per arm."""

    def stats(self) -> xr.Dataset:
        """The cumulative sufficient statistics (one segment)."""


def factors_for(metric: Metric, lift: float, arms: int) -> np.ndarray:
    """Per-arm multipliers of the baseline when every treatment is ``lift`` better (negative: worse)
    in the metric's good direction (a "decrease is good" metric falls by ``lift``)."""
    sign = 1.0 if metric.increase_is_good else -1.0
    return np.array([1.0] + [1.0 + sign * lift] * (arms - 1))


def truth(metric: Metric, baseline: Baseline, factors: Sequence[float]) -> Truth:
    """The truth whose arm ``k`` has mean ``baseline.value * factors[k]`` (control first)."""
    kinds = {"conversion": _RateTruth, "count": _CountTruth, "mean": _NormalTruth, "retention": _ChurnTruth}
    return kinds[metric.family](metric, baseline, np.asarray(factors, dtype=float))


def accumulator(metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None = None) -> Accumulator:
    """An empty accumulator for ``metric`` -- or one holding ``start``, statistics already observed (any
    segments; they are pooled into one), as when predicting the rest of a running experiment."""
    kinds = {"conversion": _Conversion, "count": _Sums, "mean": _Sums, "retention": _Retention}
    pooled = None if start is None else start.sum("segment")
    return kinds[metric.family](metric, arms, pooled)


class _RateTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric = metric
        self.rates = np.clip(baseline.value * factors, 0.0, 1.0)

    def draw(self, rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
        return (rng.random(arms.size) < self.rates[arms]).astype(np.int8)


class _CountTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric, self.means, self.shape = metric, baseline.value * factors, baseline.spread

    def draw(self, rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
        mean = self.means[arms]
        if self.shape is None:
            return rng.poisson(mean)
        return rng.negative_binomial(self.shape, self.shape / (self.shape + mean))


class _NormalTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric, self.means, self.sd = metric, baseline.value * factors, float(baseline.spread)

    def draw(self, rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
        return rng.normal(self.means[arms], self.sd)


class _ChurnTruth:
    def __init__(self, metric: Metric, baseline: Baseline, factors: np.ndarray):
        self.metric = metric
        # the improvement is on D-horizon retention; the constant daily hazard that gives it
        retention = np.clip(baseline.value * factors, 1e-9, 1 - 1e-9)
        self.hazards = 1.0 - retention ** (1.0 / metric.horizon)

    def draw(self, rng: np.random.Generator, arms: np.ndarray) -> np.ndarray:
        return rng.geometric(self.hazards[arms])


class _Conversion:
    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.n = _initial(start, "n", len(arms))
        self.successes = _initial(start, "successes", len(arms))

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


class _Sums:
    """n, sum and sum of squares per arm, analysed as a mean (counts too: see the module docstring)."""

    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.n = _initial(start, "n", len(arms))
        self.sum = _initial(start, "sum", len(arms))
        self.sumsq = _initial(start, "sumsq", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        values = values.astype(float)
        self.n += np.bincount(arms, minlength=len(self.arms))
        self.sum += np.bincount(arms, weights=values, minlength=len(self.arms))
        self.sumsq += np.bincount(arms, weights=values * values, minlength=len(self.arms))

    def users(self) -> np.ndarray:
        return self.n

    def _moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = np.maximum(self.n, 1)
        mean = self.sum / n
        squares = np.maximum(self.sumsq - self.sum * mean, 0.0)
        return n, mean, squares

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        n, mean, squares = self._moments()
        return mean_draws(rng, n, mean, squares, n - 1, (draws,))

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        n, mean, squares = self._moments()
        return mean, squares / np.maximum(n - 1, 1) / n

    def link(self, means: np.ndarray) -> np.ndarray:
        if self.metric.family == "count":
            return np.log(np.maximum(means, 1e-12))
        n, _, squares = self._moments()          # the mean model's effect is in pooled standard deviations
        scale = np.sqrt(squares.sum() / max(n.sum() - len(n), 1))
        return means / (scale if scale > 0 else 1.0)

    def stats(self) -> xr.Dataset:
        return mean_stats(self.arms, [ALL_USERS], self.n[:, None].astype(np.int64),
                          {"sum": self.sum[:, None], "sumsq": self.sumsq[:, None]}, self.metric.name)


class _Retention:
    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        # users observed before the simulation keep the life table they had (they are not followed further)
        self.start = start
        self.cohorts: list[list[np.ndarray]] = [[] for _ in arms]     # per arm: churn days, one array per day
        self.n = _initial(start, "n", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        for k in range(len(self.arms)):
            self.cohorts[k].append(values[arms == k])
        self.n += np.bincount(arms, minlength=len(self.arms))

    def users(self) -> np.ndarray:
        return self.n

    def _life_table(self, days: int) -> tuple[np.ndarray, np.ndarray]:
        """Users at risk and lost on each of the first ``days`` days, per arm, as of the latest day."""
        at_risk = np.zeros((len(self.arms), days))
        lost = np.zeros_like(at_risk)
        for k, cohorts in enumerate(self.cohorts):
            for start, churn in enumerate(cohorts, start=1):
                observed = min(len(cohorts) - start, days)            # whole days seen so far
                # users at risk on day d survived d-1 days; lost on day d if they churned on day d
                counts = np.bincount(np.minimum(churn, observed + 1), minlength=observed + 2)
                survivors = churn.size - np.concatenate([[0], np.cumsum(counts[1:observed + 1])])
                at_risk[k, :observed] += survivors[:observed]
                lost[k, :observed] += counts[1:observed + 1]
        if self.start is not None:
            seen = min(self.start.sizes["day"], days)
            at_risk[:, :seen] += self.start["at_risk"].values[:, :seen]
            lost[:, :seen] += self.start["lost"].values[:, :seen]
        return at_risk, lost

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        at_risk, lost = self._life_table(self.metric.horizon)
        return survival_draws(rng, lost, at_risk, (draws,))[..., -1]

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Kaplan-Meier D-horizon retention and Greenwood's variance (days nobody reached count as no loss)."""
        at_risk, lost = self._life_table(self.metric.horizon)
        with np.errstate(divide="ignore", invalid="ignore"):
            hazard = np.where(at_risk > 0, lost / at_risk, 0.0)
            greenwood = np.where(at_risk > lost, lost / (at_risk * (at_risk - lost)), 0.0)
        survival = np.prod(1.0 - hazard, axis=1)
        return survival, survival ** 2 * greenwood.sum(axis=1)

    def link(self, means: np.ndarray) -> np.ndarray:
        # the model's effect is on the logit of the daily churn hazard; for small hazards that is the
        # complementary log-log of retention (a lower hazard, a higher retention)
        return np.log(-np.log(np.clip(means, 1e-12, 1 - 1e-12)))

    def stats(self) -> xr.Dataset:
        at_risk, lost = self._life_table(self.metric.max_day)
        return retention_stats(self.arms, [ALL_USERS], at_risk[:, None, :], lost[:, None, :], self.metric.name,
                               users=self.n[:, None])


def _initial(start: xr.Dataset | None, name: str, arms: int) -> np.ndarray:
    """Per-arm totals of statistic ``name`` observed so far (zeros without a start)."""
    if start is None:
        return np.zeros(arms)
    return np.asarray(start[name].values, dtype=float).copy()
