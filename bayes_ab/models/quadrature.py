"""Exact posterior draws of a one-segment model by numerical integration: no sampler, no Monte Carlo chains.

Why: the numbers a decision turns on (P(beat control), P(best), expected loss) are averages over posterior
draws. At the default 4 x 1000 NUTS draws their Monte Carlo error is about 0.005 near a threshold, so a
look can flip between "ship" and "hold" with the seed. A one-segment model is small enough to integrate on
grids in a fraction of a second, and then as many *independent* draws as wanted are cheap (100,000 by
default: Monte Carlo error at most 0.0016 on a probability), with nothing to compile and no chain to diagnose.

The model integrated is the hierarchy's one-segment collapse (:mod:`bayes_ab.models.hierarchy`) for a family
whose arms have one parameter each on the link scale::

    b   ~ Normal(0, baseline_sd)                  the control's linear predictor
    a_k = b + d_k,  d_k ~ Normal(effect_mean, effect_sd)    treatment k's
    y_0 ~ L_0(b),   y_k ~ L_k(a_k)                each likelihood log-concave in its linear predictor

Given ``b`` the treatments are independent, so the posterior factorises as
``p(b | y) * prod_k p(a_k | b, y)`` with

    p(a_k | b, y) ∝ Normal(a_k; b, effect_sd) L_k(a_k)
    p(b | y)      ∝ Normal(b; 0, baseline_sd) L_0(b) prod_k ∫ Normal(a; b, effect_sd) L_k(a) da.

Every density here is log-concave (a marginal of a log-concave density is log-concave, Prékopa), so each has
one mode and falls monotonically on both sides of it. Grids therefore run between the two points where the
log density is :data:`DROP` nats below its peak (found by bisection, never guessed from a normal
approximation, which misses the long tail of a rate with no conversions), and the 1-D integrals are
trapezoid sums on them. Draws pick a grid cell of ``b`` by its mass, then a cell of each ``a_k`` from the
conditional at that ``b``, each jittered uniformly within its cell.

A fat-tailed (Student-t) effect prior is not log-concave: against data far from its centre the posterior of
an effect has two modes (one the prior's, one the data's), which NUTS does not move between. The t is a scale
mixture of normals, ``t_df(m, s) = ∫ Normal(m, s sqrt(lam)) InverseGamma(lam; df/2, df/2) dlam``, so the
integration runs over a grid of ``lam`` with every conditional above Normal given
``lam``: ``p(a_k | b)`` becomes a mixture whose weights are each component's integral, and a draw picks its
component by them (:func:`~bayes_ab.learned_prior.scale_mixture` gives the grid). Both modes are then in the
draws, in proportion.

:func:`exact_draws` returns ``None`` when a grid cannot resolve its density (a peak narrower than the grid
spacing, a mode beyond the search range): the caller then samples with MCMC instead of trusting a bad grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from bayes_ab.learned_prior import ScaleMixture

DROP = 36.0
"""Grids end where the density is ``exp(-36)`` (2e-16) of its peak: the mass cut off is below 1e-13."""

GRID = 601
"""Points per grid: the peak of a normal-shaped density spans ~600 of them (spacing 0.03 sd)."""

MAX_CELL_MASS = 0.02
"""A grid whose heaviest cell holds more than this share of the mass is too coarse: no answer."""

_LADDER = 1e-6 * 2.0 ** np.arange(32)
"""Offsets from a centre at which a mode or a level crossing is bracketed (1e-6 .. 2,147 on the link scale:
a conditional mode lies between its prior centre and the likelihood's maximum, which can be that far apart
at the far end of a baseline search)."""

_BISECTIONS = 80


@dataclass(frozen=True)
class ArmLikelihood:
    """Log-likelihood of one arm's data as a concave function of its linear predictor, with its derivative.

    Both take arrays of any shape and work elementwise.
    """

    log_likelihood: Callable[[np.ndarray], np.ndarray]
    gradient: Callable[[np.ndarray], np.ndarray]


def binomial_logit(successes: float, trials: float) -> ArmLikelihood:
    """``successes`` of ``trials`` with ``logit p`` as the linear predictor (log-concave in it)."""
    y, n = float(successes), float(trials)

    def log_likelihood(x: np.ndarray) -> np.ndarray:
        return -y * np.logaddexp(0.0, -x) - (n - y) * np.logaddexp(0.0, x)

    def gradient(x: np.ndarray) -> np.ndarray:
        return y - n / (1.0 + np.exp(-x))

    return ArmLikelihood(log_likelihood, gradient)


@dataclass(frozen=True)
class IntegrableModel:
    """A family's one-segment model in the form :func:`exact_draws` integrates (see the module docstring).

    ``likelihoods``: one per arm, control first, on the link scale; ``inverse_link`` maps a linear predictor
    to the metric's mean (the model's ``mean``).
    """

    likelihoods: tuple[ArmLikelihood, ...]
    baseline_sd: float
    inverse_link: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Conditional:
    """Grids of ``p(a | b)`` for one treatment at every ``b`` of the baseline grid."""

    log_integral: np.ndarray      # (rows,) log ∫ Normal(a; b, sd) L(a) da
    low: np.ndarray               # (rows,) where each row's grid starts
    high: np.ndarray              # (rows,) and ends
    mass: np.ndarray              # (rows, GRID) each cell's share of its row


def exact_draws(control: ArmLikelihood, treatments: Sequence[ArmLikelihood], baseline_sd: float,
                effect_sd: float, draws: int, rng: np.random.Generator,
                effect_mean: float = 0.0, mixture: ScaleMixture | None = None) -> np.ndarray | None:
    """Independent posterior draws of every arm's linear predictor, shape ``(draws, 1 + len(treatments))``.

    Parameters
    ----------
    control, treatments
        Each arm's likelihood on the link scale; column 0 of the result is the control's ``b``.
    baseline_sd, effect_sd
        Prior scales of ``b`` and of each treatment's effect ``a_k - b``.
    effect_mean
        Prior mean of each treatment's effect (a learned prior's location; 0 by default).
    mixture
        The effect prior as a scale mixture of normals (a Student-t: ``scale_mixture``), each
        treatment's effect with its own mixing variable; ``None``: Normal(effect_mean, effect_sd).
    draws
        How many independent draws.
    rng
        Source of randomness (seeded by the caller).

    Returns
    -------
    The draws, or ``None`` when a grid could not resolve its density (the caller falls back to MCMC).
    """
    scales = np.array([effect_sd]) if mixture is None else effect_sd * np.sqrt(mixture.multipliers)
    log_weights = np.zeros(1) if mixture is None else mixture.log_weights

    def log_marginal(b: np.ndarray) -> np.ndarray:
        total = -0.5 * (b / baseline_sd) ** 2 + control.log_likelihood(b)
        for arm in treatments:
            total = total + _mixed_log_integral(arm, b + effect_mean, scales, log_weights)
        return total

    with np.errstate(all="ignore"):
        centre = _mode(control, np.zeros(1), baseline_sd)
        if not np.isfinite(centre).all():
            return None
        grid = _grid(log_marginal, centre[0])
        if grid is None:
            return None
        b_grid, log_density = grid
        mass = _cell_mass(log_density[None, :])[0]
        if not (np.isfinite(mass).all() and mass.max() <= MAX_CELL_MASS):
            return None
        step = b_grid[1] - b_grid[0]
        rows = rng.choice(GRID, size=draws, p=mass)
        b = b_grid[rows] + step * (rng.random(draws) - 0.5)
        columns = [b]
        for arm in treatments:
            components = [_conditional(arm, b_grid + effect_mean, sd) for sd in scales]
            if not all(_resolved(c, mass) for c in components):
                return None
            columns.append(_draw_mixed(components, log_weights, b_grid, rows, b, rng))
    out = np.column_stack(columns)
    return out if np.isfinite(out).all() else None


def _mixed_log_integral(arm: ArmLikelihood, centres: np.ndarray, scales: np.ndarray,
                        log_weights: np.ndarray) -> np.ndarray:
    """``log sum_j w_j ∫ Normal(a; centre, scale_j) L(a) da`` per centre: every component in one vectorised
    pass (rows ``centre x component``)."""
    if scales.size == 1:
        return _conditional(arm, centres, float(scales[0])).log_integral
    repeated = np.repeat(centres, scales.size)
    sds = np.tile(scales, centres.size)
    log_integral = _conditional(arm, repeated, sds).log_integral.reshape(centres.size, scales.size)
    return np.logaddexp.reduce(log_integral + log_weights, axis=1)


def _draw_mixed(components: list[_Conditional], log_weights: np.ndarray, b_grid: np.ndarray, rows: np.ndarray,
                b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One ``a`` per draw from the mixture over components at the draw's baseline row: a component by its
    weight times its integral there, then ``a`` from that component's grid."""
    if len(components) == 1:
        return _draw_conditional(components[0], b_grid, rows, b, rng)
    log_p = np.column_stack([c.log_integral for c in components]) + log_weights      # (GRID, components)
    p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
    cumulative = np.cumsum(p[rows], axis=1)
    chosen = (cumulative < rng.random(rows.size)[:, None] * cumulative[:, -1:]).sum(axis=1)
    out = np.empty(rows.size)
    for j in np.unique(chosen):
        these = chosen == j
        out[these] = _draw_conditional(components[j], b_grid, rows[these], b[these], rng)
    return out


