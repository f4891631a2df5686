"""The report's contents, section by section, as plain values for the template (no HTML here).

Every string that comes from data (arm, segment, metric and experiment names) stays a plain string:
the template escapes it. Figures are inline SVG markup from :mod:`bayes_ab.figures`.
"""

from __future__ import annotations

import base64
import platform
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd

from bayes_ab import DISTRIBUTION
from bayes_ab.analysis import Analysis
from bayes_ab.checkins.history import History, loss_if_shipped
from bayes_ab.decision import Recommendation
from bayes_ab.decision.evidence import harm_draws, relative_lift_draws
from bayes_ab.decision.srm import srm_checks
from bayes_ab import format as fmt
from bayes_ab.effects import sentence
from bayes_ab.intervals import IntervalKind, credible_interval, kind_of
from bayes_ab.metric import Role
from bayes_ab.posterior import Fit, fit
from bayes_ab.report.over_time import exposure_over_time, lift_over_time
from bayes_ab.families import family_for
from bayes_ab import figures
from bayes_ab.sampling import EXACT, Backend
from bayes_ab.spec import SamplerSettings
from bayes_ab.stopping import OperatingCharacteristics, RuleComparison

FLAT_PRIOR = SamplerSettings(draws=2000, chains=2, backend=Backend.CONJUGATE, seed=20)


@dataclass(frozen=True)
class MetricSection:
    """Section 3 (and 4, 8, 9) for one metric."""

    name: str
    family: str
    role: str
    direction: str
    rope: float
    margin: float | None
    model_note: str
    warnings: tuple[str, ...]
    backend: str
    diagnostics: Any
    sentences: tuple[str, ...]
    effects: Any
    unit: str
    unit_scale: float
    lift_plot: str
    forest_plot: str
    shrinkage: tuple[dict, ...]
    family_plot: str | None
    family_note: str
    prior_plot: str | None
    prior_note: str
    sensitivity: tuple[dict, ...]
    novelty_plot: str | None = None
    novelty: tuple = ()             # ArmNovelty per treatment arm
    novelty_note: str = ""
    csv: str = ""                   # the effects table, every row and column, as a CSV data URI to download
    compliance: Any = None          # ComplianceEffects: the effect on users who received the treatment


@dataclass(frozen=True)
class ReportContent:
    """Everything the template shows, in reading order."""

    experiment: str
    about: dict                     # the spec's description, hypothesis and owner
    arms: tuple[str, ...]
    control: str
    headline: str
    action: str | None
    sentences: tuple[tuple[str, str], ...]
    period: str
    traffic: tuple[dict, ...]
    users: int
    segments: int
    units: str          # what the traffic counts: users, or the clusters of a cluster-randomised experiment
    fingerprint: str
    versions: str
    generated: str
    srm: tuple[Any, ...]
    diagnostics: tuple[dict, ...]
    blocking: tuple[str, ...]
    exposure_plot: str | None
    exposure_note: str
    metrics: tuple[MetricSection, ...]
    guardrails: tuple[dict, ...]
    guardrail_plot: str | None
    harm_threshold: float
    trace: tuple[Any, ...]
    trajectory_plot: str | None
    trajectory_rows: tuple[dict, ...]
    lift_over_time: tuple[dict, ...]        # {"metric", "svg"} per primary and guardrail: inline SVG
    exposure_over_time: str | None
    error_rates: tuple[dict, ...]
    interval: float
    notes: tuple[str, ...] = field(default=())
    has_plan: bool = False
    card: tuple[dict, ...] = ()
    card_arm: str | None = None
    what_would_change: str = ""
    decision_plot: str | None = None
    best_plot: str | None = None
    glossary: tuple[dict, ...] = ()         # per metric: what its number is, in words and columns
    targeting: tuple[dict, ...] = ()        # per targeted metric: the policy table, its sentence and the Qini area
    targeting_about: str = ""
    terms: tuple[tuple[str, str], ...] = ()  # the report's terms, with this spec's thresholds


