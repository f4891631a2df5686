"""Guardrails: probability of harm beyond the non-inferiority margin, per metric and jointly."""

from __future__ import annotations

import numpy as np

from bayes_ab.models.result import Fit


def relative_lift_draws(fit: Fit, arm: str) -> np.ndarray:
    """Draws of the overall (traffic-weighted) relative lift of ``arm`` against control."""
    overall = fit.overall_mean
    control = overall.isel(arm=0).values.ravel()
    return overall.sel(arm=arm).values.ravel() / control - 1.0


def harm_draws(fit: Fit, arm: str) -> np.ndarray:
    """Boolean draws: the arm is worse than control by more than the metric's margin."""
    lift = relative_lift_draws(fit, arm)
    margin = fit.metric.margin
    return lift > margin if not fit.metric.increase_is_good else lift < -margin


def joint_within_margin(fits: list[Fit], arm: str) -> float:
    """P(every guardrail within its margin at once), from the draws of all guardrails together.

    Guardrails are fitted separately, so their draws are independent; pairing them index by index
    gives draws of the joint posterior under that independence.
    """
    if not fits:
        return 1.0
    harms = [harm_draws(f, arm) for f in fits]
    size = min(h.size for h in harms)
    return float(np.mean(~np.any(np.vstack([h[:size] for h in harms]), axis=0)))
