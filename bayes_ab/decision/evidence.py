"""What the decision rule reads of each metric: posterior probabilities of benefit, loss and harm.

The rule is a function of these numbers only, so it runs the same on a full analysis (draws of a fitted
model, :func:`evidence_from_fit`) and in simulations of thousands of experiments (draws of closed-form
posteriors, :func:`evidence_from_draws`): planning simulates the real rule, not an imitation of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bayes_ab.effects.compute import effective_draws, lift_probabilities, probability_mcse
from bayes_ab.posterior.result import Fit
from bayes_ab.spec import Metric


@dataclass(frozen=True, eq=False)
class MetricEvidence:
    """One metric's overall posterior evidence about one treatment arm against control.

    ``p_beat``, ``loss_ship_rel``, ``loss_keep_rel`` and ``p_rope`` are those of the effects table;
    ``p_beyond_margin`` is P(worse than control by more than the metric's ``margin``, relative),
    ``p_severe`` P(worse by more than the severe-harm margin); ``beyond_margin`` keeps the boolean draws
    so that guardrails can be judged jointly. ``ess`` holds the effective number of draws behind each
    probability (by field name; absent means exact), so :meth:`mcse` gives its Monte Carlo standard error.
    """

    metric: Metric
    p_beat: float
    loss_ship_rel: float
    loss_keep_rel: float
    p_rope: float
    p_beyond_margin: float
    p_severe: float
    beyond_margin: np.ndarray
    ess: Mapping[str, float] = field(default_factory=dict)

    def mcse(self, name: str) -> float:
        """Monte Carlo standard error of the probability field ``name`` (``p_beat``, ``p_severe``, ...)."""
        ess = self.ess.get(name)
        return 0.0 if ess is None else probability_mcse(getattr(self, name), ess)


def relative_worsening(metric: Metric, control: np.ndarray, arm: np.ndarray) -> np.ndarray:
    """Draws of how much worse the arm is than control, relative (negative when it is better; NaN where
    the control mean is not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(control > 0, arm / control - 1.0, np.nan)
    return rel if not metric.increase_is_good else -rel


def evidence_from_draws(metric: Metric, control: np.ndarray, arm: np.ndarray, severe_margin: float,
                        chains: int | None = None) -> MetricEvidence:
    """Evidence from paired posterior draws of the control's and the arm's overall mean.

    ``chains``: the draws are that many MCMC chains, chain after chain (their effective sample size is
    estimated); ``None`` means independent draws (closed-form posteriors), whose effective size is their number.
    """
    sign = 1.0 if metric.increase_is_good else -1.0
    worse = relative_worsening(metric, control, arm)
    rel = -sign * worse
    probabilities = lift_probabilities(arm - control, rel, sign, metric.rope, margin=metric.margin)
    beyond, severe = worse > metric.margin, worse > severe_margin
    flags = {"p_beat": sign * (arm - control) > 0, "p_rope": np.abs(rel) < metric.rope,
             "p_beyond_margin": beyond, "p_severe": severe}
    ess = {name: effective_draws(flag, chains) for name, flag in flags.items()}
    return MetricEvidence(metric, probabilities["p_beat_control"], probabilities["loss_ship_rel"],
                          probabilities["loss_keep_rel"], probabilities["p_rope"], probabilities["p_beyond_margin"],
                          float(np.mean(severe)), beyond, ess)


def evidence_from_fit(fit: Fit, arm: str, severe_margin: float) -> MetricEvidence:
    """Evidence from a fitted model: its overall (traffic-weighted) means of control and ``arm``."""
    overall = fit.overall_mean.transpose("chain", "draw", "arm")
    return evidence_from_draws(fit.metric, overall.isel(arm=0).values.ravel(), overall.sel(arm=arm).values.ravel(),
                               severe_margin, chains=overall.sizes["chain"])


def relative_lift_draws(fit: Fit, arm: str) -> np.ndarray:
    """Draws of the overall (traffic-weighted) relative lift of ``arm`` against control."""
    overall = fit.overall_mean
    return overall.sel(arm=arm).values.ravel() / overall.isel(arm=0).values.ravel() - 1.0


def harm_draws(fit: Fit, arm: str) -> np.ndarray:
    """Boolean draws: the arm is worse than control by more than the metric's margin."""
    overall = fit.overall_mean
    return relative_worsening(fit.metric, overall.isel(arm=0).values.ravel(),
                              overall.sel(arm=arm).values.ravel()) > fit.metric.margin


def joint_within_margin(guardrails: list[MetricEvidence]) -> float:
    """P(every guardrail within its margin at once).

    Guardrails are fitted separately, so their draws are independent; pairing them index by index
    gives draws of the joint posterior under that independence.
    """
    if not guardrails:
        return 1.0
    size = min(g.beyond_margin.size for g in guardrails)
    return float(np.mean(~np.any(np.vstack([g.beyond_margin[:size] for g in guardrails]), axis=0)))
