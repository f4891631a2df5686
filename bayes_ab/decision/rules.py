"""The default decision rule: posteriors + guardrails + ramp plan + data quality -> Recommendation.

The ramp has two phases (after Xu, Duan and Huang, "SQR: Balancing Speed, Quality and Risk in Online
Experiments", KDD 2018). Stages below the *maximum-power stage* (``decision.max_power_stage``, by default
the largest stage below 100: 50% treatment exposure, which uses all traffic in a 50/50 test) exist to
catch severe harm early, on few users; they move on as soon as their minimum exposure is met without it,
and ask no evidence of benefit. At the maximum-power stage the rule decides: ship when every primary
probably helps and every guardrail is within its margin (Schultzberg, Ankargren and Franberg,
"Risk-aware product decisions in A/B tests with multiple metrics", 2024: superiority on success metrics,
non-inferiority on guardrails), roll back on real evidence of harm, stop when nothing moves.

Order of evaluation (every check is recorded in the trace, in this order):

1. Data-quality gates: sample-ratio mismatch overall and per segment (chi-square, p < ``srm_p`` =
   0.001) means ``hold`` at once: nothing in the data can be trusted. A metric whose fit failed its
   MCMC diagnostics is "not evaluated" and blocks any advance, ship or stop; harm found in the sound fits
   still rolls back, since evidence of harm should not wait for an unrelated fit.
2. Severe harm, at every stage and every look: P(a primary or guardrail is worse than control by more
   than ``severe_margin`` = 10% relative) >= its per-metric share of ``severe_harm`` = 0.9 (0.95 for each of
   two judged metrics) -> ``rollback``. At a 1% stage a change that breaks something shows it in a day; 95%
   (not 99.5%) because the margin already demands a large effect and the stage exposes few users.
3. Harm, at the maximum-power stage and every look (a rollback does not wait for the stage's minimum
   days): P(a primary is worse than control) >= its per-metric share of ``harm`` = 0.99 (0.995 for each of
   two) while rolling back forgoes an expected gain below ``caring``; or P(a guardrail is worse than its
   ``margin``) >= that share -> ``rollback``. ``harm`` and ``severe_harm`` are family-wise: with ``k``
   primaries and guardrails judged, each is held to ``1 - (1 - harm) / k`` (Bonferroni), so a plan with ten
   guardrails is not ten times as likely to roll back a change that does nothing.
4. Minimum exposure of the current stage (days and users) not reached -> ``hold``.
5. Below the maximum-power stage: ``advance`` (the risk stage has done its job).
6. Futility: every primary's lift is inside its ROPE with P >= ``rope`` = 0.95 and both expected losses
   are below ``caring`` = 0.1% relative -> ``stop_no_effect``.
7. Ship: every primary's P(beat control) >= ``ship_beat`` = 0.99, the worst primary's expected
   relative loss of shipping < ``caring``, and P(every guardrail within its margin) >=
   ``guardrails_safe`` = 0.95 -> ``ship`` (``advance`` if a stage below 100 follows).
8. Otherwise ``hold``, with what is missing and roughly how many more users would settle it.

Every probability that can trigger an action must clear its threshold by more than two Monte Carlo
standard errors (``UNDECIDED_SE``): P(beat control) = 0.991 +/- 0.004 against 0.99 is sampling noise,
not evidence, and a rule acting on it would flip between looks as the draws change. Such a check is
recorded as undecided (with its MC standard error) and the rule holds.

Why these numbers. ``harm`` and ``ship_beat`` were chosen by simulating the push-notification plan
(20,000 users/day, 11.5% base, +5% planned, 0.73% opt-out guardrail with a 10% margin, default ramp,
daily looks for 28 days, 1,000 experiments per scenario; ``benchmarks/decision_rules.py``). Daily looks
repeat each check up to 25 times, so one-look levels do not hold: with ``harm`` 0.99 a change that does
nothing is rolled back 7.6% of the time, with 0.995 4.3%, 0.9975 3.1%, 0.999 2.2% -- while the median day
a true -5% change is rolled back moves from 6 (0.99, 0.995) to 7 and 8. 0.995 is the fastest point with
false rollbacks under 5%, and it rolls a -5% change back a day before the mSPRT reference (86,600 against
132,200 treated user-days). ``ship_beat`` 0.99 ships a true +5% in 95% of experiments by day 10 (median,
as the mSPRT) with a false-ship rate of 3.2% (+/- 0.6%); 0.975 ships a change that does nothing 6.8% of
the time. Those figures predate the Monte Carlo band; with it (2026-11-24) the defaults roll back 3.0%
and ship 1.9% of changes that do nothing, ship a true +5% in 95.1% by day 11 and roll a -5% change back
on day 7, level with the mSPRT -- and ``harm`` 0.99 rolls back 4.7% of null changes, so it is now the
fastest setting under 5% (a retune left for when the ``ship_beat`` sweep has been re-run with the band).
Other plans look more or less often: ``bayes-ab plan`` and ``simulate`` show a plan's own rates and warn
when the false-ship rate passes 5%.
``caring`` 0.1% relative is below what product teams act on; ``guardrails_safe`` 0.95 bounds the chance
of shipping a guardrail regression beyond its margin near 5% per look.
"""