def build_content(result: Analysis, recommendation: Recommendation | None, history: History | None,
                  operating: tuple[OperatingCharacteristics, ...], generated: str,
                  outlook: str | None = None) -> ReportContent:
    """Collect the report's sections from an analysis and what is stored beside it."""
    spec = result.spec
    first = next(iter(result.stats.values()))
    per_arm = first["n"].sum("segment")
    total = int(per_arm.sum())
    weights = {a.name: a.weight for a in spec.arms}
    weight_sum = sum(weights.values())
    traffic = tuple({"arm": str(arm), "users": int(n), "share": int(n) / total,
                     "planned": weights[str(arm)] / weight_sum} for arm, n in zip(first["arm"].values, per_arm.values))
    decides = {m.name for m in spec.metrics_in(Role.PRIMARY, Role.GUARDRAIL)}
    diagnostics = tuple({"metric": name, "summary": f.diagnostics.summary(), "passed": f.diagnostics.passed,
                         "problems": "; ".join(f.diagnostics.problems), "d": f.diagnostics,
                         "blocks": name in decides}         # a secondary metric is reported, never decided on
                        for name, f in result.fits.items())
    srm = tuple(srm_checks(first, spec, spec.decision.srm_p))
    blocking = tuple([f"sample ratio mismatch: {c.name}" for c in srm if not c.passed]
                     + [f"MCMC diagnostics failed for {d['metric']}: {d['problems']}" for d in diagnostics
                        if not d["passed"] and d["blocks"]])
    sentences = tuple((e.metric.name, sentence(e, arm)) for e in result.effects.values()
                      if e.metric.role == Role.PRIMARY for arm in e.treatments)
    sentences += tuple((e.metric.name, sentence(e, arm)) for e in result.effects.values()
                       if e.metric.role != Role.PRIMARY for arm in e.treatments)
    if recommendation is None:
        headline, action = ("No recommendation requested: give the current ramp stage and its days "
                            "(--stage, --days) to apply the decision rule."), None
    else:
        headline, action = recommendation.headline, recommendation.action
    metrics = tuple(_metric_section(result, name) for name in result.effects)
    guardrails, guardrail_plot = _guardrails(result)
    exposure_plot, exposure_note, trajectory_plot, trajectory_rows, period = _checkins(history, spec)
    card_arm = recommendation.arm if recommendation else (result.effects[next(iter(result.effects))].treatments[0])
    return ReportContent(
        experiment=spec.name, about=spec.about(), arms=spec.arm_names, control=spec.control.name, headline=headline, action=action,
        sentences=sentences, period=period, traffic=traffic, users=total, segments=first.sizes["segment"],
        units=spec.units_counted,
        fingerprint=result.fingerprint, versions=_versions(), generated=generated, srm=srm,
        diagnostics=diagnostics, blocking=blocking, exposure_plot=exposure_plot, exposure_note=exposure_note,
        metrics=metrics, guardrails=guardrails, guardrail_plot=guardrail_plot, harm_threshold=spec.decision.harm,
        trace=recommendation.reasons if recommendation else (), trajectory_plot=trajectory_plot,
        trajectory_rows=trajectory_rows, lift_over_time=_lift_over_time(history, spec),
        exposure_over_time=exposure_over_time(history, spec.arm_names) if history is not None else None,
        error_rates=_error_rates(operating), interval=spec.interval,
        has_plan=spec.plan is not None, card=_card(result, card_arm), card_arm=card_arm,
        what_would_change=_what_would_change(recommendation, outlook), decision_plot=_decision_plot(history),
        best_plot=_best_plot(result), glossary=tuple(_glossary(result)), terms=glossary_terms(spec),
        targeting=_targeting(result), targeting_about=_targeting_about(result),
    )


