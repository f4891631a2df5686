"""Operating characteristics of stopping rules, by simulating whole experiments look by look.

Each simulated experiment is one world of users (see :mod:`bayes_ab.stopping.generate`); every rule
compared runs on the same worlds (common random numbers), starting at its first ramp stage. Every
``look_every`` days a rule sees the cumulative statistics of the primary metrics and of the guardrails
the plan gives a baseline for: ``advance`` moves traffic to the next stage; ``ship``, ``rollback`` and
``stop_no_effect`` end the experiment; ``hold`` continues; an experiment still running at the horizon
is ``undecided``.

Scenarios (true relative effects in each metric's good direction):

- ``no effect``: nothing changes (the false-ship and false-rollback rates);
- ``planned effect``: every primary improves by the plan's effect (power, time to ship);
- ``harmful``: every primary worsens by the plan's effect (rollback rate and the treatment user-days
  exposed to the harm before the run ended);
- ``guardrail breach: <guardrail>``: one per simulated guardrail: primaries improve by the plan's effect
  while that guardrail alone worsens by twice its margin (run for every guardrail with a baseline);
- ``learned prior``: each experiment's true effect is drawn from the first primary's learned prior
  (``prior: {learned: ...}``; run only when it has one), so the rates are what the organisation's own
  history implies: how often the rule ships, how often what it ships was in truth no better than control,
  and how often it rolls back a real improvement.

Metrics are drawn with a per-user correlation (``plan.correlation``; see :class:`~bayes_ab.spec.PlanSettings`).
Posteriors come from the conjugate closed forms (unpooled, one segment), so thousands of experiments
finish in minutes.
"""

from __future__ import annotations

import html
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.decision import TERMINAL_ACTIONS, Action
from bayes_ab.display import HtmlRepr
from bayes_ab.documents import document
from bayes_ab import format as fmt
from bayes_ab.errors import SpecError
from bayes_ab.files import write_atomically
from bayes_ab.families import family_for
from bayes_ab.metric import Role
from bayes_ab.spec import Baseline, ExperimentSpec, Metric, PlanSettings
from bayes_ab.stopping.generate import Truth, accumulator, factors_for, truth
from bayes_ab.stopping.rules import RULES, Look, RuleName, SimulatedRule, rule

OUTCOMES = TERMINAL_ACTIONS + ("undecided",)
SCENARIOS = ("no effect", "planned effect", "harmful", "guardrail breach", "learned prior")
"""The kinds of scenario, in the order they run and are shown; a breach is run per guardrail, named
``guardrail breach: <guardrail>``."""
BREACH = "guardrail breach"
LEARNED = "learned prior"
LEARNED_CLIP = 0.9            # true effects drawn from a (fat-tailed) learned prior are clipped to +/-90%
BREACH_MARGINS = 2.0          # the guardrail-breach scenario worsens a guardrail by twice its margin
FALSE_SHIP_TARGET = 0.05      # the false-ship rate under daily looks the default thresholds are chosen for