from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Mapping, Sequence

import pandas as pd
from scipy.special import ndtri

from bayes_ab.decision.checks import RuleCheck
from bayes_ab.decision.evidence import MetricEvidence, evidence_from_fit, joint_within_margin
from bayes_ab.decision.srm import srm_checks
from bayes_ab.learned_prior import CONFLICT_P
from bayes_ab import format as fmt
from bayes_ab.effects.compute import probability_mcse
from bayes_ab.errors import SpecError
from bayes_ab.metric import Role
from bayes_ab.spec import DecisionThresholds, ExperimentSpec, Metric
from bayes_ab.data.stats import exposed_users
from bayes_ab.targeting.value import segment_rollout

UNDECIDED_SE = 2.0
"""A probability within this many Monte Carlo standard errors of its threshold decides nothing."""


def clears(p: float, mcse: float, limit: float) -> bool:
    """Whether ``p`` reaches ``limit`` by more than its Monte Carlo noise (:data:`UNDECIDED_SE` standard errors)."""
    return p - UNDECIDED_SE * mcse >= limit


def _shown(p: float, mcse: float) -> str:
    return f"{fmt.probability(p)} (MC SE {mcse:.1%})" if mcse > 0 else fmt.probability(p)


def _noise(p: float, mcse: float, limit: float) -> str:
    """The trace's note when ``p`` reaches ``limit`` only within its Monte Carlo noise."""
    return (f"within {UNDECIDED_SE:g} MC standard errors of {fmt.threshold(limit)}: undecided, more draws or the "
            "next look will settle it") if p >= limit and not clears(p, mcse, limit) else ""


class Action(StrEnum):
    """What the rule recommends at a look."""

    ADVANCE = "advance"
    HOLD = "hold"
    ROLLBACK = "rollback"
    SHIP = "ship"
    STOP_NO_EFFECT = "stop_no_effect"


ACTIONS = tuple(Action)
TERMINAL_ACTIONS = (Action.SHIP, Action.ROLLBACK, Action.STOP_NO_EFFECT)       # the actions that end an experiment


