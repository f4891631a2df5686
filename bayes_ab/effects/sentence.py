"""One plain sentence per metric and arm that a product review can read."""

from __future__ import annotations

from bayes_ab import format as fmt
from bayes_ab.effects.compute import MetricEffects
from bayes_ab.families import family_for
from bayes_ab.metric import Role


def novelty_sentence(found, interval: float) -> str:
    """E.g. "The lift was +7.9% in the first week and is settling at +1.2% (90% interval -0.4% to +3.0%); 98%
    probability the early lift overstates the long-run effect; the numbers above are the long-run lift."
    """
    first = found.weeks[0]
    text = (f"The lift was {fmt.relative(first.rel_lift)} in the first week and is settling at "
            f"{fmt.relative(found.long_run)} ({interval:.0%} interval {fmt.relative(found.long_run_low)} to "
            f"{fmt.relative(found.long_run_high)}); ")
    if found.p_novelty >= found.p_primacy:
        text += f"{fmt.probability(found.p_novelty)} probability the early lift overstates the long-run effect"
    else:
        text += f"{fmt.probability(found.p_primacy)} probability the early lift understates the long-run effect"
    if found.used:
        return text + "; the numbers above are the long-run lift."
    return text + "; the numbers above are the whole test's lift (novelty: auto, neither novelty nor primacy is likely)."


def sentence(effects: MetricEffects, arm: str) -> str:
    """E.g. "There is a 96% probability that push increases trade conversion; most likely +4.1%
    (90% interval +0.6% to +7.7%); expected loss if shipped: 0.02 percentage points." For a guardrail, the
    probability that it stays within its margin (and that it is worse by more), which is what the rule reads.
    """
    metric = effects.metric
    row = effects.overall(arm)
    verb = "increases" if metric.increase_is_good else "decreases"
    loss = family_for(metric).format_absolute(row.loss_ship_abs, metric=metric)
    name = metric.name.replace("_", " ")
    if metric.role == Role.GUARDRAIL:        # a guardrail is judged by its margin, not by any worsening
        opening = (f"There is a {fmt.probability(1 - row.p_beyond_margin)} probability that {arm} keeps {name} "
                   f"within its {fmt.threshold(metric.margin)} margin ({fmt.probability(row.p_beyond_margin)} that "
                   f"it is worse by more)")
    else:
        opening = f"There is a {fmt.probability(row.p_beat_control)} probability that {arm} {verb} {name}"
    text = (
        f"{opening}; most likely {fmt.relative(row.rel_lift)} "
        f"({effects.interval:.0%} interval {fmt.relative(row.rel_low)} to {fmt.relative(row.rel_high)}); "
        f"expected loss if shipped: {loss}."
    )
    alone = next((d for d in effects.data_only if d.arm == arm and d.shown), None)
    if alone is not None and effects.conflict(arm) is None:       # a conflict says the same, louder
        text = text[:-1] + (f"; the data alone say {fmt.relative(alone.rel_lift)} ({effects.interval:.0%} interval "
                            f"{fmt.relative(alone.rel_low)} to {fmt.relative(alone.rel_high)}, flat prior): the "
                            f"difference is the effect prior's.")
    found = effects.novelty.arm(arm) if effects.novelty is not None else None
    if found is not None and found.weeks:
        text += " " + novelty_sentence(found, effects.interval)
    conflict = effects.conflict(arm)
    if conflict is not None:      # the data's answer leads: the posterior is the prior's word against it
        text = (f"PRIOR-DATA CONFLICT: the data alone say {fmt.relative(conflict.data_lift)} "
                f"({effects.interval:.0%} interval {fmt.relative(conflict.data_low)} to "
                f"{fmt.relative(conflict.data_high)}), far from what the learned prior expects; with that prior: "
                + text[0].lower() + text[1:])
    for warning in effects.warnings:
        text += f" Caution: {warning}."
    if not effects.diagnostics.passed:
        text = "UNRELIABLE (MCMC diagnostics failed: " + "; ".join(effects.diagnostics.problems) + ") " + text
        if effects.unpooled is not None:
            flat = effects.unpooled.overall(arm)
            text += (f" Unpooled closed form instead (each segment on its own, flat prior; no decision acts on "
                     f"it): most likely {fmt.relative(flat.rel_lift)} ({effects.interval:.0%} interval "
                     f"{fmt.relative(flat.rel_low)} to {fmt.relative(flat.rel_high)}), "
                     f"{fmt.probability(flat.p_beat_control)} probability that {arm} {verb} {name}.")
    complier = effects.compliance.sentence(arm) if effects.compliance is not None else None
    return text if complier is None else f"{text} {complier}"