@dataclass(frozen=True)
class ScenarioResult(HtmlRepr):
    """Outcomes of ``experiments`` simulated experiments with true relative ``lift`` of the primaries
    (and ``guardrail_lift`` of the guardrail ``breached``; negative is worse).

    ``rates`` maps each outcome to its share; ``stop_days`` and ``stop_outcomes`` hold the day and the
    action of every decided experiment; ``final_stage`` counts experiments by the last stage they ran at;
    ``max_power_days`` the first day each experiment ran at the maximum-power stage (0: never);
    ``exposure`` the treatment user-days of each experiment before it ended (or the horizon).
    """

    name: str
    lift: float
    experiments: int
    rates: dict[str, float]
    stop_days: tuple[int, ...]
    stop_outcomes: tuple[str, ...]
    final_stage: dict[str, int]
    guardrail_lift: float = 0.0
    max_power_days: tuple[int, ...] = ()
    exposure: tuple[float, ...] = ()
    lifts: tuple[float, ...] = ()
    """Each experiment's true lift of the primaries (good direction); drawn per experiment in the learned-prior
    scenario, where ``lift`` is NaN."""
    outcomes: tuple[str, ...] = ()
    """Each experiment's outcome, in the order of ``lifts``."""
    breached: str = ""
    """The guardrail worsened in a breach scenario."""

    @property
    def kind(self) -> str:
        """The scenario's kind (one of :data:`SCENARIOS`): its name without the breached guardrail."""
        return self.name.split(":", 1)[0]

    def share(self, outcome: str, harmful: bool) -> float:
        """Share of all experiments that ended in ``outcome`` with a true lift <= 0 (``harmful``) or > 0."""
        if not self.lifts:
            return float("nan")
        hits = sum(1 for o, x in zip(self.outcomes, self.lifts) if o == outcome and (x <= 0) == harmful)
        return hits / self.experiments

    def decided_by(self, day: float, outcomes: Collection[str] = TERMINAL_ACTIONS) -> float:
        """Share of all experiments that ended in one of ``outcomes`` on or before ``day``."""
        return sum(1 for o, d in zip(self.stop_outcomes, self.stop_days) if d <= day and o in outcomes) / self.experiments

    def standard_error(self, outcome: str) -> float:
        """Monte Carlo standard error of an outcome's rate."""
        p = self.rates[outcome]
        return float(np.sqrt(max(p * (1 - p), 1e-12) / self.experiments))

    def stop_quantiles(self, outcomes: Collection[str] = TERMINAL_ACTIONS) -> tuple[float, float, float]:
        """10th, 50th and 90th percentile of the stopping day among experiments that ended in one of
        ``outcomes`` (NaN if none)."""
        days = [d for o, d in zip(self.stop_outcomes, self.stop_days) if o in outcomes]
        if not days:
            return (float("nan"),) * 3
        return tuple(float(q) for q in np.percentile(days, [10, 50, 90]))

    def median_max_power_day(self) -> float:
        """Median over all experiments of the first day at the maximum-power stage (never: infinity)."""
        if not self.max_power_days:
            return float("nan")
        return float(np.median([d if d > 0 else np.inf for d in self.max_power_days]))

    def median_exposure(self) -> float:
        """Median treatment user-days before the experiment ended."""
        return float(np.median(self.exposure)) if self.exposure else float("nan")