@dataclass(frozen=True)
class Recommendation:
    """What to do with the rollout now, and the rule trace that decided it."""

    action: Action
    arm: str
    from_stage: float
    to_stage: float
    headline: str
    reasons: tuple[RuleCheck, ...]
    targeted_segments: tuple[str, ...] = ()
    thresholds: str = ""
    """Where the rule's thresholds come from: a calibration of this plan, the spec, or the defaults."""

    @property
    def deciding_check(self) -> RuleCheck | None:
        """The last check evaluated: the one that decided the action."""
        return self.reasons[-1] if self.reasons else None

    def to_dict(self) -> dict:
        """JSON-ready form: the action, stages, headline, targeted segments and the trace."""
        return {"action": self.action, "arm": self.arm, "from_stage": self.from_stage, "to_stage": self.to_stage,
                "headline": self.headline, "targeted_segments": list(self.targeted_segments),
                "thresholds": self.thresholds, "reasons": [asdict(r) for r in self.reasons]}

    def to_pandas(self) -> pd.DataFrame:
        """The rule trace, one row per check."""
        return pd.DataFrame([asdict(r) for r in self.reasons])

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.headline)}</p>" + self.to_pandas().to_html(index=False, escape=True)

    def text(self) -> str:
        """Headline and trace for the console."""
        return "\n".join([f"Recommendation: {self.headline}"] + ["  " + r.line() for r in self.reasons]
                         + ([f"  thresholds: {self.thresholds}"] if self.thresholds else []))


def recommend(analysis, stage: float, days: float) -> Recommendation:
    """Apply the spec's decision rule to an analysis at the current ramp ``stage`` (percent).

    Parameters
    ----------
    analysis
        A :class:`bayes_ab.analysis.Analysis` (effects, fits, statistics, spec).
    stage
        Current ramp stage in percent; must be one of the spec's stages.
    days
        Days of exposure at the current stage.
    """
    spec, t = analysis.spec, analysis.spec.decision
    primaries = spec.metrics_in(Role.PRIMARY)
    if not primaries:
        raise SpecError(f"{spec.source}: metrics: a decision needs at least one metric with role 'primary'")
    spec.stage_index(stage)
    first = analysis.effects[primaries[0].name]
    arm = min(first.treatments, key=lambda a: first.overall(a).loss_ship_rel)
    stats = next(iter(analysis.stats.values()))
    gates = srm_checks(stats, spec, t.srm_p)
    judged = spec.metrics_in(Role.PRIMARY, Role.GUARDRAIL)
    for name, fit in analysis.fits.items():
        d = fit.diagnostics
        decides = spec.metric(name) in judged
        detail = "; ".join(d.problems)
        if not decides and not d.passed:
            detail += "; a secondary metric is reported, never decided on: this blocks nothing"
        gates.append(RuleCheck(f"MCMC diagnostics ({name})", d.summary().split(" - ")[0],
                               f"R-hat <= {d.max_rhat_allowed}, ESS >= {d.min_ess_required:.0f}, 0 divergences",
                               d.passed, detail, blocking=decides))
    conflicted = set()
    for m in judged:
        checks = analysis.effects[m.name].prior_checks
        for check in (c for c in checks if c.arm == arm):
            gates.append(RuleCheck(f"prior-data conflict ({m.name})", f"p = {check.p_value:.2g}",
                                   f"p >= {CONFLICT_P:g}", not check.conflicts,
                                   f"the data alone say {fmt.relative(check.data_lift)}; the learned prior expects "
                                   "effects near its location" + ("; its posterior is not acted on"
                                                                  if check.conflicts else ""), blocking=True))
            if check.conflicts:
                conflicted.add(m.name)
    evidence = {m.name: evidence_from_fit(analysis.fits[m.name], arm, t.severe_margin)
                for m in judged if analysis.fits[m.name].diagnostics.passed and m.name not in conflicted}
    unsound = [m for m in judged if m.name not in evidence]
    harmed = _harmed_segments(analysis, primaries, arm,
                              t.per_metric(t.segment_harm, len(_segments(analysis)) * len(primaries)))
    units = (int(stats["n"].sum()), spec.unit_name) if spec.grouped_units else None
    return decide(spec, stage, days, exposed_users(stats), arm, evidence, gates, unsound, harmed,
                  tuple(str(s) for s in stats["segment"].values), units, _policy_targeting(analysis, arm))


