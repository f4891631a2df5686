"""The default rule's looks recorded once; its outcome under any thresholds computed from the record.

Calibrating a plan (:mod:`bayes_ab.planning.calibration`) asks the same question of many threshold sets: how
often does the rule ship, roll back or stop on this plan's simulated experiments? Simulating every set again
would take minutes each. But the thresholds a calibration moves (``ship_beat``, ``harm``, ``severe_harm``,
``guardrails_safe``) only decide *whether a look ends the experiment*: until it ends, a run's path -- its
stages, the users it sees, the posterior draws at each look -- is the same whatever they are. So each
simulated experiment runs once to its horizon under thresholds no probability reaches, and at every look
:func:`~bayes_ab.decision.decide` is asked as usual and its checks are kept: every probability that can end the
run, less its Monte Carlo band (what decide compares with the limit: ``p - 2 MC SE >= limit``), and the facts
the calibrated thresholds do not move (the stage decides, its exposure is met, the sample ratio holds,
futility, the loss check). The outcome under any thresholds is the first look where one of them clears: a few
array comparisons over every experiment at once.

:func:`outcomes` is meant to give exactly what the real rule gives on the same worlds;
``tests/stopping/test_recording.py`` runs :class:`~bayes_ab.stopping.rules.DefaultRule` under random
thresholds beside it and requires the same outcome on the same day in every experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from bayes_ab.decision import Action, decide
from bayes_ab.decision.rules import UNDECIDED_SE
from bayes_ab.metric import Role
from bayes_ab.spec import DecisionThresholds, ExperimentSpec, PlanSettings
from bayes_ab.stopping.operating import (RULES, check_plan, run_experiments, run_world, scenarios, seeds,
                                         simulated_metrics, truths_for)
from bayes_ab.stopping.rules import DefaultRule, Look

NEVER = 2.0
"""A threshold no probability reaches: the recorded run goes on to its horizon (or to futility, which the
calibrated thresholds do not move)."""
CALIBRATED = ("ship_beat", "harm", "severe_harm", "guardrails_safe")
"""The thresholds an outcome can be computed for from a record."""
_ABSENT = -np.inf


@dataclass(frozen=True)
class RecordedScenario:
    """Every look of every simulated experiment of one scenario, as arrays ``(experiments, looks)``.

    ``day`` is 0 past the end of an experiment's record. The scores are ``p - 2 MC SE`` of what each check
    compares with its limit (``-inf`` where the check was not asked): ``severe`` the largest over the judged
    metrics of P(worse by more than the severe margin); ``harm`` at the deciding stage the largest of a
    primary's P(worse than control) when rolling back forgoes little, and of a guardrail's P(worse than its
    margin); ``ship`` the least convinced primary's P(beat control); ``safe`` P(every guardrail within its
    margin). ``judged`` is the number of primaries and guardrails the family-wise thresholds are split over.
    """

    name: str
    lift: float
    guardrail_lift: float
    breached: str
    judged: int
    horizon: int
    day: np.ndarray
    deciding: np.ndarray
    gated: np.ndarray
    enough: np.ndarray
    stop: np.ndarray
    loss_ok: np.ndarray
    severe: np.ndarray
    harm: np.ndarray
    ship: np.ndarray
    safe: np.ndarray

    @property
    def experiments(self) -> int:
        return int(self.day.shape[0])


@dataclass(frozen=True)
class Outcomes:
    """What the rule does in every experiment of a recorded scenario under one set of thresholds."""

    name: str
    outcome: np.ndarray     # "ship", "rollback", "stop_no_effect" or "undecided" per experiment
    day: np.ndarray         # the day it ended (the horizon when undecided)

    def rate(self, outcome: str) -> float:
        return float(np.mean(self.outcome == outcome))

    def standard_error(self, outcome: str) -> float:
        p = self.rate(outcome)
        return float(np.sqrt(max(p * (1 - p), 1e-12) / self.outcome.size))

    def median_day(self, outcome: str) -> float:
        days = self.day[self.outcome == outcome]
        return float(np.median(days)) if days.size else float("nan")


def outcomes(record: RecordedScenario, thresholds: DecisionThresholds) -> Outcomes:
    """The first look at which the rule under ``thresholds`` ends each experiment, and how.

    At a look, in :func:`~bayes_ab.decision.decide`'s order: a failed sample-ratio gate holds; severe harm
    rolls back at any stage; at the deciding stage harm rolls back; futility stops; a ship needs the
    deciding stage, its exposure, the loss check, the least convinced primary and the guardrails together.
    """
    severe = DecisionThresholds.per_metric(thresholds.severe_harm, record.judged)
    harm = DecisionThresholds.per_metric(thresholds.harm, record.judged)
    open_ = (record.day > 0) & ~record.gated
    rollback = open_ & ((record.severe >= severe) | (record.deciding & (record.harm >= harm)))
    stop = open_ & record.stop
    ship = (open_ & record.deciding & record.enough & record.loss_ok & (record.ship >= thresholds.ship_beat)
            & (record.safe >= thresholds.guardrails_safe))
    ended = rollback | stop | ship
    first = np.argmax(ended, axis=1)
    rows = np.arange(record.experiments)
    any_end = ended[rows, first]
    result = np.where(~any_end, "undecided",
                      np.where(rollback[rows, first], Action.ROLLBACK.value,
                               np.where(stop[rows, first], Action.STOP_NO_EFFECT.value, Action.SHIP.value)))
    day = np.where(any_end, record.day[rows, first], record.horizon)
    return Outcomes(record.name, result, day)


def never_thresholds(spec: ExperimentSpec) -> ExperimentSpec:
    """``spec`` with every calibrated threshold out of reach: a run records all its looks."""
    return replace(spec, decision=replace(spec.decision, **{name: NEVER for name in CALIBRATED}))


class RecordingRule(DefaultRule):
    """The default rule with its ending checks out of reach, keeping each look's scores (see the module)."""

    def __init__(self, spec: ExperimentSpec, simulated: list):
        self.never = never_thresholds(spec)
        primaries = spec.metrics_in(Role.PRIMARY)
        self.primaries = [m.name for m in primaries]
        self.judged = len(primaries) + sum(1 for m in simulated if m.role == Role.GUARDRAIL)
        self.looks: list[tuple] = []

    def decide(self, look: Look) -> str:
        spec, t = look.spec, look.spec.decision
        users, arm, evidence, gates = self.inputs(look, self.never)
        rec = decide(self.never, look.stage, look.days_at_stage, users, arm, evidence, gates)
        checks = rec.reasons
        gated = any(c.blocking and not c.passed and c.name.startswith("sample ratio") for c in checks)

        def score(prefix: str) -> float:
            found = [c.probability - UNDECIDED_SE * (c.mcse or 0.0) for c in checks
                     if c.name.startswith(prefix) and c.probability is not None]
            return max(found) if found else _ABSENT

        # decide checks each primary's harm in spec order; one rolls back only while rolling back forgoes an
        # expected gain below ``caring`` (a fixed threshold: read off the evidence)
        primary_harm = [c for c in checks if c.name.startswith("harm: primary ")]
        forgone = [evidence[name].loss_keep_rel < t.caring for name in self.primaries if name in evidence]
        eligible = [c.probability - UNDECIDED_SE * (c.mcse or 0.0) for c, ok in zip(primary_harm, forgone) if ok]
        harm = max(eligible + [score("harm: guardrail ")], default=_ABSENT)
        loss = next((c for c in checks if c.name.startswith("to ship: expected relative loss")), None)
        exposure = next((c for c in checks if c.name.startswith("exposure at")), None)
        self.looks.append((look.day, look.stage >= spec.max_power_stage, gated,
                           exposure is not None and exposure.passed, rec.action == Action.STOP_NO_EFFECT,
                           loss is not None and loss.passed, score("severe harm: "), harm,
                           score("to ship: P(beat control)"), score("to ship: P(every guardrail")))
        return rec.action