@dataclass(frozen=True)
class OperatingCharacteristics:
    """The simulated behaviour of one rule in every scenario."""

    experiment: str
    rule: str
    plan: PlanSettings
    scenarios: tuple[ScenarioResult, ...]

    def scenario(self, name: str) -> ScenarioResult:
        """The scenario called ``name`` (one of :data:`SCENARIOS` that was run)."""
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
        """One row per scenario: outcome rates with standard errors, decision days, exposure."""
        rows = []
        for s in self.scenarios:
            p10, p50, p90 = s.stop_quantiles()
            rows.append({"rule": self.rule, "scenario": s.name, "true_lift": s.lift, "guardrail_lift": s.guardrail_lift,
                         "experiments": s.experiments, **{o: s.rates[o] for o in OUTCOMES},
                         **{f"{o}_se": s.standard_error(o) for o in ("ship", "rollback")},
                         "stop_day_p10": p10, "stop_day_median": p50, "stop_day_p90": p90,
                         "ship_day_median": s.stop_quantiles(("ship",))[1],
                         "rollback_day_median": s.stop_quantiles(("rollback",))[1],
                         "max_power_day_median": s.median_max_power_day(),
                         "treatment_user_days_median": s.median_exposure(),
                         "ship_true_harm": s.share("ship", True), "rollback_true_gain": s.share("rollback", False)})
        return pd.DataFrame(rows)

    def text(self) -> str:
        """The figures a reader of the analysis needs beside the stopping rule."""
        p = self.plan
        lines = [f"Stopping rule '{self.rule}' simulated: {p.experiments} experiments per scenario, "
                 f"{p.daily_users:,} users/day at full traffic, a look every {p.look_every} day(s) up to day {p.days}"]
        for s in self.scenarios:
            p10, p50, p90 = s.stop_quantiles()
            rates = ", ".join(f"{o} {s.rates[o]:.1%}" for o in OUTCOMES)
            days = "no decisions" if np.isnan(p50) else f"decision day median {p50:g} (10-90%: {p10:g}-{p90:g})"
            truth_text = ("true lift drawn per experiment" if np.isnan(s.lift) else f"true lift {fmt.relative(s.lift)}") + (
                f", guardrail {fmt.relative(s.guardrail_lift)}" if s.guardrail_lift else "")
            lines.append(f"  {s.name} ({truth_text}): {rates}; {days}")
            if s.name == LEARNED:
                lines.append(f"    shipped with a true effect <= 0: {s.share('ship', True):.1%} of experiments "
                             f"({s.share('ship', False):.1%} shipped a real improvement); rolled back a real "
                             f"improvement: {s.share('rollback', False):.1%}")
        null = self.scenario("no effect")
        lines.append(f"  false-ship rate {self.false_ship:.1%} (+/- {null.standard_error('ship'):.1%}), "
                     f"power {self.power:.1%}")
        warning = self.false_ship_warning()
        return "\n".join(lines + ([f"  WARNING: {warning}"] if warning else []))

    def false_ship_warning(self) -> str | None:
        """A sentence when the default rule ships, or rolls back, changes that do nothing more often than the 5%
        target (daily looks compound the one-look level; many guardrails add chances to cry harm)."""
        null = self.scenario("no effect")
        over = [f"{what} a change that does nothing {null.rates[outcome]:.1%} (+/- {null.standard_error(outcome):.1%}) "
                f"of the time" for outcome, what in (("ship", "ships"), ("rollback", "rolls back"))
                if null.rates[outcome] > FALSE_SHIP_TARGET]
        if self.rule != "default" or not over:
            return None
        return (f"this plan {' and '.join(over)}, above the {FALSE_SHIP_TARGET:.0%} target: calibrate its thresholds "
                "(bayes-ab plan SPEC --calibrate), lengthen the ramp's minimum days at the deciding stage, or look "
                "less often")

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.text().splitlines()[0])}</p>"
                + self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}"))

    def to_json(self) -> str:
        """Serialised form (see :func:`load_operating_characteristics`)."""
        return json.dumps(asdict(self), indent=2, default=float)

    def save(self, models_dir: str | Path = "models") -> Path:
        """Write to ``<models_dir>/<experiment>/operating_<rule>.json`` (atomically)."""
        folder = Path(models_dir) / self.experiment
        folder.mkdir(parents=True, exist_ok=True)
        return write_atomically(folder / f"operating_{self.rule}.json", lambda tmp: tmp.write_text(self.to_json()))