def _policy_targeting(analysis, arm: str) -> tuple[RuleCheck, tuple[str, ...]] | None:
    """The targeting table's say on a targeted rollout: per targeted primary, its best segment policy against
    treating everyone; the segments to treat when one reaches ``targeting_better`` (the first such primary's)."""
    targeting = analysis.targeting
    spec = analysis.spec
    if targeting is None or targeting.treatment != arm:
        return None
    primaries = {m.name for m in spec.metrics_in(Role.PRIMARY)}
    tables = [t for t in targeting.tables if t.metric in primaries and t.segment_helps]
    if not tables:
        return None
    better = spec.decision.targeting_better
    for table in tables:
        rollout = segment_rollout(table, better)
        if rollout is not None:
            p = rollout.policy
            return (RuleCheck(f"targeting: {table.metric} segment policy P(better than treating everyone)",
                              f"{p.rule}: {fmt.probability(p.p_better_than_all)}", f"< {fmt.threshold(better)} to "
                              "treat everyone", False, f"a targeted rollout to {', '.join(rollout.segments)} "
                              f"(leaving out {', '.join(rollout.excluded)}) is worth {table.amount(p.value)} "
                              f"{table.unit} per user against {table.amount(table.policy('treat_all').value)} for "
                              "everyone", probability=p.p_better_than_all, limit=better), rollout.segments)
    best = max((p for t in tables for p in t.policies if p.helps is not None and p.p_better_than_all is not None),
               key=lambda p: p.p_better_than_all, default=None)
    shown = "no segment policy leaves users out" if best is None or best.treated_share >= 1 else \
        f"{best.rule}: {fmt.probability(best.p_better_than_all)}"
    return (RuleCheck("targeting: segment policies P(better than treating everyone)", shown,
                      f"< {fmt.threshold(better)} to treat everyone", True), ())


