"""Simulated users for operating characteristics: a truth draws them, an accumulator keeps their statistics.

A simulated experiment is a *world*: each day, the users who would enter at full traffic, in random
order, with their arm (drawn by the planned weights) and their value of every simulated metric (drawn by
a :class:`Truth`). A rule at a ramp stage sees the first ``traffic share x daily users`` of them, so rules
compared on the same world see nested samples of the same users: common random numbers, and differences
between rules are differences of the rules, not of luck.

An :class:`Accumulator` adds the users a rule saw and gives what the rules read: closed-form posterior
draws of each arm's mean (the family's conjugate form), the classical estimate and its variance (for the
frequentist reference rules), and the sufficient statistics. Each family declares its truth and its
accumulator in its module (:mod:`bayes_ab.families`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from bayes_ab.families import Accumulator, Truth, family_for
from bayes_ab.spec import Baseline, Metric

__all__ = ["Accumulator", "Truth", "accumulator", "factors_for", "truth"]


def factors_for(metric: Metric, lift: float, arms: int) -> np.ndarray:
    """Per-arm multipliers of the baseline when every treatment is ``lift`` better (negative: worse)
    in the metric's good direction (a "decrease is good" metric falls by ``lift``)."""
    sign = 1.0 if metric.increase_is_good else -1.0
    return np.array([1.0] + [1.0 + sign * lift] * (arms - 1))


def truth(metric: Metric, baseline: Baseline, factors: Sequence[float]) -> Truth:
    """The truth whose arm ``k`` has mean ``baseline.value * factors[k]`` (control first)."""
    return family_for(metric).truth(metric, baseline, np.asarray(factors, dtype=float))


def accumulator(metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None = None) -> Accumulator:
    """An empty accumulator for ``metric`` -- or one holding ``start``, statistics already observed (any
    segments; they are pooled into one), as when predicting the rest of a running experiment."""
    pooled = None if start is None else start.sum("segment")
    return family_for(metric).accumulator(metric, arms, pooled)
