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

from bayes_ab.errors import SpecError
from bayes_ab.families import Accumulator, Truth, family_for
from bayes_ab.families.covariates import CovariateTruth
from bayes_ab.spec import Baseline, Metric

__all__ = ["Accumulator", "Truth", "accumulator", "factors_for", "truth"]


def factors_for(metric: Metric, lift: float, arms: int) -> np.ndarray:
    """Per-arm multipliers of the baseline when every treatment is ``lift`` better (negative: worse)
    in the metric's good direction (a "decrease is good" metric falls by ``lift``)."""
    sign = 1.0 if metric.increase_is_good else -1.0
    return np.array([1.0] + [1.0 + sign * lift] * (arms - 1))


def truth(metric: Metric, baseline: Baseline, factors: Sequence[float], covariate_correlation: float | None = None
          ) -> Truth:
    """The truth whose arm ``k`` has mean ``baseline.value * factors[k]`` (control first); with a
    ``covariate_correlation``, each user also has a pre-period covariate that correlates with its value by that much
    (:class:`~bayes_ab.families.covariates.CovariateTruth`; the metric is then analysed adjusted for it)."""
    family = family_for(metric)
    found = family.truth(metric, baseline, np.asarray(factors, dtype=float))
    if covariate_correlation is None:
        return found
    return CovariateTruth(found, family, covariate_correlation, np.random.default_rng(REACH_SEED))


REACH_SEED = 20261204
"""Seed of the draws that measure how strongly a covariate can correlate with a simulated metric: fixed, so that
a plan's simulated users are the same at every run."""


def accumulator(metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None = None,
                truth: Truth | None = None) -> Accumulator:
    """An empty accumulator for ``metric`` -- or one holding ``start``, statistics already observed (any
    segments; they are pooled into one), as when predicting the rest of a running experiment. Users drawn by a
    :class:`~bayes_ab.families.covariates.CovariateTruth` are kept with their covariate and analysed adjusted for it,
    from an empty start only (a continuation of a running experiment simulates its metrics unadjusted)."""
    family = family_for(metric)
    pooled = None if start is None else start.sum("segment")
    found = family.accumulator(metric, arms, pooled)
    if isinstance(truth, CovariateTruth):
        if start is not None:
            raise SpecError(f"metric {metric.name!r}: a simulation with covariate correlations starts from no users")
        return truth.accumulator(found, family)
    return found
