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
    """

    labels: Mapping[str, str]
    share: float
    rates: Mapping[str, Mapping[str, float]]


def simulate_users(
    truths: Sequence[SegmentTruth],
    arms: Mapping[str, float],
    n_users: int,
    seed: int,
    arm_column: str = "arm",
    unit_column: str = "user_id",
) -> pd.DataFrame:
    """Draw ``n_users`` users: segment by share, arm by planned weight, each metric Bernoulli.

    Parameters
    ----------
    truths
        Segments with their traffic shares (normalised) and true rates by metric and arm.
    arms
        Arm name -> planned traffic weight.
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
    for metric in truths[0].rates:
        table = np.array([[t.rates[metric][a] for a in arm_names] for t in truths])
        frame[metric] = (rng.random(n_users) < table[segment, arm]).astype("int8")
    return frame


def true_overall_rates(truths: Sequence[SegmentTruth], metric: str) -> dict[str, float]:
    """Traffic-weighted true rate of each arm for ``metric``."""
    shares = np.array([t.share for t in truths], dtype=float)
    shares = shares / shares.sum()
    arms = list(truths[0].rates[metric])
    return {a: float(sum(s * t.rates[metric][a] for s, t in zip(shares, truths))) for a in arms}