def decide(spec: ExperimentSpec, stage: float, days: float, users: int, arm: str,
           evidence: Mapping[str, MetricEvidence], gates: Sequence[RuleCheck] = (), unsound: Sequence[Metric] = (),
           harmed_segments: Sequence[str] = (), segments: Sequence[str] = (),
           units: tuple[int, str] | None = None,
           policy_targeting: tuple[RuleCheck, tuple[str, ...]] | None = None) -> Recommendation:
    """The default rule on numbers alone: gates, severe harm, exposure, then the stage's phase.

    Parameters
    ----------
    spec
        Metrics (roles, margins, ROPEs), ramp and thresholds.
    stage, days
        Current ramp stage (percent) and days of exposure at it.
    users
        Users in the analysis (all arms), for the stage's minimum exposure.
    units
        When the randomised units are not users (clusters, switchback cells): their number and name, in which a
        hold says how much more data would settle it (more users of the same clusters barely help).
    arm
        The treatment arm the recommendation is about.
    evidence
        Per metric judged (every primary; the guardrails to weigh), from fits that can be trusted.
    gates
        Blocking data-quality checks already evaluated (sample ratio, MCMC diagnostics).
    unsound
        Primaries and guardrails whose fits failed their diagnostics: "not evaluated", blocking any
        advance, ship or stop (harm found in the sound ones still rolls back).
    harmed_segments, segments
        Segments where a primary is confidently harmed, and all segments (for a targeted rollout).
    policy_targeting
        With a ``targeting`` section: the check of its segment policies against treating everyone, and the
        segments a targeted rollout would treat (empty: treat everyone). Confident harm in a segment
        (``harmed_segments``) takes precedence.
    """
    t = spec.decision
    index = spec.stage_index(stage)
    current, following = spec.ramp[index], spec.ramp[min(index + 1, len(spec.ramp) - 1)]
    primaries = spec.metrics_in(Role.PRIMARY)
    guardrails = [m for m in spec.metrics if m.role == Role.GUARDRAIL and (m.name in evidence or m in unsound)]
    judged = len(primaries) + len(guardrails)
    harm_limit, severe_limit = t.per_metric(t.harm, judged), t.per_metric(t.severe_harm, judged)
    trace: list[RuleCheck] = list(gates)

    def done(action: Action, to: float, headline: str, targeted: tuple[str, ...] = ()) -> Recommendation:
        return Recommendation(action, arm, stage, to, headline, tuple(trace), targeted, thresholds_source(t))

    def harm(name: str, p: float, mcse: float, threshold: float, what: str) -> Recommendation | None:
        """Record P(harm) against its threshold; the rollback when it is reached beyond its MC noise."""
        harmed = clears(p, mcse, threshold)
        trace.append(RuleCheck(name, _shown(p, mcse), f"< {fmt.threshold(threshold)} to avoid rollback", not harmed,
                               _noise(p, mcse, threshold), probability=p, limit=threshold, mcse=mcse))
        return done(Action.ROLLBACK, 0, f"Roll back {arm}: {fmt.probability(p)} probability that {what}.") if harmed else None

    # 1. data-quality gates
    failed = [c for c in trace if c.blocking and not c.passed]
    if any(c.name.startswith("sample ratio") for c in failed):
        return done(Action.HOLD, stage, f"Hold at {stage:g}%: cannot recommend on bad data ({failed[0].name} failed).")

    # 2. severe harm, at every stage, on every primary and guardrail whose fit can be trusted
    for metric in primaries + guardrails:
        e = evidence.get(metric.name)
        if e is None:
            if metric not in unsound:
                raise ValueError(f"decide: no evidence for metric {metric.name!r}")
            check = RuleCheck(f"{metric.role} {metric.name}: evidence", "not evaluated",
                              "a fit that passed its diagnostics", False,
                              "its fit failed a check above (MCMC diagnostics or prior-data conflict); harm "
                              "cannot be ruled out", blocking=True)
            trace.append(check)
            failed.append(check)
            continue
        rollback = harm(f"severe harm: {metric.name} P(worse by > {fmt.threshold(t.severe_margin)})", e.p_severe,
                        e.mcse("p_severe"), severe_limit, f"it makes {metric.name} worse by more than {fmt.threshold(t.severe_margin)}")
        if rollback:
            return rollback

    deciding = stage >= spec.max_power_stage
    # 3. harm at the maximum-power stage, at every look (a rollback does not wait for the stage's minimum
    #    exposure): real evidence that a primary is worse, or a guardrail beyond its margin
    if deciding:
        for metric in (m for m in primaries if m.name in evidence):
            e = evidence[metric.name]
            worse, mcse = 1 - e.p_beat, e.mcse("p_beat")
            harmed = clears(worse, mcse, harm_limit) and e.loss_keep_rel < t.caring
            trace.append(RuleCheck(f"harm: primary {metric.name} P(worse than control), gain forgone by rolling back",
                                   f"{_shown(worse, mcse)}, {e.loss_keep_rel:.3%}",
                                   f"< {fmt.threshold(harm_limit)} or gain forgone >= {fmt.threshold(t.caring)} to avoid rollback",
                                   not harmed, _noise(worse, mcse, harm_limit), probability=worse, limit=harm_limit,
                                   mcse=mcse))
            if harmed:
                return done(Action.ROLLBACK, 0, f"Roll back {arm}: {fmt.probability(1 - e.p_beat)} probability that it "
                                           f"makes {metric.name} worse.")
        for metric in (m for m in guardrails if m.name in evidence):
            e = evidence[metric.name]
            rollback = harm(f"harm: guardrail {metric.name} P(worse by > {metric.margin:.1%})",
                            e.p_beyond_margin, e.mcse("p_beyond_margin"), harm_limit,
                            f"{metric.name} is worse than its {metric.margin:.1%} margin")
            if rollback:
                return rollback

    # 4. minimum exposure of the current stage
    enough = days >= current.min_days and users >= current.min_users
    trace.append(RuleCheck(f"exposure at {stage:g}%", f"{days:g} days, {users:,} users",
                           f">= {current.min_days} days and {current.min_users:,} users", enough))
    if not enough:
        missing = []
        if days < current.min_days:
            missing.append(f"{current.min_days - days:g} more day(s)")
        if users < current.min_users:
            missing.append(f"{current.min_users - users:,} more users")
        return done(Action.HOLD, stage, f"Hold at {stage:g}%: minimum exposure not reached ({' and '.join(missing)}).")

    if failed:
        return done(Action.HOLD, stage, f"Hold at {stage:g}%: no harm found in the sound fits, but cannot advance on "
                                   f"bad data ({', '.join(c.name for c in failed)} failed).")

    if harmed_segments:
        trace.append(RuleCheck("segments confidently harmed", ", ".join(harmed_segments),
                               f"P(harm) < {fmt.threshold(t.per_metric(t.segment_harm, len(segments) * len(primaries)))} "
                               "in every segment", False,
                               "consider a targeted rollout to the other segments"))
    targeted = tuple(s for s in segments if s not in harmed_segments) if harmed_segments else ()
    note = f" (targeted: exclude {', '.join(harmed_segments)})" if harmed_segments else ""
    if policy_targeting is not None and not harmed_segments:
        check, treat = policy_targeting
        trace.append(check)
        if treat:
            targeted, note = tuple(treat), f" (targeted: only {', '.join(treat)}, by the targeting table)"

    # 5. a risk stage has done its job once its exposure is met without severe harm
    if not deciding:
        trace.append(RuleCheck(f"risk stage {stage:g}%: no severe harm at minimum exposure", "none found",
                               f"below the maximum-power stage ({spec.max_power_stage:g}%)", True))
        return done(Action.ADVANCE, following.percent, f"Advance to {following.percent:g}%{note}: no severe harm at "
                                                  f"{stage:g}% after {days:g} day(s) and {users:,} users.", targeted)

    # 6. futility
    rows = {m.name: evidence[m.name] for m in primaries}
    flat = all(clears(e.p_rope, e.mcse("p_rope"), t.rope) and e.loss_ship_rel < t.caring
               and e.loss_keep_rel < t.caring for e in rows.values())
    trace.append(RuleCheck("futility: P(lift inside ROPE), both losses",
                           ", ".join(f"{n} {fmt.probability(e.p_rope)}" for n, e in rows.items()),
                           f">= {fmt.threshold(t.rope)} and losses < {fmt.threshold(t.caring)}", not flat))
    if flat:
        return done(Action.STOP_NO_EFFECT, 0, f"Stop: {arm} makes no practical difference to "
                                         f"{', '.join(rows)} (lift confidently inside the ROPE).")

    # 7. ship: every primary probably helps at little expected loss, every guardrail within its margin
    least = min(rows.items(), key=lambda item: item[1].p_beat)
    beat, beat_mcse = least[1].p_beat, least[1].mcse("p_beat")
    convinced = clears(beat, beat_mcse, t.ship_beat)
    trace.append(RuleCheck("to ship: P(beat control) (least convinced primary)",
                           f"{least[0]} {_shown(beat, beat_mcse)}", f">= {fmt.threshold(t.ship_beat)}", convinced,
                           _noise(beat, beat_mcse, t.ship_beat), probability=beat, limit=t.ship_beat, mcse=beat_mcse))
    worst = max(rows.items(), key=lambda item: item[1].loss_ship_rel)
    small_loss = worst[1].loss_ship_rel < t.caring
    trace.append(RuleCheck("to ship: expected relative loss (worst primary)", f"{worst[0]} {worst[1].loss_ship_rel:.3%}",
                           f"< {fmt.threshold(t.caring)}", small_loss))
    guarding = [evidence[m.name] for m in guardrails]
    safe = joint_within_margin(guarding)
    sizes = [e.ess["p_beyond_margin"] for e in guarding if "p_beyond_margin" in e.ess]
    safe_mcse = probability_mcse(safe, min(sizes)) if sizes else 0.0
    guarded = clears(safe, safe_mcse, t.guardrails_safe)
    trace.append(RuleCheck("to ship: P(every guardrail within its margin)", _shown(safe, safe_mcse),
                           f">= {fmt.threshold(t.guardrails_safe)}", guarded, _noise(safe, safe_mcse, t.guardrails_safe),
                           probability=safe, limit=t.guardrails_safe, mcse=safe_mcse))
    if convinced and small_loss and guarded:
        action = Action.SHIP if following.percent == 100 else Action.ADVANCE
        verb = "Ship to 100%" if action == Action.SHIP else f"Advance to {following.percent:g}%"
        return done(action, following.percent, f"{verb}{note}: {fmt.probability(least[1].p_beat)} probability that "
                                               f"{arm} helps {least[0]}, expected loss {worst[1].loss_ship_rel:.3%}, "
                                               f"guardrails within margins with {fmt.probability(safe)}.", targeted)

    # 8. hold, with what is missing
    needs = []
    count, word = units if units is not None else (users, "users")
    if not convinced:
        needs.append(f"only {fmt.probability(least[1].p_beat)} probability that {arm} helps {least[0]} "
                     f"(shipping needs {fmt.threshold(t.ship_beat)})"
                     f"{_more_units(count, word, least[1].p_beat, t.ship_beat)}")
    if not small_loss:
        more = int(count * ((worst[1].loss_ship_rel / t.caring) ** 2 - 1))
        needs.append(f"expected loss if shipped {worst[1].loss_ship_rel:.3%} > {fmt.threshold(t.caring)}"
                     + (f"; roughly {more:,} more {word} (loss ~ 1/sqrt({word})) would bring it under if the lift is "
                        f"not negative" if worst[1].p_beat >= 0.5 else " (the lift is more likely negative)"))
    if not guarded:
        needs.append(f"guardrails within their margins with only {fmt.probability(safe)} "
                     f"(needs {fmt.threshold(t.guardrails_safe)})")
    return done(Action.HOLD, stage, f"Hold at {stage:g}%: {'; '.join(needs)}.")


