"""Operating characteristics of a stopping rule, by simulating whole experiments look by look.

Each simulated experiment starts at the first ramp stage; every ``look_every`` days the rule sees the
cumulative statistics of the primary metrics and says what to do. ``advance`` moves traffic to the
next stage, ``ship``, ``rollback`` and ``stop_no_effect`` end the experiment, ``hold`` continues; an
experiment still running at the horizon is ``undecided``. Run under no effect (the false-ship rate)
and under the planned effect (power), this shows what looking at the data every day costs.

Posteriors come from the conjugate closed forms (unpooled, one segment) so that thousands of
experiments finish in minutes; guardrails are not simulated (they are assumed unaffected).
"""

from __future__ import annotations

import html
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Collection

import numpy as np
import pandas as pd

from bayes_ab.analysis import Analysis, analyze_stats
from bayes_ab.decision import TERMINAL_ACTIONS, recommend
from bayes_ab.display import HtmlRepr
from bayes_ab.effects import format as fmt
from bayes_ab.errors import SpecError
from bayes_ab.files import write_atomically
from bayes_ab.stopping.generate import Accumulator, accumulator
from bayes_ab.spec import Baseline, ExperimentSpec, PlanSettings, SamplerSettings, Stage, parse_baseline

OUTCOMES = TERMINAL_ACTIONS + ("undecided",)
RULES = ("default", "naive")
NAIVE_THRESHOLD = 0.95
FAST_POSTERIOR = SamplerSettings(draws=1000, chains=2, backend="conjugate")


@dataclass(frozen=True)
class ScenarioResult(HtmlRepr):
    """Outcomes of ``experiments`` simulated experiments with true relative ``lift``.

    ``rates`` maps each outcome to its share; ``stop_days`` holds the day each decided experiment
    stopped; ``final_stage`` counts experiments by the last stage they ran at.
    """

    name: str
    lift: float
    experiments: int
    rates: dict[str, float]
    stop_days: tuple[int, ...]
    stop_outcomes: tuple[str, ...]
    final_stage: dict[str, int]

    def decided_by(self, day: float, outcomes: Collection[str] = TERMINAL_ACTIONS) -> float:
        """Share of all experiments that ended in one of ``outcomes`` on or before ``day``."""
        return sum(1 for o, d in zip(self.stop_outcomes, self.stop_days) if d <= day and o in outcomes) / self.experiments

    def standard_error(self, outcome: str) -> float:
        """Monte Carlo standard error of an outcome's rate."""
        p = self.rates[outcome]
        return float(np.sqrt(max(p * (1 - p), 1e-12) / self.experiments))

    def stop_quantiles(self) -> tuple[float, float, float]:
        """10th, 50th and 90th percentile of the stopping day among decided experiments (NaN if none)."""
        if not self.stop_days:
            return (float("nan"),) * 3
        return tuple(float(q) for q in np.percentile(self.stop_days, [10, 50, 90]))


@dataclass(frozen=True)
class OperatingCharacteristics:
    """The simulated behaviour of one rule under no effect and under the planned effect."""

    experiment: str
    rule: str
    plan: PlanSettings
    scenarios: tuple[ScenarioResult, ...]

    def scenario(self, name: str) -> ScenarioResult:
        """The scenario called ``name`` (``no effect`` or ``planned effect``)."""
        return next(s for s in self.scenarios if s.name == name)

    @property
    def false_ship(self) -> float:
        """Share of no-effect experiments that ended in ``ship``."""
        return self.scenario("no effect").rates["ship"]

    @property
    def power(self) -> float:
        """Share of planned-effect experiments that ended in ``ship``."""
        return self.scenario("planned effect").rates["ship"]

    def to_pandas(self) -> pd.DataFrame:
        """One row per scenario: outcome rates with standard errors and stopping-day quantiles."""
        rows = []
        for s in self.scenarios:
            p10, p50, p90 = s.stop_quantiles()
            rows.append({"scenario": s.name, "true_lift": s.lift, "experiments": s.experiments,
                         **{o: s.rates[o] for o in OUTCOMES},
                         **{f"{o}_se": s.standard_error(o) for o in ("ship", "rollback")},
                         "stop_day_p10": p10, "stop_day_median": p50, "stop_day_p90": p90})
        return pd.DataFrame(rows)

    def text(self) -> str:
        """The figures a reader of the analysis needs beside the stopping rule."""
        p = self.plan
        lines = [f"Stopping rule '{self.rule}' simulated: {p.experiments} experiments per scenario, "
                 f"{p.daily_users:,} users/day at 100%, a look every {p.look_every} day(s) up to day {p.days}"]
        for s in self.scenarios:
            p10, p50, p90 = s.stop_quantiles()
            rates = ", ".join(f"{o} {s.rates[o]:.1%}" for o in OUTCOMES)
            days = "no decisions" if np.isnan(p50) else f"stopping day median {p50:g} (10-90%: {p10:g}-{p90:g})"
            lines.append(f"  {s.name} (true lift {fmt.relative(s.lift)}): {rates}; {days}")
        null = self.scenario("no effect")
        lines.append(f"  false-ship rate {self.false_ship:.1%} (+/- {null.standard_error('ship'):.1%}), "
                     f"power {self.power:.1%}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.text().splitlines()[0])}</p>"
                + self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}"))

    def to_json(self) -> str:
        """Serialised form (see :func:`load_operating_characteristics`)."""
        return json.dumps(asdict(self), indent=2)

    def save(self, models_dir: str | Path = "models") -> Path:
        """Write to ``<models_dir>/<experiment>/operating_<rule>.json`` (atomically)."""
        folder = Path(models_dir) / self.experiment
        folder.mkdir(parents=True, exist_ok=True)
        return write_atomically(folder / f"operating_{self.rule}.json", lambda tmp: tmp.write_text(self.to_json()))


