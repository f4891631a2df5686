"""The console summary of an analysis: per metric its diagnostics, effects table and sentences."""

from __future__ import annotations

import pandas as pd

from bayes_ab.analysis import Analysis
from bayes_ab.effects import MetricEffects, sentence
from bayes_ab import format as fmt
from bayes_ab.intervals import interval_name
from bayes_ab.data.stats import exposed_users
from bayes_ab.families import family_for
from bayes_ab.sampling import EXACT, Backend, MassMatrix


def render_text(result: Analysis) -> str:
    """The console summary: per metric its diagnostics, effects table and sentences."""
    spec = result.spec
    first = next(iter(result.stats.values()))
    units, users = int(first["n"].sum()), exposed_users(first)
    counted = f"{units:,} {spec.units_counted}" + (f" of {users:,} users" if units != users else "")
    lines = [f"Experiment {spec.name}: arms {', '.join(spec.arm_names)} (control {spec.control.name}); "
             f"{first.sizes['segment']} segment(s); {counted}; data fingerprint {result.fingerprint}"]
    for effects in result.effects.values():
        lines += ["", _metric_header(effects), "  model: " + effects.model_note,
                  *("  " + line for line in effects.unadjusted_lines()),
                  *(f"  WARNING: {w}" for w in effects.warnings),
                  "  diagnostics: " + effects.diagnostics.summary(), _table(effects, spec.unit_name)]
        lines += ["  " + line for line in
                  family_for(effects.metric).text_lines(result.fits[effects.metric.name], effects.interval)]
        lines += ["  " + sentence(effects, arm) for arm in effects.treatments]
        if effects.compliance is not None:
            lines += ["  " + effects.compliance.assumptions,
                      *(f"  WARNING (complier effect): {w}" for w in effects.compliance.warnings)]
    if result.targeting is not None:
        lines += ["", *result.targeting.lines()]
    if result.targeting_note:
        lines += ["", result.targeting_note]
    return "\n".join(lines)


def _metric_header(effects: MetricEffects) -> str:
    m = effects.metric
    return (f"Metric {m.name} ({family_for(m).kind_of(m)}, {m.role}, {m.direction} is good, ROPE +/-{m.rope:.1%}) "
            f"- posterior by {_sampler_text(effects)}")


def _sampler_text(effects: MetricEffects) -> str:
    s = effects.sampler
    if effects.backend == Backend.CONJUGATE:
        return "conjugate closed form (exact, unpooled)"
    if effects.backend == EXACT:
        return f"{family_for(effects.metric).exact_method} (exact), {s.chains * s.draws:,} independent draws"
    mass = ", low-rank mass matrix" if s.mass_matrix == MassMatrix.LOW_RANK else ""
    return f"{effects.backend}, {s.chains} chains x {s.draws} draws, target_accept {s.target_accept}{mass}"


def _table(effects: MetricEffects, unit_name: str) -> str:
    family = family_for(effects.metric)
    rows = []
    for r in effects.shown_rows:
        lift = "" if r.is_control else f"{fmt.relative(r.rel_lift)} [{fmt.relative(r.rel_low)}, {fmt.relative(r.rel_high)}]"
        rows.append({
            "segment": r.segment, "arm": r.arm, unit_name: f"{r.users:,}",
            "observed": f"{r.observed_mean:.4g}", "posterior": f"{r.mean:.4g}",
            f"rel. lift [{effects.interval:.0%} {interval_name(effects.interval)}]": lift,
            "P(beat ctrl)": "" if r.is_control else fmt.probability(r.p_beat_control),
            "+/- MC SE": "" if r.is_control else f"{r.p_beat_control_mcse:.1%}",
            "P(best)": fmt.probability(r.p_best),
            f"loss if shipped ({family.unit_of(effects.metric)})": "" if r.is_control else family.format_number(r.loss_ship_abs),
            "P(in ROPE)": "" if r.is_control else fmt.probability(r.p_rope),
        })
    return "\n".join("  " + line for line in pd.DataFrame(rows).to_string(index=False).splitlines())