@dataclass(frozen=True)
class RuleComparison(HtmlRepr):
    """Several rules simulated on the same experiments (common random numbers), default rule first."""

    rules: tuple[OperatingCharacteristics, ...]

    def rule(self, name: str) -> OperatingCharacteristics:
        """The figures of the rule called ``name``."""
        return next(r for r in self.rules if r.rule == name)

    def document(self, experiment: str, written: list[str] | None = None) -> dict:
        """The comparison as the versioned ``bayes-ab/simulation`` document (:mod:`bayes_ab.documents`): the plan
        simulated and one row per scenario and rule (outcome rates with standard errors, decision days, exposure),
        and the files ``written``."""
        return document("simulation", {"experiment": experiment, "plan": self.rules[0].plan,
                                       "rows": self.to_pandas().to_dict("records"), "written": written or []})

    def to_pandas(self) -> pd.DataFrame:
        """One row per scenario and rule."""
        table = pd.concat([r.to_pandas() for r in self.rules], ignore_index=True)
        order = {name: i for i, name in enumerate(SCENARIOS)}
        return table.sort_values("scenario", key=lambda c: c.str.split(":").str[0].map(order),
                                 kind="stable").reset_index(drop=True)

    def text(self) -> str:
        """A side-by-side table: outcome rates, median days and exposure per scenario and rule."""
        p = self.rules[0].plan
        table = self.to_pandas()

        def days(value: float) -> str:
            return "-" if not np.isfinite(value) else f"{value:g}"

        shown = pd.DataFrame({
            "scenario": table["scenario"], "rule": table["rule"],
            **{o: [f"{v:.1%}" for v in table[o]] for o in OUTCOMES},
            "ship day": [days(v) for v in table["ship_day_median"]],
            "rollback day": [days(v) for v in table["rollback_day_median"]],
            "at max power": [days(v) for v in table["max_power_day_median"]],
            "treated user-days": [f"{v:,.0f}" for v in table["treatment_user_days_median"]],
        })
        head = (f"Stopping rules compared on the same {p.experiments} simulated experiments per scenario: "
                f"{p.daily_users:,} users/day at full traffic, a look every {p.look_every} day(s) up to day {p.days}, "
                f"planned effect {p.effect:+.1%}; days and user-days are medians")
        return head + "\n" + "\n".join("  " + line for line in shown.to_string(index=False).splitlines())

    def save(self, models_dir: str | Path = "models") -> list[Path]:
        """Write every rule's figures (see :meth:`OperatingCharacteristics.save`)."""
        return [r.save(models_dir) for r in self.rules]


def load_operating_characteristics(path: str | Path) -> OperatingCharacteristics:
    """Read what :meth:`OperatingCharacteristics.save` wrote."""
    raw = json.loads(Path(path).read_text())
    plan = raw["plan"]
    plan = PlanSettings(**{**plan, "baseline": {k: Baseline(**v) for k, v in plan["baseline"].items()}})
    scenarios = tuple(ScenarioResult(**{**s, **{k: tuple(s.get(k, ())) for k in
                                                ("stop_days", "stop_outcomes", "max_power_days", "exposure",
                                                 "lifts", "outcomes")}})
                      for s in raw["scenarios"])
    return OperatingCharacteristics(raw["experiment"], raw["rule"], plan, scenarios)


def stored_operating_characteristics(experiment: str, models_dir: str | Path = "models"
                                     ) -> tuple[OperatingCharacteristics, ...]:
    """The error rates ``bayes-ab simulate`` stored for ``experiment`` (default rule first; may be empty)."""
    folder = Path(models_dir) / experiment
    return tuple(load_operating_characteristics(folder / f"operating_{name}.json")
                 for name in RULES if (folder / f"operating_{name}.json").exists())


def simulate(spec: ExperimentSpec, plan: PlanSettings | None = None, *, rule: RuleName = "default",
             experiments: int | None = None, seed: int = 0, workers: int = 1) -> OperatingCharacteristics:
    """Simulate one rule; see :func:`compare_rules` (the same experiments, whichever rules run)."""
    return compare_rules(spec, plan, rules=(rule,), experiments=experiments, seed=seed, workers=workers).rules[0]


