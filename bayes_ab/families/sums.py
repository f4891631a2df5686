"""What the families whose statistics are per-cell ``n``, ``sum`` and ``sum of squares`` (count, mean) share:
the raw per-arm mean, and the simulation accumulator with the Student-t posterior of each arm's mean."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayes_ab.families.base import Family
from bayes_ab.metric import Metric
from bayes_ab.models.conjugate import mean_draws
from bayes_ab.models.hierarchy import pooled_mean


class SumsFamily(Family):
    """A family whose statistics carry per-cell ``n`` and ``sum``."""

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Raw mean per user, per arm, over all segments in ``stats`` (no model, no adjustment)."""
        return pooled_mean(stats, "sum")

    def user_moments(self, stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The per-cell ``n``, ``sum`` and ``sumsq`` as they are (of capped values where the metric has a cap)."""
        return tuple(stats[name].values.astype(float) for name in ("n", "sum", "sumsq"))

    def effective_cells(self, stats: xr.Dataset, metric: Metric, means: np.ndarray, users: np.ndarray) -> xr.Dataset:
        """``users`` effective users with mean ``means``: the sum is their product and the sum of squares keeps the
        cell's own per-user sample variance; an adjusted mean below the family's smallest (a count's 0) is raised to it."""
        n, total, squares = (stats[name].values.astype(float) for name in ("n", "sum", "sumsq"))
        variance = np.maximum(squares - total ** 2 / np.maximum(n, 1.0), 0.0) / np.maximum(n - 1.0, 1.0)
        if self.min_mean is not None:
            means = np.maximum(means, self.min_mean)
        cells = ("arm", "segment")
        return stats.assign(n=(cells, users), sum=(cells, means * users),
                            sumsq=(cells, np.maximum(users - 1.0, 0.0) * variance + users * means ** 2))

    def constant_value(self, stats: xr.Dataset) -> float | None:
        """The common value when every user of every arm has the same one (zero variance overall)."""
        n = float(stats["n"].sum())
        if n == 0:
            return None
        mean = float(stats["sum"].sum()) / n
        variance = float(stats["sumsq"].sum()) / n - mean ** 2
        return mean if variance <= 1e-12 * max(1.0, mean ** 2) else None


def initial(start: xr.Dataset | None, name: str, arms: int) -> np.ndarray:
    """Per-arm totals of statistic ``name`` observed so far (zeros without a start)."""
    if start is None:
        return np.zeros(arms)
    return np.asarray(start[name].values, dtype=float).copy()


class Sums:
    """n, sum and sum of squares per arm with the flat-prior Student-t posterior of each arm's mean (the
    families whose value is a number per user: count, mean). Subclasses give ``link`` and ``stats``."""

    def __init__(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None):
        self.metric, self.arms = metric, arms
        self.n = initial(start, "n", len(arms))
        self.sum = initial(start, "sum", len(arms))
        self.sumsq = initial(start, "sumsq", len(arms))

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        values = values.astype(float)
        self.n += np.bincount(arms, minlength=len(self.arms))
        self.sum += np.bincount(arms, weights=values, minlength=len(self.arms))
        self.sumsq += np.bincount(arms, weights=values * values, minlength=len(self.arms))

    def users(self) -> np.ndarray:
        return self.n

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per arm: users (at least 1), mean, and the sum of squared deviations from it."""
        n = np.maximum(self.n, 1)
        mean = self.sum / n
        squares = np.maximum(self.sumsq - self.sum * mean, 0.0)
        return n, mean, squares

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        n, mean, squares = self.moments()
        return mean_draws(rng, n, mean, squares, n - 1, (draws,))

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        n, mean, squares = self.moments()
        return mean, squares / np.maximum(n - 1, 1) / n
