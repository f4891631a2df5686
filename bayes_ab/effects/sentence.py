"""One plain sentence per metric and arm that a product review can read."""

from __future__ import annotations

from bayes_ab.effects import format as fmt
from bayes_ab.effects.compute import MetricEffects
from bayes_ab.families import family_for


def sentence(effects: MetricEffects, arm: str) -> str:
    """E.g. "There is a 96% probability that push increases trade conversion; most likely +4.1%
    (90% interval +0.6% to +7.7%); expected loss if shipped: 0.02 percentage points."
    """
    metric = effects.metric
    row = effects.overall(arm)
    verb = "increases" if metric.increase_is_good else "decreases"
    loss = family_for(metric).format_absolute(row.loss_ship_abs)
    text = (
        f"There is a {fmt.probability(row.p_beat_control)} probability that {arm} {verb} "
        f"{metric.name.replace('_', ' ')}; most likely {fmt.relative(row.rel_lift)} "
        f"({effects.interval:.0%} interval {fmt.relative(row.rel_low)} to {fmt.relative(row.rel_high)}); "
        f"expected loss if shipped: {loss}."
    )
    for warning in effects.warnings:
        text += f" Caution: {warning}."
    if not effects.diagnostics.passed:
        text = "UNRELIABLE (MCMC diagnostics failed: " + "; ".join(effects.diagnostics.problems) + ") " + text
    return text