def _conditional(arm: ArmLikelihood, b: np.ndarray, sd: float | np.ndarray) -> _Conditional:
    """``p(a | b)`` on a grid per value of ``b`` (the prior centre of ``a``: the baseline plus the prior mean
    of the effect): Normal(a; b, sd) times the arm's likelihood (``sd`` one for all rows or one per row)."""
    sd = np.broadcast_to(np.asarray(sd, dtype=float), b.shape)

    def log_density(a: np.ndarray) -> np.ndarray:
        expand = (1,) * (a.ndim - b.ndim)
        centre, scale = b.reshape(b.shape + expand), sd.reshape(sd.shape + expand)
        return -0.5 * ((a - centre) / scale) ** 2 + arm.log_likelihood(a)

    mode = _mode(arm, b, sd)
    top = log_density(mode)
    low = _crossing(log_density, mode, top - DROP, -1.0)
    high = _crossing(log_density, mode, top - DROP, +1.0)
    t = np.linspace(0.0, 1.0, GRID)
    values = log_density(low[:, None] + (high - low)[:, None] * t) - top[:, None]
    weights = np.exp(values)
    weights[:, [0, -1]] *= 0.5
    total = weights.sum(axis=1)
    width = (high - low) / (GRID - 1)
    log_integral = top + np.log(total * width) - np.log(sd * np.sqrt(2.0 * np.pi))
    return _Conditional(log_integral, low, high, weights / total[:, None])