def _targeting(result: Analysis) -> tuple[dict, ...]:
    """Per targeted metric: the policies' rows as the report prints them."""
    if result.targeting is None:
        return ()
    out = []
    for table in result.targeting.tables:
        rows = tuple({"rule": p.rule, "treats": fmt.share(p.treated_share), "value": table.amount(p.value),
                      "interval": f"{table.amount(p.low)} to {table.amount(p.high)}",
                      "better": "" if p.p_better_than_all is None else fmt.probability(p.p_better_than_all),
                      "best": fmt.probability(p.p_best),
                      "plain": "" if p.difference is None else table.amount(p.difference),
                      "total": "" if p.total is None else f"{p.total:,.0f}"} for p in table.policies)
        q, c = table.curve.qini, table.curve
        curve = figures.uplift_curve(c.shares, c.value, c.low, c.high, table.unit, table.scale,
                                     f"{table.metric}: uplift curve ({round(100 * table.level):d}% band)")
        out.append({"metric": table.metric, "unit": table.unit, "rows": rows, "sentence": table.sentence(),
                    "curve": curve, "population": table.population,
                    "qini": f"{table.amount(q[0])} ({table.amount(q[1])} to {table.amount(q[2])})",
                    "p_qini": fmt.probability(table.curve.p_qini_positive), "notes": table.notes})
    return tuple(out)


def _targeting_about(result: Analysis) -> str:
    """How the policies were valued, in one paragraph."""
    t = result.targeting
    if t is None:
        return ""
    return (f"Each policy's value is the difference it makes per user against treating nobody, if {t.treatment} "
            f"were given to the users it selects and {t.control} to the rest. Users are ranked by the predicted "
            f"uplift of a {t.learner} T-learner on {', '.join(t.features)}, fitted with {t.folds}-fold "
            "cross-fitting: every user is ranked and scored by models that never saw that user. Values are means "
            "of doubly-robust scores, with a Bayesian-bootstrap posterior; the segment policies treat the segments "
            "whose pooled P(helps), from the other folds, reaches the threshold. 'Plain' is the difference in means "
            "between the arms among the users a policy treats, times their share, with no model. The Qini area is "
            "the area between the uplift curve and random targeting: above 0 when the ranking finds the users who "
            "gain most.")


def _glossary(result: Analysis):
    for m in result.spec.metrics:
        family = family_for(m)
        margin = f"; may be worse by at most {m.margin:.1%}" if m.role == Role.GUARDRAIL else ""
        yield {"name": m.name, "role": f"{m.role}{margin}", "direction": f"{m.direction} is better",
               "definition": family.definition(m), "unit": family.unit_of(m)}


def glossary_terms(spec) -> tuple[tuple[str, str], ...]:
    """The words of the report's tables, each defined once with the thresholds this spec uses."""
    t = spec.decision
    kind = ("equal-tailed: the treatment's value is below the interval with probability "
            f"{(1 - spec.interval) / 2:.0%} and above it with {(1 - spec.interval) / 2:.0%}; it maps through the "
            "relative and absolute scales alike") if kind_of(spec.interval) == IntervalKind.ETI else \
        "highest-density: the narrowest range holding that probability (set by interval_kind: hdi)"
    return (
        ("relative lift", "treatment's value / control's value - 1 in the same segment (or overall: all segments, "
                          "weighted by their users), the posterior median"),
        (f"{spec.interval:.0%} interval", f"the range holding the lift with probability {spec.interval:.0%} "
                                          f"under the model, {kind}"),
        ("P(beat control)", "the posterior probability that the treatment is better than control in the metric's "
                            f"good direction; shipping needs {fmt.threshold(t.ship_beat)} for every primary"),
        ("P(best)", "the probability that an arm is the best of all arms, control included"),
        ("expected loss if shipped", "what shipping gives up on average in the cases where control was better "
                                     "(0 where the treatment was better), in the metric's unit; the decision rule "
                                     f"reads it relative to control and ships only below {fmt.threshold(t.caring)}"),
        ("ROPE", "region of practical equivalence: lifts this small count as no effect; P(in ROPE) is the "
                 f"probability of such a lift, and {fmt.threshold(t.rope)} of it for every primary stops the test"),
        ("guardrail margin", "how much worse a guardrail may get (relative) and still allow a ship; "
                             "P(beyond margin) at or above the harm threshold (family-wise over the primaries and "
                             "guardrails) rolls back from the maximum-power stage on"),
        ("pooled / unpooled", "pooled: each segment's estimate borrows strength from the others (hierarchical "
                              "model); unpooled: the segment alone with a flat prior"),
        ("± (Monte Carlo error)", "the standard error of a probability from the finite number of posterior draws: "
                                  "a probability closer to a threshold than about twice it is not decided by the "
                                  "data yet"),
        ("R-hat, ESS, divergences", "sampler diagnostics: R-hat near 1 (chains agree), effective sample size "
                                    "(independent draws' worth), no divergent transitions; a fit failing them is "
                                    "shown but never acted on"),
        ("stage", "the share of traffic exposed to the treatment at this step of the ramp"),
    )


