"""Prior-data conflict: a new experiment's data far in the tail of the prior learned from past ones.

Why: a learned prior is the organisation's history of effect sizes. When it is narrow (most past changes moved
the metric by well under 1%) and a new change moves it a lot, the posterior is the prior's word against the
data's: a treatment that halves conversion can read "+0.9%, >99% probability it increases" if the prior is
trusted blindly. Every analysis with a learned prior therefore asks how surprising the data-only estimate is
under the prior (:func:`~bayes_ab.learned_prior.predictive_tail`); below
:data:`~bayes_ab.learned_prior.CONFLICT_P` the metric carries a warning, the data-only answer is shown beside the
posterior, and the decision rule does not act on that metric's posterior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_ab.intervals import credible_interval
from bayes_ab.learned_prior import CONFLICT_P, predictive_tail
from bayes_ab.posterior.result import Fit
from bayes_ab.sampling import Backend


@dataclass(frozen=True)
class PriorConflict:
    """One treatment arm's data-only estimate against the learned prior."""

    arm: str
    data_lift: float
    """Relative lift with the data alone (median of the data-only posterior)."""
    data_low: float
    data_high: float
    """The data-only interval of the relative lift (the analysis' interval probability)."""
    p_value: float
    """Share of the prior's predicted estimates at least as far from its location (small: conflict)."""

    @property
    def conflicts(self) -> bool:
        """Whether the data sit in the outer :data:`CONFLICT_P` of what the prior predicts."""
        return self.p_value < CONFLICT_P


def prior_conflicts(model: Fit, data_only: Fit | None, interval: float) -> tuple[PriorConflict, ...]:
    """The check for every treatment arm of ``model`` (none when its metric has no learned prior), against
    ``data_only``: the same statistics' closed-form posterior under a flat prior, no pooling, no learned prior (the
    one :func:`~bayes_ab.effects.compute.compute_effects` draws for every metric; ``None`` when ``model`` is that
    closed form already)."""
    prior = model.metric.prior.learned
    if prior is None or model.backend == Backend.CONJUGATE or data_only is None:
        return ()
    overall = data_only.overall_mean
    control = overall.isel(arm=0).values.ravel()
    found = []
    for arm in overall["arm"].values[1:]:
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = overall.sel(arm=arm).values.ravel() / control - 1.0
        lift = lift[np.isfinite(lift)]
        if lift.size < 100:
            continue
        low, high = credible_interval(lift, interval)
        found.append(PriorConflict(str(arm), float(np.median(lift)), float(low), float(high),
                                   predictive_tail(prior, float(np.median(lift)), float(np.std(lift)))))
    return tuple(found)
