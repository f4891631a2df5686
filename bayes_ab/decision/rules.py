"""The default decision rule: posteriors + guardrails + ramp plan + data quality -> Recommendation.

Order of evaluation (every check is recorded in the trace, in this order):

1. Data-quality gates, blocking: sample-ratio mismatch overall and per segment (chi-square,
   p < ``srm_p``), MCMC diagnostics of every metric (R-hat, ESS, divergences). A sample-ratio
   mismatch means ``hold`` at once: nothing in the data can be trusted. A failed fit blocks any
   advance, ship or stop; the rollback checks below still run on the metrics whose fits passed,
   since evidence of harm from a sound fit should not wait for an unrelated one.
2. Guardrails: P(harm beyond margin) per guardrail and P(all within margin) jointly. If P(any
   guardrail harmed) >= ``harm`` -> ``rollback``, at any look: safety does not wait.
3. Minimum exposure of the current stage (days and users); not reached -> ``hold``.
4. Primary harm: P(primary beats control) <= 1 - ``harm`` and the expected gain forgone by rolling
   back (``loss_keep_rel``) below ``caring`` -> ``rollback``. Judged only once the stage's exposure
   is met, and only when rolling back gives up little: with a few hundred users a daily look crosses
   a 10% boundary by chance far too often (simulated: without these two conditions a third of A/A
   tests and 15% of tests of a real +5% improvement were rolled back).
5. Futility: every primary's lift is inside its ROPE with P >= ``rope`` and both expected losses
   (ship and keep) are below ``caring`` -> ``stop_no_effect`` (nothing to gain either way).
6. Advance: what is at stake is weighted by the share of users the next stage exposes. Every
   primary's expected relative loss of shipping x share < ``caring`` (loss x 5% < 0.1% to go from
   1% to 5%; loss < 0.1% to go to 100%), and P(any guardrail beyond its margin) x share <=
   1 - ``guardrails_safe`` (any value below the rollback threshold to go to 5%; <= 5% to go to
   100%) -> ``advance``. Without the weighting a 1% stage never gathers enough data to leave. Going to
   100% (``ship``) also needs P(beat control) >= ``ship_beat`` for every primary: small stages only
   need "little at stake", shipping needs "probably helps"; otherwise ``hold`` before 100%.
7. Otherwise ``hold``, with what is missing.

Why these defaults: a 0.1% relative expected loss is below what product teams act on; 95% joint
guardrail safety keeps the chance of shipping a guardrail regression (beyond its margin) near 5%;
rollbacks need 90% because a rollback at a small stage costs little.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bayes_ab.decision.checks import RuleCheck
from bayes_ab.decision.guardrails import harm_draws, joint_within_margin
from bayes_ab.decision.srm import srm_checks
from bayes_ab.effects import format as fmt
from bayes_ab.errors import SpecError

ACTIONS = ("advance", "hold", "rollback", "ship", "stop_no_effect")
TERMINAL_ACTIONS = ("ship", "rollback", "stop_no_effect")       # the actions that end an experiment


@dataclass(frozen=True)
class Recommendation:
    """What to do with the rollout now, and the rule trace that decided it."""

    action: str
    arm: str
    from_stage: float
    to_stage: float
    headline: str
    reasons: tuple[RuleCheck, ...]
    targeted_segments: tuple[str, ...] = ()

    @property
    def deciding_check(self) -> RuleCheck | None:
        """The last check evaluated: the one that decided the action."""
        return self.reasons[-1] if self.reasons else None

    def to_dict(self) -> dict:
        """JSON-ready form: the action, stages, headline, targeted segments and the trace."""
        return {"action": self.action, "arm": self.arm, "from_stage": self.from_stage, "to_stage": self.to_stage,
                "headline": self.headline, "targeted_segments": list(self.targeted_segments),
                "reasons": [asdict(r) for r in self.reasons]}

    def to_pandas(self) -> pd.DataFrame:
        """The rule trace, one row per check."""
        return pd.DataFrame([asdict(r) for r in self.reasons])

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.headline)}</p>" + self.to_pandas().to_html(index=False, escape=True)

    def text(self) -> str:
        """Headline and trace for the console."""
        return "\n".join([f"Recommendation: {self.headline}"] + ["  " + r.line() for r in self.reasons])


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
    index = spec.stage_index(stage)
    current = spec.ramp[index]
    following = spec.ramp[min(index + 1, len(spec.ramp) - 1)]
    primaries = [m for m in spec.metrics if m.role == "primary"]
    guardrails = [m for m in spec.metrics if m.role == "guardrail"]
    if not primaries:
        raise SpecError(f"{spec.source}: metrics: a decision needs at least one metric with role 'primary'")
    first = analysis.effects[primaries[0].name]
    arm = min(first.treatments, key=lambda a: first.overall(a).loss_ship_rel)
    trace: list[RuleCheck] = []

    def done(action: str, to: float, headline: str, segments: tuple[str, ...] = ()) -> Recommendation:
        return Recommendation(action, arm, stage, to, headline, tuple(trace), segments)

    # 1. data-quality gates
    trace += srm_checks(next(iter(analysis.stats.values())), spec, t.srm_p)
    for name, fit in analysis.fits.items():
        d = fit.diagnostics
        trace.append(RuleCheck(f"MCMC diagnostics ({name})", d.summary().split(" - ")[0],
                               f"R-hat <= {d.max_rhat_allowed}, ESS >= {d.min_ess_required:.0f}, 0 divergences",
                               d.passed, "; ".join(d.problems), blocking=True))
    failed = [c for c in trace if c.blocking and not c.passed]
    if any(c.name.startswith("sample ratio") for c in failed):
        return done("hold", stage, f"Hold at {stage:g}%: cannot recommend on bad data ({failed[0].name} failed).")
    sound = {name for name, fit in analysis.fits.items() if fit.diagnostics.passed}

    # 2. guardrails (only those with sound fits can trigger a rollback)
    guardrail_fits = [analysis.fits[m.name] for m in guardrails if m.name in sound]
    for fit in guardrail_fits:
        p = float(np.mean(harm_draws(fit, arm)))
        trace.append(RuleCheck(f"guardrail {fit.metric.name}: P(harm beyond {fit.metric.margin:.1%})",
                               fmt.probability(p), f"< {t.harm:.0%} to avoid rollback", p < t.harm))
    for metric in (m for m in guardrails if m.name not in sound):
        trace.append(RuleCheck(f"guardrail {metric.name}: P(harm beyond {metric.margin:.1%})", "not evaluated",
                               "a fit that passed its diagnostics", False,
                               "its fit failed the diagnostics above; harm cannot be ruled out", blocking=True))
    safe = joint_within_margin(guardrail_fits, arm)
    joint = "guardrails jointly" if len(guardrail_fits) == len(guardrails) else "sound guardrails jointly"
    trace.append(RuleCheck(f"{joint}: P(any harm beyond margin)", fmt.probability(1 - safe),
                           f"< {t.harm:.0%} to avoid rollback", 1 - safe < t.harm))
    if 1 - safe >= t.harm:
        return done("rollback", 0, f"Roll back {arm}: {fmt.probability(1 - safe)} probability that a guardrail "
                                   f"is harmed beyond its margin.")

    if failed:
        return done("hold", stage, f"Hold at {stage:g}%: no harm found in the sound fits, but cannot advance on "
                                   f"bad data ({', '.join(c.name for c in failed)} failed).")

    # 3. minimum exposure
    users = int(next(iter(analysis.stats.values()))["n"].sum())
    enough = days >= current.min_days and users >= current.min_users
    trace.append(RuleCheck(f"exposure at {stage:g}%", f"{days:g} days, {users:,} users",
                           f">= {current.min_days} days and {current.min_users:,} users", enough))
    if not enough:
        missing = []
        if days < current.min_days:
            missing.append(f"{current.min_days - days:g} more day(s)")
        if users < current.min_users:
            missing.append(f"{current.min_users - users:,} more users")
        return done("hold", stage, f"Hold at {stage:g}%: minimum exposure not reached ({' and '.join(missing)}).")

    # 4. primary harm, judged once the stage's minimum exposure is met
    for metric in (m for m in primaries if m.name in sound):
        row = analysis.effects[metric.name].overall(arm)
        forgone = row.loss_keep_rel
        harmed = row.p_beat_control <= 1 - t.harm and forgone < t.caring
        trace.append(RuleCheck(f"primary {metric.name}: P(beat control), expected gain forgone by rolling back",
                               f"{fmt.probability(row.p_beat_control)}, {row.loss_keep_rel:.3%}",
                               f"> {1 - t.harm:.0%} or gain forgone >= {t.caring:.2%} "
                               f"to avoid rollback", not harmed))
        if harmed:
            return done("rollback", 0, f"Roll back {arm}: {fmt.probability(1 - row.p_beat_control)} probability "
                                       f"that it makes {metric.name} worse.")

    # 5. futility
    rows = {m.name: analysis.effects[m.name].overall(arm) for m in primaries}
    flat = all(r.p_rope >= t.rope and r.loss_ship_rel < t.caring and r.loss_keep_rel < t.caring
               for r in rows.values())
    trace.append(RuleCheck("futility: P(lift inside ROPE), both losses",
                           ", ".join(f"{n} {fmt.probability(r.p_rope)}" for n, r in rows.items()),
                           f">= {t.rope:.0%} and losses < {t.caring:.2%}", not flat))
    if flat:
        return done("stop_no_effect", 0, f"Stop: {arm} makes no practical difference to "
                                         f"{', '.join(rows)} (lift confidently inside the ROPE).")

    # 6. advance / ship
    worst = max(rows.values(), key=lambda r: r.loss_ship_rel)
    share = following.percent / 100
    small_loss = worst.loss_ship_rel * share < t.caring
    trace.append(RuleCheck(f"expected relative loss at {following.percent:g}% exposure (worst primary)",
                           f"{worst.loss_ship_rel:.3%} x {share:g} = {worst.loss_ship_rel * share:.3%}",
                           f"< {t.caring:.2%}", small_loss))
    breach = (1 - safe) * share            # expected share of all users exposed to a guardrail breach
    guarded = breach <= 1 - t.guardrails_safe
    trace.append(RuleCheck(f"guardrails jointly: P(any beyond margin) at {following.percent:g}% exposure",
                           f"{fmt.probability(1 - safe)} x {share:g} = {breach:.1%}",
                           f"<= {1 - t.guardrails_safe:.0%}", guarded))
    targeted = _harmed_segments(analysis, primaries, arm, t.segment_harm)
    if targeted:
        trace.append(RuleCheck("segments confidently harmed", ", ".join(targeted),
                               f"P(harm) < {t.segment_harm:.0%} in every segment", False,
                               "consider a targeted rollout to the other segments"))
    shipping = following.percent == 100 or stage == 100
    if shipping:
        least = min(rows.values(), key=lambda r: r.p_beat_control)
        convinced = least.p_beat_control >= t.ship_beat
        trace.append(RuleCheck("to ship: P(beat control) (least convinced primary)",
                               fmt.probability(least.p_beat_control), f">= {t.ship_beat:.0%}", convinced))
        if not convinced and small_loss and guarded:
            return done("hold", stage, f"Hold at {stage:g}%: no harm seen, but only "
                                       f"{fmt.probability(least.p_beat_control)} probability that {arm} helps; "
                                       f"shipping needs {t.ship_beat:.0%}.")
    if small_loss and guarded:
        action = "ship" if shipping else "advance"
        note = f" (targeted: exclude {', '.join(targeted)})" if targeted else ""
        verb = "Ship to 100%" if action == "ship" else f"Advance to {following.percent:g}%"
        stake = f"{worst.loss_ship_rel:.3%}" + ("" if share == 1 else f" x {share:g}")
        return done(action, following.percent, f"{verb}{note}: expected loss {stake} < {t.caring:.2%}, "
                                               f"guardrails safe with {fmt.probability(safe)}.",
                    tuple(s for s in _segments(analysis) if s not in targeted) if targeted else ())

    # 7. hold
    if small_loss:
        need = (f"P(a guardrail beyond its margin) {fmt.probability(1 - safe)} is too high for "
                f"{following.percent:g}% exposure (needs <= {(1 - t.guardrails_safe) / share:.0%})")
    else:
        # the expected loss shrinks roughly like 1 / sqrt(users) while the effect's sign is uncertain
        allowed = t.caring / share
        more = int(users * ((worst.loss_ship_rel / allowed) ** 2 - 1))
        need = (f"expected loss if shipped {worst.loss_ship_rel:.3%} > {allowed:.2%} allowed for "
                f"{following.percent:g}% exposure; roughly {more:,} more users (loss ~ 1/sqrt(users)) would "
                f"bring it under if the lift is not negative")
    return done("hold", stage, f"Hold at {stage:g}%: {need}.")


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
