"""Posterior draws under the effect prior from flat-prior draws, by importance resampling.

Closed forms (the simulations' accumulators, the quantile family's Bayesian bootstrap) give draws of each arm's
value under a flat prior. The models put ``Normal(0, effect_sd)`` -- or a learned prior -- on each treatment's
effect on the link scale; weighting each flat-prior draw by that prior density of its effects and resampling gives
draws of the posterior under the model's prior (the flat-prior posterior is the proposal). Array-first: the
callers link and difference their own draws.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from bayes_ab.models.diagnostics import MIN_ESS
from bayes_ab.models.hierarchy import PRIOR_EFFECT_DF, PRIOR_EFFECT_MEAN, PRIOR_EFFECT_SD

PROPOSALS_PER_DRAW = 4
"""Flat-prior draws per kept draw: the effect prior resamples them, so the kept draws stay nearly independent."""
MAX_PROPOSALS_PER_DRAW = 1024
"""The most flat-prior draws per kept draw :func:`resampled_enough` makes before it settles for too few."""


def effective_size(weight: np.ndarray) -> float:
    """The effective sample size of weighted draws or users (Kish: ``(sum w)^2 / sum w^2``): the number of
    unweighted ones that would carry as much information."""
    return float(weight.sum() ** 2 / (weight ** 2).sum())


def resampled_information(kept: int, found: float) -> float:
    """Effective size of ``kept`` draws resampled from proposals whose weights' effective size is ``found``: the
    information of both steps, combined harmonically."""
    return 1 / (1 / kept + 1 / found)


def prior_log_weights(effects: np.ndarray, prior: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log prior density (up to a constant) of each draw's treatment effects, ``effects`` shaped (draws,
    treatments); ``-inf`` where an effect is not finite."""
    z = (effects - float(prior.get(PRIOR_EFFECT_MEAN, 0.0))) / float(prior[PRIOR_EFFECT_SD])
    df = float(prior[PRIOR_EFFECT_DF]) if PRIOR_EFFECT_DF in prior else None
    log_weight = np.nansum(-0.5 * z ** 2 if df is None else -0.5 * (df + 1) * np.log1p(z ** 2 / df), axis=1)
    return np.where(np.isfinite(log_weight), log_weight, -np.inf)


def resampled(draws: np.ndarray, effects: np.ndarray, prior: Mapping[str, np.ndarray], rng: np.random.Generator,
              size: int | None = None) -> tuple[np.ndarray, float]:
    """``size`` rows of ``draws`` (default: as many as there are) resampled by the prior weight of ``effects``, and
    the weights' effective sample size (Kish: ``(sum w)^2 / sum w^2``), which bounds the information the
    resampled draws hold. Without a finite weight the draws are returned as they are."""
    log_weight = prior_log_weights(effects, prior)
    if not np.isfinite(log_weight).any():
        return draws, float(len(draws))
    weight = np.exp(log_weight - log_weight.max())
    ess = effective_size(weight)
    chosen = rng.choice(len(draws), size=len(draws) if size is None else size, p=weight / weight.sum())
    return draws[chosen], ess


def resampled_enough(propose: Callable[[int], tuple[np.ndarray, np.ndarray]], prior: Mapping[str, np.ndarray],
                     rng: np.random.Generator, kept: int, required: float = MIN_ESS) -> tuple[np.ndarray, float]:
    """``kept`` draws resampled by the prior from as many proposals as the fit's effective size needs.

    ``propose(size)`` returns ``size`` flat-prior draws and their effects. Where the flat-prior posterior is much
    wider than the prior -- little data, a sceptical guardrail prior -- few proposals carry weight, and
    :data:`PROPOSALS_PER_DRAW` of them per kept draw left a switchback's first hours with an effective size of 95
    (a failed fit, though the posterior is simply the prior's). The proposals are drawn afresh, 4 times as many
    each round, until the combined effective size (:func:`resampled_information`) reaches ``required``, or up to
    :data:`MAX_PROPOSALS_PER_DRAW` per kept draw. The first round is the one the fit always made, so a fit that
    had enough gives the same draws.

    Returns
    -------
    The resampled draws and their effective size.
    """
    per_draw = PROPOSALS_PER_DRAW
    while True:
        draws, effects = propose(kept * per_draw)
        chosen, found = resampled(draws, effects, prior, rng, kept)
        information = resampled_information(kept, found)
        if information >= required or per_draw * 4 > MAX_PROPOSALS_PER_DRAW:
            return chosen, information
        per_draw *= 4