def _card(result: Analysis, arm: str) -> tuple[dict, ...]:
    """The review card's lines, each reading what the rule judges the metric by.

    A primary: the probability the arm helps and that it harms (P(beat control) and its complement), against
    the ship and harm thresholds. A guardrail: the probability it stays within its margin and that it is worse
    by more, against the harm threshold and the share needed to ship -- not the probability of any worsening,
    which a guardrail may well have while comfortably within its margin.
    """
    t = result.spec.decision
    rows = []
    for role in (Role.PRIMARY, Role.GUARDRAIL):
        for effects in (e for e in result.effects.values() if e.metric.role == role):
            row, metric = effects.overall(arm), effects.metric
            line = {"metric": metric.name, "role": role, "lift": row.rel_lift, "low": row.rel_low,
                    "high": row.rel_high, "interval": effects.interval, "passed": effects.diagnostics.passed}
            if role == Role.PRIMARY:
                helps, harms = row.p_beat_control, 1 - row.p_beat_control
                line.update(reads=f"helps {fmt.probability(helps)}, harms {fmt.probability(harms)}",
                            status="harms" if harms >= t.harm else "helps" if helps >= t.ship_beat
                            else "not shown to help yet", good=helps >= t.ship_beat)
            else:
                beyond = row.p_beyond_margin
                line.update(reads=f"within its {fmt.threshold(metric.margin)} margin {fmt.probability(1 - beyond)}, "
                                  f"worse by more {fmt.probability(beyond)}",
                            status="beyond its margin" if beyond >= t.harm else "within its margin"
                            if 1 - beyond >= t.guardrails_safe else "not shown within its margin yet",
                            good=1 - beyond >= t.guardrails_safe)
            rows.append(line)
    return tuple(rows)


def _what_would_change(recommendation: Recommendation | None, outlook: str | None) -> str:
    """One sentence on what would change the decision: the outlook when holding, else the deciding check."""
    if recommendation is None:
        return "Give the current stage and its days to get a recommendation."
    blocked = [c for c in recommendation.reasons if c.blocking and not c.passed]
    if blocked:
        return "No decision until these pass: " + "; ".join(f"{c.name} ({c.value})" for c in blocked) + "."
    if outlook:
        return outlook
    check = recommendation.deciding_check
    if check is None:
        return ""
    if not check.passed:
        return f"{check.name} is {check.value}; it needs {check.threshold}."
    return f"Decided by: {check.name}: {check.value} (needs {check.threshold})."


