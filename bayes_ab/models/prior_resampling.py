"""Posterior draws under the effect prior from flat-prior draws, by importance resampling.

Closed forms (the simulations' accumulators, the quantile family's Bayesian bootstrap) give draws of each arm's
value under a flat prior. The models put ``Normal(0, effect_sd)`` -- or a learned prior -- on each treatment's
effect on the link scale; weighting each flat-prior draw by that prior density of its effects and resampling gives
draws of the posterior under the model's prior (the flat-prior posterior is the proposal). Array-first: the
callers link and difference their own draws.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from bayes_ab.models.hierarchy import PRIOR_EFFECT_DF, PRIOR_EFFECT_MEAN, PRIOR_EFFECT_SD

PROPOSALS_PER_DRAW = 4
"""Flat-prior draws per kept draw: the effect prior resamples them, so the kept draws stay nearly independent."""


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
