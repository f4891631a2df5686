"""Mean-family statistics from published per-arm summaries: count, mean and variance.

Reports such as the ASOS Digital Experiments dataset give, per arm and checkpoint, the number of
users, the metric's mean and its sample variance (``ddof = 1``). These determine the sufficient
statistics exactly: ``sum = n * mean`` and ``sumsq = (n - 1) * variance + n * mean**2``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from bayes_ab.data.stats import ALL_USERS
from bayes_ab.families.mean import mean_stats
from bayes_ab.errors import DataError


def moments_stats(arms: Sequence[str], n: Sequence[float], mean: Sequence[float], variance: Sequence[float],
                  metric: str) -> xr.Dataset:
    """One-segment mean statistics from per-arm ``n``, ``mean`` and sample ``variance``.

    Raises
    ------
    DataError
        A missing or negative variance, or a non-finite mean, naming the arm.
    """
    n, mean, variance = (np.asarray(v, dtype=float) for v in (n, mean, variance))
    for k, arm in enumerate(arms):
        if not np.isfinite(mean[k]):
            raise DataError(f"metric {metric!r}: mean of arm {arm!r} is missing or not finite ({mean[k]!r})")
        if not np.isfinite(variance[k]) or variance[k] < 0:
            raise DataError(f"metric {metric!r}: variance of arm {arm!r} is missing or negative ({variance[k]!r})")
    sums = {"sum": (n * mean)[:, None], "sumsq": ((n - 1) * variance + n * mean ** 2)[:, None]}
    return mean_stats(arms, [ALL_USERS], n[:, None], sums, metric)