def _decision_plot(history: History | None) -> str | None:
    """Every probability any look's decision compared with a limit, per look, and where the action changed."""
    if history is None or not history.looks:
        return None
    series: dict[str, tuple[list[int], list[float], float]] = {}
    actions = []
    for look in history.looks:
        rec = look.payload.get("recommendation") or {}
        actions.append((look.look, rec.get("action")))
        for reason in rec.get("reasons", []):
            if reason.get("probability") is None:
                continue
            x, y, _ = series.setdefault(reason["name"], ([], [], reason["limit"]))
            x.append(look.look)
            y.append(reason["probability"])
    if not series:
        return None
    changes = [(n, a) for (n, a), (_, before) in zip(actions, [(None, None)] + actions[:-1]) if a and a != before]
    return figures.decision_checks([look.look for look in history.looks], series, changes)


def _best_plot(result: Analysis) -> str | None:
    """P(best) per arm and metric, for experiments with three or more arms."""
    if len(result.spec.arms) < 3:
        return None
    return figures.best_arm({name: {r.arm: r.p_best for r in e.rows if r.is_overall}
                             for name, e in result.effects.items()})


def _error_rates(operating: tuple[OperatingCharacteristics, ...]) -> tuple[dict, ...]:
    """One row per scenario and rule of the stored simulation (outcome shares, median days, exposure)."""
    if not operating:
        return ()
    rows = RuleComparison(operating).to_pandas()            # by scenario, the rules side by side
    return tuple(rows.assign(experiments=rows["experiments"].astype(int)).to_dict("records"))


