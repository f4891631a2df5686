"""How long must it run: the assurance of the configured decision rule, by simulation.

The experiment is simulated look by look with the spec's ramp and decision rule (the same simulator
as the stopping-rule error rates), under no effect and under the planned minimum effect. Assurance by
day ``d`` is the share of simulated experiments that reached a decision (ship, roll back or stop) on or
before day ``d``; shipping under the planned effect is the power, shipping under no effect the
false-ship rate. The classical fixed-horizon sample size is printed beside it for reference.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from bayes_ab.decision import TERMINAL_ACTIONS
from bayes_ab.errors import SpecError
from bayes_ab.metric import Role
from bayes_ab.planning.fixed_horizon import FixedHorizon, fixed_horizon_sample_size
from bayes_ab.documents import document
from bayes_ab.spec import Baseline, ExperimentSpec, PlanSettings, parse_baseline
from bayes_ab.stopping import OperatingCharacteristics, RuleComparison, compare_rules
from bayes_ab.stopping.operating import check_plan

REFERENCE_RULES = ("sequential", "fixed_horizon")

SCENARIOS = ("planned effect", "no effect")


@dataclass(frozen=True)
class ExperimentPlan:
    """Simulated assurance of the decision rule and the fixed-horizon reference for one spec and plan."""

    experiment: str
    plan: PlanSettings
    simulated: OperatingCharacteristics
    fixed_horizon: tuple[FixedHorizon, ...]
    earliest_ship: int
    compared: RuleComparison | None = None

    def assurance(self, day: float, scenario: str = "planned effect", outcomes=TERMINAL_ACTIONS) -> float:
        """Probability that the rule has ended in one of ``outcomes`` by ``day`` (any decision by default)."""
        return self.simulated.scenario(scenario).decided_by(day, outcomes)

    def expected_days(self, scenario: str = "planned effect") -> tuple[float, float]:
        """Mean days to a decision among experiments that decided, and the mean of ``min(days to
        decision, horizon)`` over all (undecided ones count as the horizon: a lower bound)."""
        s = self.simulated.scenario(scenario)
        undecided = s.experiments - len(s.stop_days)
        decided = float(np.mean(s.stop_days)) if s.stop_days else math.nan
        return decided, (sum(s.stop_days) + undecided * self.plan.days) / s.experiments

    def checkpoints(self) -> list[int]:
        """Days shown in the assurance table: each week, and the horizon."""
        days = list(range(7, self.plan.days, 7)) + [self.plan.days]
        return [d for d in days if d >= self.plan.look_every]

    def to_pandas(self) -> pd.DataFrame:
        """One row per scenario and checkpoint day: P(any decision), P(ship), P(roll back) by then."""
        rows = []
        for name in SCENARIOS:
            for day in self.checkpoints():
                rows.append({"scenario": name, "day": day, "p_decision": self.assurance(day, name),
                             "p_ship": self.assurance(day, name, ("ship",)),
                             "p_rollback": self.assurance(day, name, ("rollback",)),
                             "p_stop_no_effect": self.assurance(day, name, ("stop_no_effect",))})
        return pd.DataFrame(rows)

    def document(self) -> dict:
        """The plan as the versioned ``bayes-ab/plan`` document (:mod:`bayes_ab.documents`): the plan's settings,
        the rule's assurance by checkpoint day and scenario, the expected days to a decision, the earliest ship,
        the fixed-horizon reference per primary metric and, when rules were compared, their figures."""
        expected = {}
        for name in SCENARIOS:
            decided, bounded = self.expected_days(name)
            expected[name] = {"decided": decided, "bounded_by_horizon": bounded}
        return document("plan", {
            "experiment": self.experiment, "plan": self.plan,
            "assurance": self.to_pandas().to_dict("records"), "expected_days": expected,
            "earliest_ship": self.earliest_ship, "fixed_horizon": list(self.fixed_horizon),
            "rules": None if self.compared is None else self.compared.to_pandas().to_dict("records")})

    def text(self) -> str:
        """The plan for the console: assurance by week, days to decision, error rates, reference."""
        p, sim = self.plan, self.simulated
        lines = [f"Plan for {self.experiment}: {p.daily_users:,} users/day at 100%, planned effect "
                 f"{p.effect:+.1%}, a look every {p.look_every} day(s) up to day {p.days}, "
                 f"{p.experiments} simulated experiments per scenario (rule '{sim.rule}')"]
        table = self.to_pandas()
        for name in SCENARIOS:
            part = table[table["scenario"] == name]
            by_day = ", ".join(f"day {d}: {a:.0%} (ship {s:.0%})"
                               for d, a, s in zip(part["day"], part["p_decision"], part["p_ship"]))
            mean_decided, restricted = self.expected_days(name)
            when = ("no experiment reached a decision" if math.isnan(mean_decided) else
                    f"mean {mean_decided:.1f} days among those that decided; {restricted:.1f} counting "
                    f"undecided as {p.days}")
            lines.append(f"  {name}: decided by {by_day}")
            lines.append(f"    days to decision: {when}")
        lines.append(f"  the ramp's minimum exposure alone allows shipping from day {self.earliest_ship} at this traffic")
        null = sim.scenario("no effect")
        lines.append(f"  false-ship rate {sim.false_ship:.1%} (+/- {null.standard_error('ship'):.1%}); "
                     f"power (ship under the planned effect by day {p.days}) {sim.power:.1%}")
        warning = sim.false_ship_warning()
        if warning:
            lines.append(f"  WARNING: {warning}")
        lines += ["  reference: " + f.text() for f in self.fixed_horizon]
        if self.compared is not None:
            lines += [""] + self.compared.text().splitlines()
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head, *rest = self.text().splitlines()
        table = self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.1%}")
        return (f"<p>{html.escape(head)}</p>{table}<pre>"
                + html.escape("\n".join(line.strip() for line in rest)) + "</pre>")


def plan_settings(
    spec: ExperimentSpec,
    *,
    daily_users: int | None = None,
    baseline: Mapping[str, Any] | None = None,
    effect: float | None = None,
    days: int | None = None,
    look_every: int | None = None,
    experiments: int | None = None,
    correlation: float | None = None,
) -> PlanSettings:
    """The spec's ``plan:`` with the given settings replaced (or a new plan when the spec has none).

    ``baseline`` maps primary (and guardrail) metric names to a :class:`Baseline` or to what a spec file would hold
    (a rate; ``{mean, dispersion}`` for counts; ``{mean, sd}`` for means).
    """
    base = spec.plan
    if base is None and (daily_users is None or baseline is None):
        raise SpecError(f"{spec.source}: no plan: section, so the daily traffic and a baseline for every "
                        "primary metric must be given")
    parsed = dict(base.baseline) if base else {}
    for name, raw in (baseline or {}).items():
        metric = spec.metric(name)
        if metric.role not in (Role.PRIMARY, Role.GUARDRAIL):
            raise SpecError(f"baseline for {name!r}: only primary metrics and guardrails are simulated "
                            f"(it is a {metric.role})")
        parsed[name] = raw if isinstance(raw, Baseline) else parse_baseline(raw, metric, f"baseline {name!r}")
    settings = base or PlanSettings(daily_users=0, baseline={})
    changes = {k: v for k, v in dict(daily_users=daily_users, effect=effect, days=days, look_every=look_every,
                                     experiments=experiments, correlation=correlation).items() if v is not None}
    plan = replace(settings, baseline=parsed, **changes)
    check_plan(spec, plan)
    return plan


def plan_experiment(
    spec: ExperimentSpec,
    plan: PlanSettings | None = None,
    *,
    rule: str = "default",
    seed: int = 0,
    workers: int = 1,
    alpha: float = 0.05,
    power: float = 0.8,
    references: bool = True,
) -> ExperimentPlan:
    """Simulate the decision rule under ``plan`` (the spec's by default) and compute the reference.

    Parameters
    ----------
    spec
        Arms (their weights are the split), primary metrics, ramp and decision thresholds.
    plan
        Daily traffic, baselines, planned effect, horizon, look interval and simulated experiments;
        build one with :func:`plan_settings`.
    rule, seed, workers
        As for :func:`bayes_ab.stopping.simulate`.
    alpha, power
        Of the fixed-horizon reference sample size.
    references
        Also run the reference rules (sequential mSPRT on the same ramp, fixed horizon) on the same
        simulated experiments and print them beside the rule.
    """
    plan = plan or spec.plan
    if plan is None:
        raise SpecError(f"{spec.source}: plan: is required (daily_users, baseline, effect, ...); "
                        "see bayes_ab.planning.plan_settings")
    compared = compare_rules(spec, plan, rules=(rule,) + tuple(r for r in REFERENCE_RULES if r != rule) if references
                             else (rule,), seed=seed, workers=workers)
    weights = {a.name: a.weight for a in spec.arms}
    total = sum(weights.values())
    control = weights[spec.control.name]
    ratio = min(w for name, w in weights.items() if name != spec.control.name) / control
    fixed = tuple(fixed_horizon_sample_size(m, plan.baseline[m.name], plan.effect, ratio=ratio, alpha=alpha,
                                            power=power, daily_users=plan.daily_users,
                                            control_share=control / total,
                                            variance_factor=1 - plan.covariate_correlation.get(m.name, 0.0) ** 2)
                  for m in spec.metrics if m.role == Role.PRIMARY)
    return ExperimentPlan(spec.name, plan, compared.rules[0], fixed, earliest_ship_day(spec, plan.daily_users),
                          compared if references else None)


def earliest_ship_day(spec: ExperimentSpec, daily_users: int) -> int:
    """The first day the rule can ship if every look is favourable: each stage before the last must
    reach its minimum days and the cumulative minimum users (a one-stage ramp: its own minimum)."""
    stages = spec.ramp[:-1] or spec.ramp
    day, users = 0, 0.0
    for stage in stages:
        per_day = daily_users * spec.traffic_share(stage.percent)
        needed = max(stage.min_days, math.ceil(max(stage.min_users - users, 0) / per_day), 1)
        day, users = day + needed, users + needed * per_day
    return day
