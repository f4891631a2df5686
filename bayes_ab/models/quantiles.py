"""The posterior of a quantile from a histogram on fixed log-spaced bins (array-first).

**Bins.** A value ``v`` falls in bin ``0`` when ``v <= LOWEST`` and otherwise in bin
``k = 1 + floor(log(v / LOWEST) / log(1 + BIN_WIDTH))``, the interval ``(LOWEST r^(k-1), LOWEST r^k]`` with
``r = 1 + BIN_WIDTH``. The bins are the same for every experiment, so histograms add across days, partitions
and warehouses; a quantile located inside its bin is within one bin width (0.1%) of the exact order statistic,
half of it on average. (1% bins were tried first: on 390,000 requests the median's interval is narrower than a 1%
bin, and interpolating inside the bins widened it by 60%; at 0.1% the ends agree with a user-level bootstrap to
0.04 of its width.)

**Sufficient statistics** per cell and bin ``b``, over users ``i`` with ``e_ib`` values in bin ``b``, ``m_i``
values in all and ``c_i(b)`` values up to and including bin ``b``: ``events`` = sum_i e_ib, ``cross`` = sum_i
e_ib m_i and ``square`` = sum_i (c_i(b)^2 - c_i(b-1)^2). Their cumulative sums over bins give, at every bin
edge, sum_i c_i, sum_i c_i m_i and sum_i c_i^2; their totals sum_i m_i and sum_i m_i^2. With one value per
user all three are the users per bin.

**Posterior.** The Bayesian bootstrap puts Dirichlet(1, ..., 1) weights on the users. The quantile ``Q_p`` is at
most ``x`` exactly when the weighted distribution function ``F(x)`` is at least ``p``, so the posterior CDF
of ``Q_p`` at each bin edge is ``P(F(x_b) >= p)`` -- no sampling of the histogram is needed. With one value
per user, ``F(x_b)`` is exactly ``Beta(C_b, n - C_b)`` (``C_b`` users up to the edge). With several values
per user, ``F(x_b) = sum_i w_i c_i / sum_i w_i m_i`` is a ratio over users, whose variance is the delta
method's ``sum_i (c_i - F m_i)^2 / M^2`` (users are the clusters: a user with 1,000 slow requests is one
draw, not 1,000); it is taken as a Beta with that mean and variance, i.e. with ``F(1 - F) / var``
effective users (with one value per user: exactly ``n``). Draws of ``Q_p`` come from that CDF by inversion,
log-linear inside a bin.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import betainc

BIN_WIDTH = 0.001
"""Relative width of a bin: a quantile is located to within 0.1% of its value."""
LOWEST = 1e-6
"""Values at or below this (zero included) share bin 0."""
LOG_STEP = math.log1p(BIN_WIDTH)


def bin_keys(values: np.ndarray) -> np.ndarray:
    """The bin of each value (as the aggregation's SQL computes it)."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        keys = 1 + np.floor(np.log(values / LOWEST) / LOG_STEP)
    return np.where(values <= LOWEST, 0, keys).astype(np.int64)


def bin_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of each bin."""
    keys = np.asarray(keys, dtype=float)
    upper = LOWEST * np.exp(keys * LOG_STEP)
    lower = np.where(keys > 0, LOWEST * np.exp((keys - 1) * LOG_STEP), 0.0)
    return lower, upper


def bin_centres(keys: np.ndarray) -> np.ndarray:
    """A value inside each bin, half a bin from both edges (the geometric centre; bin 0: LOWEST / 2)."""
    keys = np.asarray(keys, dtype=float)
    return np.where(keys > 0, LOWEST * np.exp((keys - 0.5) * LOG_STEP), LOWEST / 2)


def effective_users(events: np.ndarray, cross: np.ndarray, square: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At each bin's upper edge (last axis): the share of values up to it, ``F``, and the effective users
    ``F (1 - F) / var(F)`` of its cluster-robust variance (see the module docstring)."""
    total = events.sum(-1, keepdims=True)
    safe = np.where(total > 0, total, 1.0)
    share = np.cumsum(events, -1) / safe
    variance = (np.cumsum(square, -1) - 2 * share * np.cumsum(cross, -1)
                + share ** 2 * cross.sum(-1, keepdims=True)) / safe ** 2
    binomial = share * (1 - share)
    with np.errstate(divide="ignore", invalid="ignore"):
        users = np.where((variance > 0) & (binomial > 0), binomial / variance, np.broadcast_to(total, share.shape))
    return share, np.minimum(users, np.broadcast_to(total, share.shape))


def quantile_cdf(events: np.ndarray, cross: np.ndarray, square: np.ndarray, p: float) -> np.ndarray:
    """Posterior ``P(Q_p <= upper edge of bin b)`` for every bin (last axis), non-decreasing, 1 at the last."""
    share, users = effective_users(events, cross, square)
    a, b = share * users, (1 - share) * users
    with np.errstate(invalid="ignore"):
        cdf = np.where(a <= 0, 0.0, np.where(b <= 0, 1.0, 1.0 - betainc(np.maximum(a, 1e-300),
                                                                          np.maximum(b, 1e-300), p)))
    return np.maximum.accumulate(np.nan_to_num(cdf, nan=0.0), axis=-1)


def quantile_draws(rng: np.random.Generator, keys: np.ndarray, cdf: np.ndarray, size: int) -> np.ndarray:
    """``size`` draws of the quantile whose posterior CDF at the upper edges of bins ``keys`` is ``cdf`` (one
    cell): inversion, log-linear inside a bin (linear in bin 0)."""
    lower, upper = bin_edges(keys)
    u = rng.uniform(size=size)
    index = np.minimum(np.searchsorted(cdf, u, side="left"), len(cdf) - 1)
    below = np.where(index > 0, cdf[np.maximum(index - 1, 0)], 0.0)
    step = cdf[index] - below
    t = np.clip(np.where(step > 0, (u - below) / np.where(step > 0, step, 1.0), 0.5), 0.0, 1.0)
    lo, hi = lower[index], upper[index]
    return np.where(lo > 0, lo * (hi / np.where(lo > 0, lo, 1.0)) ** t, lo + t * (hi - lo))


def observed_quantile(keys: np.ndarray, events: np.ndarray, p: float) -> float:
    """The quantile of the pooled values (inf{x: F(x) >= p}), located inside its bin; nan without values."""
    total = events.sum()
    if total <= 0:
        return math.nan
    share = np.cumsum(events) / total
    index = int(np.searchsorted(share, p - 1e-12, side="left"))
    lower, upper = bin_edges(keys[index:index + 1])
    below = share[index - 1] if index > 0 else 0.0
    t = (p - below) / (share[index] - below) if share[index] > below else 0.5
    lo, hi = float(lower[0]), float(upper[0])
    return lo * (hi / lo) ** t if lo > 0 else lo + t * (hi - lo)