def thresholds_source(t: DecisionThresholds) -> str:
    """Where ``t`` comes from, in one line: a calibration (its note), the spec, or the defaults."""
    if t.calibration:
        return f"calibrated for this plan ({t.calibration})"
    default = DecisionThresholds()
    if all(getattr(t, name) == getattr(default, name) for name in ("ship_beat", "harm", "severe_harm",
                                                                    "guardrails_safe")):
        return "the defaults, not calibrated for this plan (bayes-ab plan SPEC --calibrate)"
    return "set in the spec, not calibrated (bayes-ab plan SPEC --calibrate)"


def _more_units(units: int, word: str, p_beat: float, needed: float) -> str:
    """Roughly how many more units (users, clusters) would take P(beat) to ``needed`` if the observed lift held: the
    z-score of a fixed lift grows like sqrt(units)."""
    z_now, z_needed = ndtri(min(max(p_beat, 1e-9), 1 - 1e-9)), ndtri(needed)
    if z_now <= 0 or not z_needed < math.inf:       # no lift to extrapolate, or a threshold out of reach
        return ""
    return f"; roughly {int(units * ((z_needed / z_now) ** 2 - 1)):,} more {word} if the lift holds"


def _segments(analysis) -> list[str]:
    return [str(s) for s in next(iter(analysis.stats.values()))["segment"].values]


def _harmed_segments(analysis, primaries, arm: str, threshold: float) -> list[str]:
    """Segments where the pooled posterior says the arm confidently hurts a primary metric."""
    if len(_segments(analysis)) < 2:
        return []
    harmed = []
    for metric in primaries:
        for row in analysis.effects[metric.name].rows:
            if not row.is_overall and row.arm == arm and row.p_beat_control <= 1 - threshold:
                harmed.append(row.segment)
    return sorted(set(harmed))