def record(spec: ExperimentSpec, plan: PlanSettings | None = None, *, scenario_names: tuple[str, ...] | None = None,
           experiments: int | None = None, seed: int = 0, workers: int = 1) -> dict[str, RecordedScenario]:
    """Record the default rule's looks in the plan's scenarios (all but the learned prior by default), on the
    very worlds :func:`~bayes_ab.stopping.compare_rules` simulates for the same seed.

    Raises
    ------
    SpecError
        When the plan cannot be simulated, or the deciding stage's success would advance to another stage
        (its path would then depend on the thresholds, and a record could not stand for every set).
    """
    from bayes_ab.errors import SpecError

    plan = replace(plan or spec.plan, experiments=experiments or (plan or spec.plan).experiments)
    check_plan(spec, plan)
    stages = [s.percent for s in spec.ramp]
    following = stages[min(stages.index(spec.max_power_stage) + 1, len(stages) - 1)]
    if following != 100:
        raise SpecError(f"{spec.source}: decision.max_power_stage: {spec.max_power_stage:g}% is followed by "
                        f"{following:g}%; calibration needs the deciding stage to ship to 100%")
    found = {}
    for name, (lift, guardrail_lift, breached) in scenarios(spec, plan).items():
        if scenario_names is not None and name not in scenario_names or np.isnan(lift):
            continue
        jobs = [(spec, plan, lift, guardrail_lift, breached, seeds(seed, name, spec, plan, i))
                for i in range(plan.experiments)]
        runs = run_experiments(_record_job, jobs, workers)
        judged = len(spec.metrics_in(Role.PRIMARY)) + sum(1 for m in simulated_metrics(spec, plan)
                                                          if m.role == Role.GUARDRAIL)
        found[name] = _stack(name, lift, guardrail_lift, breached, judged, plan.days, runs)
    return found