def compare_rules(
    spec: ExperimentSpec,
    plan: PlanSettings | None = None,
    *,
    rules: Sequence[RuleName] = RULES,
    experiments: int | None = None,
    seed: int = 0,
    workers: int = 1,
) -> RuleComparison:
    """Simulate ``experiments`` experiments per scenario and run every rule in ``rules`` on each.

    Parameters
    ----------
    spec
        Experiment spec: arms, primary metrics and guardrails, ramp plan and decision thresholds.
    plan
        Traffic, horizon, looks, effect and baselines; ``spec.plan`` by default.
    rules
        Names from :data:`bayes_ab.stopping.rules.RULES`.
    experiments
        Per scenario; ``plan.experiments`` by default.
    seed
        Experiment ``i`` of a scenario is the same world whatever the rules, ``workers`` or other
        scenarios; each rule's posterior draws have their own stream.
    workers
        Processes to spread the experiments over.
    """
    plan = plan or spec.plan
    if plan is None:
        raise SpecError(f"{spec.source}: plan: is required to simulate (daily_users, baseline, effect, ...)")
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise SpecError(f"rule {unknown[0] if unknown else ''!r} is not one of {', '.join(RULES)}")
    plan = replace(plan, experiments=experiments or plan.experiments)
    check_plan(spec, plan)
    results: dict[str, list[ScenarioResult]] = {name: [] for name in rules}
    for scenario, (lift, guardrail_lift, breached) in scenarios(spec, plan).items():
        jobs = [(spec, plan, tuple(rules), lift, guardrail_lift, breached, seeds(seed, scenario, spec, plan, i))
                for i in range(plan.experiments)]
        runs = run_experiments(_run_job, jobs, workers)
        for position, name in enumerate(rules):
            results[name].append(_summarise(scenario, lift, guardrail_lift, [run[position] for run in runs],
                                            breached))
    return RuleComparison(tuple(OperatingCharacteristics(spec.name, name, plan, tuple(results[name])) for name in rules))