def _versions() -> str:
    names = (DISTRIBUTION, "pymc", "arviz", "nutpie", "numpy", "duckdb")
    found = []
    for name in names:
        try:
            found.append(f"{'bayes-ab' if name == DISTRIBUTION else name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found + [f"Python {platform.python_version()}"])


def _metric_section(result: Analysis, name: str) -> MetricSection:
    effects, model = result.effects[name], result.fits[name]
    metric = effects.metric
    family = family_for(metric)
    flat = fit(result.stats[name], metric, FLAT_PRIOR)
    treatments = effects.treatments
    lift_plot = figures.lift_density({arm: relative_lift_draws(model, arm) for arm in treatments}, metric.rope,
                                     f"{name}: posterior of the relative lift (overall)")
    forest_rows = []
    for arm in treatments:
        segments = [str(s) for s in model.stats["segment"].values]
        for segment in ["overall"] + (segments if len(segments) > 1 else []):      # one segment is the overall
            pooled, unpooled = _segment_lift(model, arm, segment), _segment_lift(flat, arm, segment)
            forest_rows.append({"label": f"{segment} · {arm}" if len(treatments) > 1 else segment,
                                "pooled": _summary(pooled, effects.interval),
                                "unpooled": _summary(unpooled, effects.interval)})
    forest_plot = figures.forest(forest_rows, f"{name}: relative lift by segment ({effects.interval:.0%} intervals)")
    shrinkage = tuple({"segment": r["label"], "unpooled": r["unpooled"], "pooled": r["pooled"],
                       "moved": _moved(r["unpooled"], r["pooled"])} for r in forest_rows)
    family_plot, family_note = family.figure(model, effects.interval)
    prior_plot, prior_note = _prior(model)
    flat_effects = {arm: _summary(relative_lift_draws(flat, arm), effects.interval) for arm in treatments}
    sign = 1.0 if metric.increase_is_good else -1.0
    long_run = effects.novelty is not None and any(a.used for a in effects.novelty.arms)
    sensitivity = tuple({"arm": arm, "model": _summary(relative_lift_draws(model, arm), effects.interval),
                         "flat": None if long_run else flat_effects[arm],
                         "model_p": effects.overall(arm).p_beat_control,
                         "flat_p": float(np.mean(sign * relative_lift_draws(flat, arm) > 0))} for arm in treatments)
    return MetricSection(
        name=name, family=metric.family, role=metric.role, direction=metric.direction, rope=metric.rope,
        margin=metric.margin if metric.role == Role.GUARDRAIL else None, model_note=effects.model_note,
        warnings=effects.warnings,
        backend=f"{family.exact_method} (exact)" if effects.backend == EXACT else effects.backend, diagnostics=effects.diagnostics,
        sentences=tuple(sentence(effects, arm) for arm in treatments), effects=effects, unit=family.unit_of(metric),
        unit_scale=family.unit_scale, lift_plot=lift_plot, forest_plot=forest_plot, shrinkage=shrinkage,
        family_plot=family_plot, family_note=family_note, prior_plot=prior_plot, prior_note=prior_note,
        sensitivity=sensitivity, compliance=effects.compliance, csv=csv_download(effects.to_pandas()),
        **_novelty(effects),
    )


SPREADSHEET_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def csv_download(table: pd.DataFrame) -> str:
    """``table`` as a CSV data URI for the report's download links (UTF-8 with a byte-order mark, which
    spreadsheets need to read non-ASCII names). A text cell a spreadsheet would run as a formula (a segment
    named ``=HYPERLINK(...)``) gets a leading apostrophe, as OWASP advises for CSV meant for spreadsheets; numbers
    are left alone. ``effects.csv`` beside the posteriors keeps the names as they are (it is read back)."""
    safe = table.copy()
    for column in [c for c in safe.columns if not pd.api.types.is_numeric_dtype(safe[c])]:
        safe[column] = [f"'{v}" if isinstance(v, str) and v.startswith(SPREADSHEET_FORMULA) else v
                        for v in safe[column]]
    text = "\ufeff" + safe.to_csv(index=False)
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def _novelty(effects) -> dict:
    """The section's figure, rows and note for a metric analysed by week since exposure."""
    found = effects.novelty
    if found is None or not found.arms:
        return {}
    plot = figures.lift_by_week(found.arms, found.interval,
                                f"{found.metric}: relative lift by week since exposure ({found.interval:.0%} intervals)")
    return {"novelty_plot": plot, "novelty": found.arms, "novelty_note": found.note}


def _segment_lift(model: Fit, arm: str, segment: str) -> np.ndarray:
    if segment == "overall":
        return relative_lift_draws(model, arm)
    mean = model.mean.sel(segment=segment)
    return (mean.sel(arm=arm) / mean.isel(arm=0) - 1.0).values.ravel()


def _summary(draws: np.ndarray, interval: float) -> tuple[float, float, float]:
    low, high = credible_interval(draws, interval)
    return float(np.nanmedian(draws)), low, high


def _moved(unpooled: tuple[float, float, float], pooled: tuple[float, float, float]) -> str:
    width_before, width_after = unpooled[2] - unpooled[1], pooled[2] - pooled[1]
    shift = pooled[0] - unpooled[0]
    narrower = 1 - width_after / width_before if width_before > 0 else 0.0
    return f"{fmt.relative(shift)} shift, interval {narrower:.0%} narrower" if narrower >= 0 else \
        f"{fmt.relative(shift)} shift, interval {-narrower:.0%} wider"


def _prior(model: Fit) -> tuple[str | None, str]:
    from bayes_ab.families import family_of
    from bayes_ab.models.hierarchy import PRIOR_EFFECT_DF, PRIOR_EFFECT_MEAN, PRIOR_EFFECT_SD, prior_data

    posterior = model.idata.posterior
    learned = model.metric.prior.learned
    if "effect_mu" not in posterior:
        return None, ("This posterior comes from the conjugate closed form with a flat prior, so the prior "
                      "has no influence to show; the sensitivity table below compares it with itself.")
    factor = family_of(model.stats).link_per_relative(model.stats, model.metric) if learned is not None else 1.0
    data = prior_data(model.metric.prior, factor)
    location, prior_sd = float(data.get(PRIOR_EFFECT_MEAN, 0.0)), float(data[PRIOR_EFFECT_SD])
    df = float(data[PRIOR_EFFECT_DF]) if PRIOR_EFFECT_DF in data else None
    shape = (f"StudentT({df:.3g}, {location:.3g}, {prior_sd:.3g})" if df is not None
             else f"Normal({location:.3g}, {prior_sd:.3g})")
    draws = {str(t): posterior["effect_mu"].sel(treatment=t).values.ravel() for t in posterior["treatment"].values}
    spread = max(float(np.std(d)) for d in draws.values())
    origin = "" if learned is None else (f" It was {learned.describe()}, mapped to the link scale at the "
                                         f"control's observed value ({factor:.3g} per unit of relative effect).")
    note = (f"Prior of the overall treatment effect on the model's link scale: {shape}.{origin} "
            f"The posterior sd is {spread:.3g}, {spread / prior_sd:.1%} of the prior scale"
            + ("; the data dominate." if spread < 0.3 * prior_sd else "; the prior still matters."))
    return figures.prior_posterior(prior_sd, draws, "link scale", location, df), note


def _guardrails(result: Analysis) -> tuple[tuple[dict, ...], str | None]:
    rows = []
    for name, f in result.fits.items():
        if f.metric.role != Role.GUARDRAIL:
            continue
        for arm in result.effects[name].treatments:
            lift = relative_lift_draws(f, arm)
            low, high = credible_interval(lift, result.spec.interval)
            rows.append({"metric": name, "arm": arm, "margin": f.metric.margin, "direction": f.metric.direction,
                         "p_harm": float(np.mean(harm_draws(f, arm))), "lift": float(np.nanmedian(lift)),
                         "low": low, "high": high, "passed": f.diagnostics.passed})
    if not rows:
        return (), None
    labels = [f"{r['metric']} · {r['arm']}" for r in rows]
    return tuple(rows), figures.guardrail_bars(labels, [r["p_harm"] for r in rows], result.spec.decision.harm)


def _lift_over_time(history: History | None, spec) -> tuple[dict, ...]:
    """The lift-over-time figure of every primary and guardrail the looks recorded."""
    if history is None or not history.looks:
        return ()
    found = []
    for metric in spec.metrics_in(Role.PRIMARY, Role.GUARDRAIL):
        svg = lift_over_time(history, metric.name, metric.role, metric.increase_is_good, metric.rope,
                             metric.margin if metric.role == Role.GUARDRAIL else None, spec.interval)
        if svg is not None:
            found.append({"metric": metric.name, "role": str(metric.role), "svg": svg})
    return tuple(found)


def _checkins(history: History | None, spec) -> tuple[str | None, str, str | None, tuple[dict, ...], str]:
    if history is None or not history.looks:
        return (None, "No check-ins recorded: exposure over time and the trajectory appear once looks are "
                      "recorded with `bayes-ab checkin`.", None, (), "single analysis (no check-ins recorded)")
    looks = history.looks
    period = f"{looks[0].as_of} to {looks[-1].as_of} ({len(looks)} look(s))"
    numbers = [look.look for look in looks]
    users = [int(look.payload["users"]) for look in looks]
    stages = [look.payload.get("stage") for look in looks]
    exposure_plot = figures.exposure(numbers, users, stages)
    table = history.to_pandas()
    if table.empty:
        return exposure_plot, "", None, (), period
    series = {}
    for (metric, arm), part in table.groupby(["metric", "arm"], sort=False):
        series[f"{metric} · {arm}"] = (part["look"].values, part["p_beat_control"].values,
                                       part["loss_ship_rel"].values)
    trajectory_plot = figures.trajectory(numbers, series, spec.decision.ship_beat, spec.decision.caring)
    rows = tuple({**row, "loss_shown": loss_if_shipped(row)} for row in table.to_dict("records"))
    return exposure_plot, "Users so far at each recorded look, with the ramp stage.", trajectory_plot, rows, period