def _mode(arm: ArmLikelihood, centre: np.ndarray, sd: float | np.ndarray) -> np.ndarray:
    """Mode of ``Normal(a; centre, sd) L(a)`` per centre: the root of its decreasing derivative (NaN where
    the ladder does not bracket it)."""
    sd = np.broadcast_to(np.asarray(sd, dtype=float), centre.shape)

    def slope(a: np.ndarray) -> np.ndarray:
        expand = (1,) * (a.ndim - centre.ndim)
        c, scale = centre.reshape(centre.shape + expand), sd.reshape(sd.shape + expand)
        return -(a - c) / scale ** 2 + arm.gradient(a)

    ladder = np.concatenate([-_LADDER[::-1], [0.0], _LADDER])
    points = centre[:, None] + ladder
    negative = slope(points) < 0
    bracketed = negative[:, -1] & ~negative[:, 0]
    above = np.maximum(np.argmax(negative, axis=1), 1)
    rows = np.arange(centre.size)
    low, high = points[rows, above - 1], points[rows, above]
    for _ in range(_BISECTIONS):
        middle = 0.5 * (low + high)
        down = slope(middle) < 0
        high, low = np.where(down, middle, high), np.where(down, low, middle)
    return np.where(bracketed, 0.5 * (low + high), np.nan)