def run_experiments(job, jobs: list, workers: int) -> list:
    """``job`` applied to each simulated experiment's arguments, in order, over ``workers`` processes (in this
    one when 1); chunks of about an eighth of a worker's share keep the workers busy to the end."""
    if workers <= 1:
        return [job(arguments) for arguments in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(job, jobs, chunksize=max(1, len(jobs) // (8 * workers))))


def simulated_metrics(spec: ExperimentSpec, plan: PlanSettings) -> list[Metric]:
    """The metrics a simulation draws: every primary, and every guardrail with a baseline in the plan."""
    return [m for m in spec.metrics
            if m.role == Role.PRIMARY or (m.role == Role.GUARDRAIL and m.name in plan.baseline)]


def scenarios(spec: ExperimentSpec, plan: PlanSettings) -> dict[str, tuple[float, float, str]]:
    """Scenario name -> (true lift of the primaries, true lift of the breached guardrail, its name)."""
    runs = {"no effect": (0.0, 0.0, ""), "planned effect": (plan.effect, 0.0, ""), "harmful": (-plan.effect, 0.0, "")}
    for guardrail in (m for m in simulated_metrics(spec, plan) if m.role == Role.GUARDRAIL):
        runs[f"{BREACH}: {guardrail.name}"] = (plan.effect, -BREACH_MARGINS * guardrail.margin, guardrail.name)
    if _learned_primary(spec) is not None:
        runs[LEARNED] = (float("nan"), 0.0, "")
    return runs


def seeds(seed: int, scenario: str, spec: ExperimentSpec, plan: PlanSettings, experiment: int) -> np.random.SeedSequence:
    """The world of ``experiment`` in ``scenario``: the same whatever the rules or the workers; breaches of
    different guardrails have worlds of their own."""
    kind = scenario.split(":", 1)[0]
    guardrails = [m.name for m in simulated_metrics(spec, plan) if m.role == Role.GUARDRAIL]
    breached = scenario.split(": ", 1)[1] if kind == BREACH else None
    extra = [guardrails.index(breached)] if breached in guardrails and guardrails.index(breached) > 0 else []
    return np.random.SeedSequence([seed, SCENARIOS.index(kind), *extra, experiment])


def _learned_primary(spec: ExperimentSpec) -> Metric | None:
    """The first primary metric, when it has a learned prior."""
    primaries = spec.metrics_in(Role.PRIMARY)
    return primaries[0] if primaries and primaries[0].prior.learned is not None else None


def draw_learned_lift(metric: Metric, rng: np.random.Generator) -> float:
    """One true relative effect from ``metric``'s learned prior, in its good direction, clipped to
    +/-:data:`LEARNED_CLIP` (a Cauchy-tailed prior has effects no simulated user could show)."""
    learned = metric.prior.learned
    noise = rng.standard_normal() if learned.df is None else rng.standard_t(learned.df)
    natural = float(np.clip(learned.location + learned.scale * noise, -LEARNED_CLIP, LEARNED_CLIP))
    return natural if metric.increase_is_good else -natural


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
    if plan.effect >= 1:
        raise SpecError(f"{where}.effect: a relative effect of {plan.effect:.0%} cannot be simulated as harm too; "
                        "it must be below 1")
    if plan.look_every > plan.days:
        raise SpecError(f"{where}.look_every: {plan.look_every} days between looks exceeds the {plan.days}-day horizon")
    primaries = spec.metrics_in(Role.PRIMARY)
    if not primaries:
        raise SpecError(f"{spec.source}: metrics: planning needs at least one metric with role 'primary'")
    missing = [m.name for m in primaries if m.name not in plan.baseline]
    if missing:
        raise SpecError(f"{where}.baseline: no baseline for primary metric(s) {', '.join(missing)}")
    for metric in simulated_metrics(spec, plan):
        b = plan.baseline[metric.name]
        family = family_for(metric)
        family.parse_baseline(family.baseline_raw(b), f"{where}.baseline.{metric.name}")
        worst = max(plan.effect, BREACH_MARGINS * metric.margin if metric.role == Role.GUARDRAIL else 0.0)
        family.check_change(metric, b, worst, f"{where}.baseline.{metric.name}")


@dataclass
class _Run:
    """One rule's progress through one simulated experiment."""

    rule: SimulatedRule
    ramp: tuple
    accumulators: dict
    rng: np.random.Generator
    stage_index: int = 0
    started: float = 0.0
    treated: int = 0
    exposure: float = 0.0
    max_power_day: int = 0
    ended: tuple | None = field(default=None)


def run_world(
    spec: ExperimentSpec,
    truths: Mapping[str, Truth],
    rules: Sequence[SimulatedRule],
    *,
    daily_users: int,
    days: int,
    look_every: int,
    effect: float,
    world_rng: np.random.Generator,
    rule_rngs: Sequence[np.random.Generator],
    start: Mapping[str, xr.Dataset] | None = None,
    stage_index: int = 0,
    days_at_stage: float = 0.0,
    ends: Collection[str] = TERMINAL_ACTIONS,
    correlation: float = 0.0,
) -> list[tuple[str, int, float, int, float]]:
    """Simulate ``days`` days of one world and run every rule on it.

    Each day the users who would enter at full traffic are drawn in random order, with arms by the
    planned weights and values from ``truths``; a rule at a stage takes the first ``traffic share``
    of them. At a look the rule's action moves it (``advance``) or ends its run (an action in ``ends``).

    Returns
    -------
    list of (outcome, day, stage, first day at the maximum-power stage, treatment user-days)
        One per rule: the ending action (``undecided`` if none) and the day it came.
    """
    weights = np.array(spec.arm_weights)
    runs = []
    for r, rng in zip(rules, rule_rngs):
        accumulators = {name: accumulator(t.metric, spec.arm_names, None if start is None else start[name], t)
                        for name, t in truths.items()}
        ramp = r.ramp(spec)
        runs.append(_Run(r, ramp, accumulators, rng, stage_index if ramp == spec.ramp else 0, -days_at_stage))
    for day in range(1, days + 1):
        active = [run for run in runs if run.ended is None]
        if not active:
            break
        arms = world_rng.choice(len(weights), size=daily_users, p=weights)
        values = {name: t.draw(world_rng, arms, latent) for (name, t), latent
                  in zip(truths.items(), _latent(world_rng, daily_users, len(truths), correlation))}
        for run in active:
            stage = run.ramp[run.stage_index].percent
            if not run.max_power_day and stage >= spec.max_power_stage:
                run.max_power_day = day
            seen = int(round(daily_users * spec.traffic_share(stage)))
            for name, acc in run.accumulators.items():
                acc.add(arms[:seen], values[name][:seen])
            run.treated += int(np.count_nonzero(arms[:seen]))
            run.exposure += run.treated
            if day % look_every:
                continue
            look = Look(spec, stage, day - run.started, day, days, effect, run.accumulators, run.rng)
            action = run.rule.decide(look)
            if action in ends:
                run.ended = (action, day, stage)
            elif action == Action.ADVANCE:
                run.stage_index, run.started = min(run.stage_index + 1, len(run.ramp) - 1), day
    return [(*(run.ended or ("undecided", days, run.ramp[run.stage_index].percent)), run.max_power_day, run.exposure)
            for run in runs]


def _latent(rng: np.random.Generator, users: int, metrics: int, correlation: float) -> list[np.ndarray | None]:
    """Each user's latent activity per metric, as uniforms whose normal scores correlate by ``correlation``
    between any two metrics (one shared factor); ``None`` for each metric (independent draws) at 0."""
    if correlation <= 0 or metrics < 2:
        return [None] * metrics
    from scipy.special import ndtr

    shared = np.sqrt(correlation) * rng.standard_normal(users)
    own = np.sqrt(1.0 - correlation)
    return [ndtr(shared + own * rng.standard_normal(users)) for _ in range(metrics)]


def truths_for(spec: ExperimentSpec, plan: PlanSettings, lift: float, guardrail_lift: float,
               breached: str) -> dict[str, Truth]:
    """Every simulated metric's truth: primaries ``lift`` better, the ``breached`` guardrail ``guardrail_lift``
    (negative: worse), the other guardrails unchanged."""
    truths = {}
    for metric in simulated_metrics(spec, plan):
        effect = lift if metric.role != Role.GUARDRAIL else guardrail_lift if metric.name == breached else 0.0
        truths[metric.name] = truth(metric, plan.baseline[metric.name], factors_for(metric, effect, len(spec.arm_names)),
                                    plan.covariate_correlation.get(metric.name))
    return truths


def _run_job(job) -> list[tuple[str, int, float, int, float, float]]:
    """One simulated experiment, every rule -> [(outcome, day, stage, max-power day, exposure, true lift)]."""
    spec, plan, names, lift, guardrail_lift, breached, seed_sequence = job
    world_rng = np.random.default_rng(seed_sequence)
    if np.isnan(lift):       # the learned-prior scenario: this world's true effect, from its own stream
        lift = draw_learned_lift(_learned_primary(spec), np.random.default_rng(seed_sequence.generate_state(4)))
    streams = seed_sequence.spawn(len(RULES))       # one stream per rule, whichever rules run
    rule_rngs = [np.random.default_rng(streams[RULES.index(n)]) for n in names]
    truths = truths_for(spec, plan, lift, guardrail_lift, breached)
    results = run_world(spec, truths, [rule(n) for n in names], daily_users=plan.daily_users, days=plan.days,
                        look_every=plan.look_every, effect=plan.effect, world_rng=world_rng, rule_rngs=rule_rngs,
                        correlation=plan.correlation)
    return [(*r, lift) for r in results]


def _summarise(name: str, lift: float, guardrail_lift: float,
               results: list[tuple[str, int, float, int, float, float]], breached: str = "") -> ScenarioResult:
    outcomes = [r[0] for r in results]
    stages: dict[str, int] = {}
    for _, _, stage, *_ in results:
        stages[f"{stage:g}%"] = stages.get(f"{stage:g}%", 0) + 1
    decided = [(outcome, day) for outcome, day, *_ in results if outcome in TERMINAL_ACTIONS]
    return ScenarioResult(name, lift, len(results), {o: outcomes.count(o) / len(results) for o in OUTCOMES},
                          tuple(day for _, day in decided), tuple(outcome for outcome, _ in decided), stages,
                          guardrail_lift, tuple(r[3] for r in results), tuple(float(r[4]) for r in results),
                          tuple(float(r[5]) for r in results), tuple(outcomes), breached)