def _record_job(job) -> list[tuple]:
    spec, plan, lift, guardrail_lift, breached, seed_sequence = job
    world_rng = np.random.default_rng(seed_sequence)
    stream = seed_sequence.spawn(len(RULES))[RULES.index("default")]     # the default rule's own draws
    recorder = RecordingRule(spec, simulated_metrics(spec, plan))
    run_world(spec, truths_for(spec, plan, lift, guardrail_lift, breached), [recorder],
              daily_users=plan.daily_users, days=plan.days, look_every=plan.look_every, effect=plan.effect,
              world_rng=world_rng, rule_rngs=[np.random.default_rng(stream)], correlation=plan.correlation)
    return recorder.looks


def _stack(name: str, lift: float, guardrail_lift: float, breached: str, judged: int, horizon: int,
           runs: list[list[tuple]]) -> RecordedScenario:
    width = max((len(r) for r in runs), default=0) or 1
    fields = list(zip(*[(i, k, *look) for i, run in enumerate(runs) for k, look in enumerate(run)]))
    shape = (len(runs), width)

    def array(position: int, fill, dtype):
        out = np.full(shape, fill, dtype=dtype)
        if fields:
            out[np.array(fields[0]), np.array(fields[1])] = np.array(fields[position + 2], dtype=dtype)
        return out

    return RecordedScenario(
        name=name, lift=lift, guardrail_lift=guardrail_lift, breached=breached, judged=judged, horizon=horizon,
        day=array(0, 0, int), deciding=array(1, False, bool), gated=array(2, False, bool),
        enough=array(3, False, bool), stop=array(4, False, bool), loss_ok=array(5, False, bool),
        severe=array(6, _ABSENT, float), harm=array(7, _ABSENT, float), ship=array(8, _ABSENT, float),
        safe=array(9, _ABSENT, float))