def load_operating_characteristics(path: str | Path) -> OperatingCharacteristics:
    """Read what :meth:`OperatingCharacteristics.save` wrote."""
    raw = json.loads(Path(path).read_text())
    plan = raw["plan"]
    plan = PlanSettings(**{**plan, "baseline": {k: Baseline(**v) for k, v in plan["baseline"].items()}})
    scenarios = tuple(ScenarioResult(**{**s, "stop_days": tuple(s["stop_days"]),
                                        "stop_outcomes": tuple(s["stop_outcomes"])})
                      for s in raw["scenarios"])
    return OperatingCharacteristics(raw["experiment"], raw["rule"], plan, scenarios)


def stored_operating_characteristics(experiment: str, models_dir: str | Path = "models"
                                     ) -> tuple[OperatingCharacteristics, ...]:
    """The error rates ``bayes-ab simulate`` stored for ``experiment`` (default rule first; may be empty)."""
    folder = Path(models_dir) / experiment
    return tuple(load_operating_characteristics(folder / f"operating_{rule}.json")
                 for rule in RULES if (folder / f"operating_{rule}.json").exists())


def simulate(
    spec: ExperimentSpec,
    plan: PlanSettings | None = None,
    *,
    rule: str = "default",
    experiments: int | None = None,
    seed: int = 0,
    workers: int = 1,
) -> OperatingCharacteristics:
    """Simulate ``experiments`` experiments under no effect and under ``plan.effect`` with ``rule``.

    Parameters
    ----------
    spec
        Experiment spec: arms, primary metrics, ramp plan and decision thresholds.
    plan
        Traffic, horizon, looks, effect and baselines; ``spec.plan`` by default.
    rule
        ``default``: the spec's decision rule with its ramp. ``naive``: ship as soon as every
        primary has P(beat control) > 95% at a look, at the last stage's traffic before 100%.
    experiments
        Per scenario; ``plan.experiments`` by default.
    seed
        Experiment ``i`` of a scenario always uses the same random stream, whatever ``workers``.
    workers
        Processes to spread the experiments over.
    """
    plan = plan or spec.plan
    if plan is None:
        raise SpecError(f"{spec.source}: plan: is required to simulate (daily_users, baseline, effect, ...)")
    if rule not in RULES:
        raise SpecError(f"rule {rule!r} is not one of {', '.join(RULES)}")
    plan = replace(plan, experiments=experiments or plan.experiments)
    check_plan(spec, plan)
    scenarios = []
    for index, (name, lift) in enumerate((("no effect", 0.0), ("planned effect", plan.effect))):
        jobs = [(spec, plan, rule, lift, np.random.SeedSequence([seed, index, i]))
                for i in range(plan.experiments)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_run_one, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
        else:
            results = [_run_one(job) for job in jobs]
        scenarios.append(_summarise(name, lift, results))
    return OperatingCharacteristics(spec.name, rule, plan, tuple(scenarios))


def check_plan(spec: ExperimentSpec, plan: PlanSettings) -> None:
    """Raise :class:`SpecError` naming the setting when ``plan`` cannot be simulated for ``spec``."""
    where = f"{spec.source}: plan"
    for name in ("daily_users", "days", "look_every", "experiments"):
        value = getattr(plan, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SpecError(f"{where}.{name}: must be an integer >= 1, got {value!r}")
    if not np.isfinite(plan.effect) or plan.effect <= 0:
        raise SpecError(f"{where}.effect: must be a positive relative improvement (0.05 = 5%), got {plan.effect!r}; "
                        "an effect of zero cannot be planned for")
    if plan.look_every > plan.days:
        raise SpecError(f"{where}.look_every: {plan.look_every} days between looks exceeds the {plan.days}-day horizon")
    primaries = [m for m in spec.metrics if m.role == "primary"]
    if not primaries:
        raise SpecError(f"{spec.source}: metrics: planning needs at least one metric with role 'primary'")
    missing = [m.name for m in primaries if m.name not in plan.baseline]
    if missing:
        raise SpecError(f"{where}.baseline: no baseline for primary metric(s) {', '.join(missing)}")
    for metric in primaries:
        b = plan.baseline[metric.name]
        raw = b.value if metric.family in ("conversion", "retention") else \
            {"mean": b.value, **({} if b.spread is None else {"dispersion" if metric.family == "count" else "sd": b.spread})}
        parse_baseline(raw, metric.family, f"{where}.baseline.{metric.name}")
        if metric.family in ("conversion", "retention") and metric.direction == "increase" and b.value * (1 + plan.effect) >= 1:
            raise SpecError(f"{where}.baseline.{metric.name}: a {plan.effect:.0%} improvement of the rate "
                            f"{b.value} exceeds 1")


def _summarise(name: str, lift: float, results: list[tuple[str, int, float]]) -> ScenarioResult:
    outcomes = [r[0] for r in results]
    stages: dict[str, int] = {}
    for _, _, stage in results:
        stages[f"{stage:g}%"] = stages.get(f"{stage:g}%", 0) + 1
    decided = [(outcome, day) for outcome, day, _ in results if outcome in TERMINAL_ACTIONS]
    return ScenarioResult(name, lift, len(results), {o: outcomes.count(o) / len(results) for o in OUTCOMES},
                          tuple(day for _, day in decided), tuple(outcome for outcome, _ in decided), stages)


def _run_one(job) -> tuple[str, int, float]:
    """One simulated experiment -> (outcome, day it ended, last stage)."""
    spec, plan, rule, lift, seed_sequence = job
    rng = np.random.default_rng(seed_sequence)
    primaries = [m for m in spec.metrics if m.role == "primary"]
    accumulators = [accumulator(m, plan.baseline[m.name], lift, spec.arm_names) for m in primaries]
    ramp = spec.ramp if rule == "default" else (_naive_stage(spec.ramp),)
    decide = spec_rule_decision if rule == "default" else _naive_decision
    return run_experiment(spec, accumulators, ramp, decide, daily_users=plan.daily_users, days=plan.days,
                          look_every=plan.look_every, rng=rng)


def run_experiment(
    spec: ExperimentSpec,
    accumulators: list[Accumulator],
    ramp: tuple[Stage, ...],
    decide: Callable[[Analysis, float, float], str],
    *,
    daily_users: int,
    days: int,
    look_every: int,
    rng: np.random.Generator,
    stage_index: int = 0,
    days_at_stage: float = 0.0,
    ends: Collection[str] = TERMINAL_ACTIONS,
) -> tuple[str, int, float]:
    """Simulate ``days`` more days of one experiment, looking every ``look_every`` days.

    Each day the current stage's share of ``daily_users`` is split over the arms by their weights and
    added to the accumulators; at a look ``decide(analysis, stage, days at stage)`` gives an action.
    An action in ``ends`` ends the run; ``advance`` moves to the next stage of ``ramp``.

    Returns
    -------
    (outcome, day, stage)
        The ending action (``undecided`` if none), the simulated day it came on and the stage then.
    """
    sim_spec = replace(spec, metrics=tuple(a.metric for a in accumulators))
    weights = np.array([next(a.weight for a in spec.arms if a.name == arm) for arm in spec.arm_names])
    weights = weights / weights.sum()
    started = -days_at_stage
    for day in range(1, days + 1):
        users = rng.multinomial(int(round(daily_users * ramp[stage_index].percent / 100)), weights)
        for acc in accumulators:
            acc.add_day(rng, users)
        if day % look_every:
            continue
        stats = {acc.metric.name: acc.stats() for acc in accumulators}
        analysis = analyze_stats(sim_spec, stats, sampler=replace(FAST_POSTERIOR, seed=int(rng.integers(1 << 31))))
        action = decide(analysis, ramp[stage_index].percent, day - started)
        if action in ends:
            return action, day, ramp[stage_index].percent
        if action == "advance":
            stage_index, started = min(stage_index + 1, len(ramp) - 1), day
    return "undecided", days, ramp[stage_index].percent


def _naive_stage(ramp: tuple[Stage, ...]) -> Stage:
    below = [s for s in ramp if s.percent < 100]
    return replace(below[-1] if below else ramp[-1], min_days=0, min_users=0)


def spec_rule_decision(analysis: Analysis, stage: float, days: float) -> str:
    """The action of the spec's decision rule (:func:`bayes_ab.decision.recommend`)."""
    return recommend(analysis, stage, days).action


def _naive_decision(analysis: Analysis, stage: float, days: float) -> str:
    arm_ok = all(max(e.overall(arm).p_beat_control for arm in e.treatments) > NAIVE_THRESHOLD
                 for e in analysis.effects.values())
    return "ship" if arm_ok else "hold"

