"""Seeded per-user data with known true effects, for examples, tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SegmentTruth:
    """True conversion rates of one segment: ``rates[arm]`` per metric, and its traffic share.

    ``labels`` maps segment columns to this segment's values, e.g. ``{"tenure": "new"}``.

    ``delivery``: the share of users assigned to a treatment arm who actually receive it (``None``: all of them).
    With it, the rates are what *assignment* does (the intent-to-treat effect, what a rollout delivers) and the
    treatment acts only through receiving it: a receiving user's rate is ``control + (rate - control) /
    delivery``, a user who did not receive it has the control's rate. The effect on those who receive it (the
    complier effect) is then the assignment's divided by ``delivery`` (:meth:`complier_rate`).
    """

    labels: Mapping[str, str]
    share: float
    rates: Mapping[str, Mapping[str, float]]
    delivery: float | None = None

    def complier_rate(self, metric: str, arm: str) -> float:
        """The rate of ``metric`` among users who receive ``arm`` (its assigned rate without ``delivery``)."""
        rates = self.rates[metric]
        control = next(iter(rates.values()))
        if self.delivery is None or rates[arm] == control:
            return rates[arm]
        return control + (rates[arm] - control) / self.delivery


def simulate_users(
    truths: Sequence[SegmentTruth],
    arms: Mapping[str, float],
    n_users: int,
    seed: int,
    arm_column: str = "arm",
    unit_column: str = "user_id",
    received_column: str = "received",
) -> pd.DataFrame:
    """Draw ``n_users`` users: segment by share, arm by planned weight, each metric Bernoulli.

    Parameters
    ----------
    truths
        Segments with their traffic shares (normalised) and true rates by metric and arm (the first arm is the
        control).
    arms
        Arm name -> planned traffic weight.
    received_column
        Where each user's receipt of the treatment goes (0/1; control users 0) when the truths have a
        ``delivery`` share: drawn from a stream of its own, after the segments and arms.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([t.share for t in truths], dtype=float)
    segment = rng.choice(len(truths), size=n_users, p=shares / shares.sum())
    arm_names = list(arms)
    weights = np.array([arms[a] for a in arm_names], dtype=float)
    arm = rng.choice(len(arm_names), size=n_users, p=weights / weights.sum())
    frame = pd.DataFrame({unit_column: np.arange(1, n_users + 1), arm_column: np.array(arm_names)[arm]})
    for column in truths[0].labels:
        frame[column] = np.array([t.labels[column] for t in truths])[segment]
    delivered = None
    if truths[0].delivery is not None:
        delivery = np.array([t.delivery for t in truths], dtype=float)
        delivered = (arm > 0) & (np.random.default_rng([seed, 1]).random(n_users) < delivery[segment])
        frame[received_column] = delivered.astype("int8")
    for metric in truths[0].rates:
        if delivered is None:
            table = np.array([[t.rates[metric][a] for a in arm_names] for t in truths])
            rate = table[segment, arm]
        else:                 # the control's rate unless the treatment was received
            table = np.array([[t.complier_rate(metric, a) for a in arm_names] for t in truths])
            rate = np.where(delivered, table[segment, arm], table[segment, 0])
        frame[metric] = (rng.random(n_users) < rate).astype("int8")
    return frame


def true_overall_rates(truths: Sequence[SegmentTruth], metric: str) -> dict[str, float]:
    """Traffic-weighted true rate of each arm for ``metric``."""
    shares = np.array([t.share for t in truths], dtype=float)
    shares = shares / shares.sum()
    arms = list(truths[0].rates[metric])
    return {a: float(sum(s * t.rates[metric][a] for s, t in zip(shares, truths))) for a in arms}


@dataclass(frozen=True)
class HeavyTailedCounts:
    """Counts per user from two kinds of users, with an exactly known mean.

    Most users draw a negative-binomial count (mean ``regular_mean``, shape ``dispersion``); a share
    ``active_share`` of very active users draw a Poisson count whose rate is Lomax (Pareto II) with tail
    index ``tail_shape`` and mean ``active_mean`` -- a power-law tail like real trading or game-play data,
    with a finite variance when ``tail_shape > 2``. ``factor`` multiplies every user's rate (a treatment
    effect of ``factor - 1``, relative).
    """

    regular_mean: float
    dispersion: float
    active_share: float
    active_mean: float
    tail_shape: float = 2.5

    def mean(self, factor: float = 1.0) -> float:
        """The true mean count per user."""
        return factor * ((1 - self.active_share) * self.regular_mean + self.active_share * self.active_mean)

    def draw(self, rng: np.random.Generator, n: int, factor: float | np.ndarray = 1.0) -> np.ndarray:
        """``n`` users' counts (``factor``: one number, or one per user)."""
        return rng.poisson(factor * self.rates(rng, n))

    def rates(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` users' own rates (their expected counts): :meth:`draw` is a Poisson count at each, and a second
        period's counts at the same rates correlate with the first as a user's months do."""
        active = rng.random(n) < self.active_share
        scale = self.active_mean * (self.tail_shape - 1)             # Lomax mean = scale / (shape - 1)
        return np.where(active, scale * rng.pareto(self.tail_shape, n),
                        rng.gamma(self.dispersion, self.regular_mean / self.dispersion, n))