def _crossing(log_density: Callable[[np.ndarray], np.ndarray], start: np.ndarray, level: np.ndarray,
              direction: float) -> np.ndarray:
    """Per row, the point beyond ``start`` (a mode) in ``direction`` where the log density falls to ``level``.

    Rows whose density never falls that far within the ladder get NaN (the grid is then refused).
    """
    points = start[:, None] + direction * _LADDER
    below = log_density(points) < level[:, None]
    found = below.any(axis=1)
    first = np.argmax(below, axis=1)
    rows = np.arange(start.size)
    outside = points[rows, first]
    inside = np.where(first > 0, points[rows, np.maximum(first - 1, 0)], start)
    for _ in range(_BISECTIONS):
        middle = 0.5 * (inside + outside)
        low = log_density(middle[:, None])[:, 0] < level
        outside, inside = np.where(low, middle, outside), np.where(low, inside, middle)
    return np.where(found, outside, np.nan)


def _grid(log_density: Callable[[np.ndarray], np.ndarray], centre: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Grid of a 1-D log-concave density between its two ``DROP`` crossings, and its values there.

    The peak is first located on the ladder around ``centre``, then re-located on a first grid: when the
    ladder stepped over a narrow peak, the crossings are searched again from the true top.
    """
    points = centre + np.concatenate([-_LADDER[::-1], [0.0], _LADDER])
    values = log_density(points)
    if not np.isfinite(values).any():
        return None
    peak = int(np.nanargmax(values))
    low, high = points[peak], points[peak]
    top = values[peak]
    for _ in range(2):
        one = lambda x: log_density(x.ravel()).reshape(x.shape)   # noqa: E731 (rows of one)
        low = _crossing(one, np.array([points[peak]]), np.array([top - DROP]), -1.0)[0]
        high = _crossing(one, np.array([points[peak]]), np.array([top - DROP]), +1.0)[0]
        if not (np.isfinite(low) and np.isfinite(high) and high > low):
            return None
        grid = np.linspace(low, high, GRID)
        values = log_density(grid)
        if not np.isfinite(values).all():
            return None
        if values.max() <= top + 1.0:
            return grid, values
        peak_at = grid[int(np.argmax(values))]
        points, peak, top = np.array([peak_at]), 0, values.max()
    return None


def _cell_mass(log_density: np.ndarray) -> np.ndarray:
    """Each grid cell's share of its row (trapezoid weights: the two end points count half)."""
    weights = np.exp(log_density - log_density.max(axis=1, keepdims=True))
    weights[:, [0, -1]] *= 0.5
    return weights / weights.sum(axis=1, keepdims=True)


def _resolved(conditional: _Conditional, row_mass: np.ndarray) -> bool:
    """Every row that carries mass has a finite grid fine enough for its density."""
    used = row_mass > 1e-12
    mass = conditional.mass[used]
    return bool(np.isfinite(mass).all() and mass.max() <= MAX_CELL_MASS)


def _draw_conditional(conditional: _Conditional, b_grid: np.ndarray, rows: np.ndarray, b: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
    """One ``a`` per draw: a cell of its row's grid by mass, jittered within the cell, mapped onto the grid
    interpolated at the draw's own ``b`` (rows move smoothly with ``b``)."""
    cumulative = np.cumsum(conditional.mass, axis=1)
    cumulative /= cumulative[:, -1:]
    # rows laid end to end: row r occupies (r, r + 1], so one search finds every draw's cell in its own row
    stacked = (np.arange(GRID)[:, None] + cumulative).ravel()
    cell = np.searchsorted(stacked, rows + rng.random(rows.size)) - rows * GRID
    cell = np.clip(cell, 0, GRID - 1)
    t = (cell + rng.random(rows.size) - 0.5) / (GRID - 1)
    low = np.interp(b, b_grid, conditional.low)
    high = np.interp(b, b_grid, conditional.high)
    return low + (high - low) * t
