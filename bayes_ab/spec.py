"""Experiment spec: YAML file -> validated, frozen spec objects.

Every validation error names the file and the field at fault, e.g.
``spec.yaml: metrics[0].family: 'binary' is not one of conversion``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping


from bayes_ab.errors import SpecError
from bayes_ab.families import registry
from bayes_ab.families.clustered import clustered_metric, switchback_metric
from bayes_ab.learned_prior import load_prior
from bayes_ab.intervals import CredibleLevel, IntervalKind
from bayes_ab.yaml_files import MAX_YAML_BYTES, inside_allowed_folders, read_yaml_file
from bayes_ab.metric import (GUARDRAIL_EFFECT_SD, GUARDRAIL_MARGIN, HETEROGENEITY_PER_EFFECT_SD, Baseline, Covariate,
                             Direction, EffectPrior, Metric, Novelty, Role)
from bayes_ab.sampling import Backend, MassMatrix, SamplerSettings

__all__ = ["Arm", "Baseline", "DecisionThresholds", "Direction", "EffectPrior", "ExperimentSpec", "Metric",
           "PlanSettings", "Role", "SamplerSettings", "Stage", "load_spec", "parse_baseline", "parse_spec"]

DIRECTIONS = tuple(Direction)
ROLES = tuple(Role)
BACKENDS = tuple(Backend)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$")


@dataclass(frozen=True)
class Arm:
    """One arm of the experiment; ``weight`` is its planned share of traffic."""

    name: str
    weight: float
    is_control: bool = False


@dataclass(frozen=True)
class Stage:
    """One ramp stage: the share of all users who get the treatment, and the exposure needed to leave it.

    ``percent`` is treatment exposure, as ramps are usually spoken of: at a 1% stage one user in a
    hundred gets the treatment, and control gets users in the planned ratio (the arms' weights), so a
    50/50 test at its 50% stage uses all traffic -- the maximum-power stage. ``min_days`` and
    ``min_users`` (users in the analysis, all arms and stages together) must be reached before the rule
    may leave the stage.
    """

    percent: float
    min_days: int
    min_users: int


DEFAULT_RAMP = (Stage(1, 1, 100), Stage(5, 1, 1_000), Stage(25, 1, 5_000), Stage(50, 7, 50_000),
                Stage(100, 0, 0))
"""1% -> 5% -> 25% for a day each (risk stages: they only look for severe harm), then at least a week
at the maximum-power stage (50%), where ship, roll back or stop is decided: a week covers the weekly
cycle of user behaviour."""


@dataclass(frozen=True)
class DecisionThresholds:
    """Thresholds of the default decision rule (``bayes_ab.decision.rules`` gives the reasoning and the
    simulations that chose them; ``bayes-ab plan SPEC --calibrate`` chooses them for one plan).

    ``caring``: expected relative loss below which a choice is not worth worrying about (0.1%).
    ``guardrails_safe``: P(all guardrails within their margins) needed to ship (0.95): non-inferiority.
    ``harm``: at the maximum-power stage, the probability that rolls back when a primary is worse than control
    or a guardrail is worse than its margin -- family-wise over the metrics judged: each of the ``k`` primaries
    and guardrails is held to ``1 - (1 - harm) / k`` (Bonferroni), so that adding guardrails does not add false
    rollbacks. The default 0.99 is 0.995 per metric with one primary and one guardrail: daily looks must not
    turn noise into "harm".
    ``severe_margin`` and ``severe_harm``: at every stage, P(a primary or guardrail is worse than control
    by more than ``severe_margin`` relative) that rolls back, family-wise like ``harm`` (10%, 0.9: 0.95 per
    metric with two).
    ``rope``: P(every primary lift inside its ROPE) to stop for no effect (0.95).
    ``srm_p``: sample-ratio-mismatch p-value below which data are distrusted (0.001).
    ``segment_harm``: P(a segment is harmed) reported with a targeted rollout, family-wise over the segments
    and primaries (0.95: with 12 segments and one primary, 0.9958 per segment).
    ``targeting_better``: with a ``targeting`` section whose segment policies leave some segments untreated,
    P(such a policy is better than treating everyone) from which an advance or a ship becomes a targeted rollout
    to the segments it treats (0.95; ``benchmarks/targeting.py`` simulates how often it fires).
    ``ship_beat``: P(every primary beats control) needed to ship (0.99, chosen by simulation so that
    daily looks at the maximum-power stage keep the false-ship rate at or under 5%).
    ``max_power_stage``: the stage (percent) from which the rule decides; below it, stages only guard
    against severe harm. ``None``: the largest stage below 100.
    ``calibration``: where the thresholds come from when ``--calibrate`` chose them (its simulation, in one
    line); empty for hand-set or default thresholds.
    """

    caring: float = 0.001
    guardrails_safe: float = 0.95
    harm: float = 0.99
    severe_margin: float = 0.1
    severe_harm: float = 0.9
    rope: float = 0.95
    srm_p: float = 0.001
    segment_harm: float = 0.95
    ship_beat: float = 0.99
    targeting_better: float = 0.95
    max_power_stage: float | None = None
    calibration: str = ""

    @staticmethod
    def per_metric(family_wise: float, judged: int) -> float:
        """The probability each of ``judged`` comparisons must reach so that any of them reaches it by chance
        at most ``1 - family_wise`` of the time (Bonferroni: the tail split evenly)."""
        return 1.0 - (1.0 - family_wise) / max(judged, 1)


@dataclass(frozen=True)
class PlanSettings:
    """How the experiment is expected to run: traffic, horizon, looks and the effect it is planned for.

    ``daily_users``: users entering per day at 100% of traffic (a stage gets its share);
    ``days``: the last look; ``look_every``: days between looks; ``effect``: planned relative
    improvement of every primary metric; ``baseline``: per primary metric (required) and per guardrail
    (optional: guardrails with a baseline are simulated too, and a guardrail-breach scenario is run);
    ``experiments``: simulated experiments per scenario; ``correlation``: how much the simulated metrics move
    together per user, as the correlation of each user's latent activity between any two metrics (a Gaussian
    copula: an engaged user converts more, counts more, stays longer). The default 0.3 is moderate; 0 draws
    the metrics independently, the hardest case for a rule that judges several metrics.
    ``covariate_correlation``: per simulated metric with ``covariates``, the correlation of its covariates' linear
    prediction with the user's value (the multiple correlation ``R``; the variance reduction is ``R^2``).
    """

    daily_users: int
    baseline: Mapping[str, Baseline]
    effect: float = 0.05
    days: int = 28
    look_every: int = 1
    experiments: int = 1000
    correlation: float = 0.3
    covariate_correlation: Mapping[str, float] = field(default_factory=dict)


PERIOD_UNITS = {"m": 60, "h": 3600, "d": 86400}
_PERIOD = re.compile(r"^([1-9][0-9]*)([mhd])$")


@dataclass(frozen=True)
class SwitchbackDesign:
    """A switchback experiment (``switchback:`` in the spec): whole ``unit`` values (regions, servers) switch between
    arms period by period. ``time`` is each row's time; ``period`` its length (``30m``, ``1h``, ``1d``), or ``None``
    when ``time`` already numbers the periods (an integer column). The first ``washout`` periods after each switch
    are left out of the effect and measure the carry-over (:mod:`bayes_ab.families.switchback`)."""

    unit: str
    time: str
    period: str | None = None
    washout: int = 0

    @property
    def seconds(self) -> int | None:
        """The period's length in seconds (``None``: the time column numbers the periods)."""
        return None if self.period is None else period_seconds(self.period)


def period_seconds(period: str) -> int:
    """Seconds in a period length such as ``30m``, ``1h`` or ``1d``; :class:`SpecError` for anything else."""
    found = _PERIOD.match(period)
    if found is None:
        raise SpecError(f"period {period!r}: must be a length such as 30m, 1h or 1d")
    return int(found.group(1)) * PERIOD_UNITS[found.group(2)]


class Compliance(StrEnum):
    """Who can receive the treatment besides the users assigned to it (``compliance`` in the spec).

    ``one-sided``: only treatment users can receive it; some of them do not (notifications off, delivery failed).
    ``two-sided``: control users can receive it too (another campaign sends a similar push), so there are
    always-takers besides never-takers; no user does the opposite of the assignment (monotonicity).
    """

    ONE_SIDED = "one-sided"
    TWO_SIDED = "two-sided"


class Learner(StrEnum):
    """The model of each arm's outcome from the features that ranks users by predicted uplift (``targeting``)."""

    GBM = "gbm"          # scikit-learn's HistGradientBoostingRegressor: interactions and thresholds, no scaling
    LINEAR = "linear"    # ridge regression on standardised numbers and one-hot categories: fast, additive


@dataclass(frozen=True)
class Targeting:
    """Who should get the treatment (``targeting`` in the spec): the candidate policies whose incremental value
    is estimated from the experiment's per-user rows (:mod:`bayes_ab.targeting`).

    ``features`` are per-user columns known before assignment; ``top`` the shares of users treated by predicted
    uplift; ``helps`` the P(helps) thresholds of the segment policies; ``population`` the users a total is
    stated for."""

    features: tuple[str, ...]
    metrics: tuple[str, ...]
    treatment: str
    top: tuple[float, ...] = (0.1, 0.2, 0.5)
    helps: tuple[float, ...] = (0.8,)
    folds: int = 5
    learner: Learner = Learner.GBM
    population: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment spec."""

    name: str
    arms: tuple[Arm, ...]
    arm_column: str
    metrics: tuple[Metric, ...]
    segment_columns: tuple[str, ...] = ()
    unit_column: str | None = None
    users_column: str = "users"
    day_column: str | None = None
    query: str | None = None        # a SELECT of the per-user rows, run by the SQL engine in the database
    activity_column: str | None = None   # rows are a daily panel: the day of each row (one per user and active day)
    received_column: str | None = None   # per user 0/1: the treatment was actually delivered (complier analysis)
    cluster_column: str | None = None    # the randomised unit when whole clusters were randomised (a city)
    switchback: SwitchbackDesign | None = None   # whole units switched between arms period by period
    user_metrics: tuple[Metric, ...] = ()  # with either design: the metrics as declared, on users (data checks)
    description: str | None = None       # what is tested, in a sentence (report header, card, portfolio)
    hypothesis: str | None = None        # what is expected to happen and why
    owner: str | None = None             # who runs the experiment
    compliance: Compliance = Compliance.ONE_SIDED
    interval: float = 0.9     # a CredibleLevel when read from a file: it carries interval_kind (eti | hdi)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    ramp: tuple[Stage, ...] = DEFAULT_RAMP
    decision: DecisionThresholds = field(default_factory=DecisionThresholds)
    plan: PlanSettings | None = None
    targeting: Targeting | None = None
    source: str = "<spec>"

    def about(self) -> dict[str, str | None]:
        """What the experiment is for, as the outputs carry it: description, hypothesis, owner."""
        return {"description": self.description, "hypothesis": self.hypothesis, "owner": self.owner}

    @property
    def control(self) -> Arm:
        """The control arm (validated to be exactly one)."""
        return next(arm for arm in self.arms if arm.is_control)

    @property
    def arm_names(self) -> tuple[str, ...]:
        """Arm names with the control first, as the data and models order them."""
        return (self.control.name,) + tuple(a.name for a in self.arms if not a.is_control)

    @property
    def arm_weights(self) -> tuple[float, ...]:
        """The planned split, in :attr:`arm_names` order (control first), summing to 1."""
        weights = {a.name: a.weight for a in self.arms}
        total = sum(weights.values())
        return tuple(weights[name] / total for name in self.arm_names)

    @property
    def treatment_share(self) -> float:
        """The planned share of the experiment's users in treatment arms (all arms but control)."""
        total = sum(a.weight for a in self.arms)
        return sum(a.weight for a in self.arms if not a.is_control) / total

    def traffic_share(self, percent: float) -> float:
        """Share of all users in the experiment (any arm) at the ramp stage ``percent``.

        A stage's percent is treatment exposure and control keeps the planned ratio, so the experiment
        takes ``percent / treatment share`` of traffic, all of it from the maximum-power stage on.
        """
        return min(1.0, percent / 100 / self.treatment_share)

    @property
    def max_power_stage(self) -> float:
        """The stage (percent) from which the rule decides: ``decision.max_power_stage``, else the
        largest stage below 100 (100 for a one-stage ramp)."""
        if self.decision.max_power_stage is not None:
            return self.decision.max_power_stage
        below = [s.percent for s in self.ramp if s.percent < 100]
        return below[-1] if below else 100.0

    def stage_index(self, percent: float) -> int:
        """Position of the ramp stage at ``percent``; :class:`SpecError` when the ramp has no such stage."""
        stages = [s.percent for s in self.ramp]
        if percent not in stages:
            raise SpecError(f"{self.source}: stage {percent:g}% is not in the ramp plan "
                            f"({', '.join(f'{s:g}' for s in stages)})")
        return stages.index(percent)

    @property
    def grouped_units(self) -> bool:
        """Whether the randomised units are groups of users -- clusters or switchback cells -- rather than users:
        the statistics count the groups, and what simulates independent users (the outlook, ``simulate``) or follows
        them day by day (incremental check-ins) does not apply."""
        return bool(self.cluster_column) or self.switchback is not None

    @property
    def unit_name(self) -> str:
        """What the statistics' ``n`` counts: ``users``, ``clusters`` or (switchback) ``cells``."""
        if self.switchback is not None:
            return "cells"
        return "clusters" if self.cluster_column else "users"

    @property
    def units_counted(self) -> str:
        """:attr:`unit_name` with what makes a unit: ``clusters by 'city'``, ``cells ('region' x period)``."""
        if self.switchback is not None:
            return f"cells ({self.switchback.unit!r} x period)"
        return f"clusters by {self.cluster_column!r}" if self.cluster_column else "users"

    def per_user(self) -> "ExperimentSpec":
        """The spec as its metrics are declared on users: for a cluster-randomised or switchback spec (whose
        :attr:`metrics` are read from cluster or cell totals), the one whose queries check the users' rows."""
        if not self.grouped_units:
            return self
        return replace(self, metrics=self.user_metrics, cluster_column=None, switchback=None, user_metrics=())

    def metrics_in(self, *roles: Role) -> list[Metric]:
        """The metrics with one of ``roles``, in spec order."""
        return [m for m in self.metrics if m.role in roles]

    def metric(self, name: str) -> Metric:
        """The metric called ``name``."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise SpecError(f"{self.source}: no metric named {name!r}")


MAX_SPEC_BYTES = MAX_YAML_BYTES
MAX_DRAWS = 100_000
MAX_CHAINS = 64
MAX_EXACT_DRAWS = 2_000_000


def load_spec(path: str | Path) -> ExperimentSpec:
    """Load and validate an experiment spec from a YAML file (guarded: :func:`~bayes_ab.yaml_files.read_yaml_file`).

    Raises
    ------
    SpecError
        When the file is missing, not a regular file, too large, not YAML, or a field is invalid; the message
        names both.
    """
    raw = read_yaml_file(path, "spec file", max_bytes=MAX_SPEC_BYTES)
    return parse_spec(raw, source=str(path))


def parse_spec(raw: Any, source: str = "<spec>") -> ExperimentSpec:
    """Validate an already-parsed mapping (e.g. from YAML) into an :class:`ExperimentSpec`."""
    r = _Reader(raw, source, "")
    known = {"name", "arms", "arm_column", "segments", "unit_column", "users_column", "day_column", "query",
             "activity_column", "received_column", "cluster_column", "switchback", "compliance", "description",
             "hypothesis", "owner", "metrics", "interval", "interval_kind", "sampler", "ramp", "decision", "plan",
             "targeting"}
    r.reject_unknown(known)
    name = r.name("name")
    arms = _parse_arms(r.child("arms"))
    metrics = _parse_metrics(r.child("metrics"))
    segments = r.get("segments", [])
    if isinstance(segments, str):
        segments = [segments]
    if not isinstance(segments, list) or not all(isinstance(s, str) and s for s in segments):
        r.fail("segments", "must be a column name or a list of column names")
    if len(set(segments)) != len(segments):
        r.fail("segments", "lists a column twice")
    ramp = _parse_ramp(r.child("ramp", required=False))
    _check_ramp_split(r, ramp, arms)
    activity = r.string("activity_column", None)
    _check_panel(r, metrics, activity, r.string("day_column", None), r.string("unit_column", None))
    arm_column = r.string("arm_column", "arm")
    received, compliance = _parse_compliance(r, metrics, arm_column, segments)
    interval = r.number("interval", 0.9)
    if not 0.5 <= interval < 1:
        r.fail("interval", f"must be in [0.5, 1), got {interval}")
    interval = CredibleLevel(interval, r.choice("interval_kind", tuple(IntervalKind), IntervalKind.ETI))
    plan = _parse_plan(r.child("plan", required=False), metrics) if r.get("plan") is not None else None
    cluster = r.string("cluster_column", None)
    declared = metrics
    switchback = _parse_switchback(r.child("switchback", required=False)) if r.get("switchback") is not None else None
    if cluster is not None and switchback is not None:
        r.fail("switchback", "cannot be combined with cluster_column (a switchback's cells are its clusters)")
    if cluster is not None:
        _check_clusters(r, metrics, cluster, arm_column, segments, activity, received)
        metrics = tuple(clustered_metric(m, cluster) for m in metrics)
    if switchback is not None:
        _check_clusters(r, metrics, switchback.unit, arm_column, segments, activity, received, key="switchback.unit")
        if segments:
            r.fail("segments", "are not available with switchback (its cells are analysed as one population)")
        if len(arms) != 2:
            r.fail("arms", "a switchback compares two arms (control and one treatment)")
        metrics = tuple(switchback_metric(m, switchback.unit, switchback.period or f"periods of {switchback.time!r}",
                                          switchback.washout) for m in metrics)
    targeting = None
    if r.get("targeting") is not None:
        if cluster is not None or switchback is not None or activity is not None:
            r.fail("targeting", "reads one row per randomised user; it is not available with cluster_column, "
                                "switchback or activity_column")
        targeting = _parse_targeting(r.child("targeting"), arms, declared, arm_column, segments, received)
    return ExperimentSpec(
        name=name,
        arms=arms,
        arm_column=arm_column,
        metrics=metrics,
        segment_columns=tuple(segments),
        unit_column=r.string("unit_column", None),
        users_column=r.string("users_column", "users"),
        day_column=r.string("day_column", None),
        query=r.string("query", None),
        activity_column=activity,
        received_column=received,
        cluster_column=cluster,
        switchback=switchback,
        user_metrics=declared if cluster is not None or switchback is not None else (),
        compliance=compliance,
        description=_text(r, "description"),
        hypothesis=_text(r, "hypothesis"),
        owner=_text(r, "owner", 200),
        interval=interval,
        sampler=_parse_sampler(r.child("sampler", required=False)),
        ramp=ramp,
        decision=_parse_thresholds(r.child("decision", required=False), ramp),
        plan=plan,
        targeting=targeting,
        source=source,
    )


def _parse_arms(r: "_Reader") -> tuple[Arm, ...]:
    items = r.items()
    if len(items) < 2:
        r.fail("", f"an experiment needs at least two arms, got {len(items)}")
    arms = []
    for item in items:
        item.reject_unknown({"name", "weight", "control"})
        weight = item.number("weight", 1.0 / len(items))
        if weight <= 0:
            item.fail("weight", f"must be positive, got {weight}")
        arms.append(Arm(name=item.name("name"), weight=weight,
                        is_control=item.boolean("control", False)))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        r.fail("", f"arm names must be unique, repeated: {', '.join(dupes)}")
    controls = [a.name for a in arms if a.is_control]
    if len(controls) != 1:
        r.fail("", f"exactly one arm must have 'control: true', found {len(controls)}")
    total = sum(a.weight for a in arms)
    if not math.isclose(total, 1.0, rel_tol=1e-6):
        # weights are the planned traffic shares the SRM check tests against: a sum other than 1 is a typo
        # more often than a ratio, and rescaling it silently would test the wrong split
        r.fail("", f"weights must sum to 1 (each arm's planned share of traffic), got {total:g} "
                   f"({' + '.join(f'{a.weight:g}' for a in arms)})")
    return tuple(arms)


def _parse_metrics(r: "_Reader") -> tuple[Metric, ...]:
    families = registry()
    items = r.items()
    if not items:
        r.fail("", "at least one metric is required")
    common = {"name", "family", "column", "direction", "role", "rope", "prior", "margin", "novelty", "covariates"}
    family_keys = {key: name for name, f in families.items() if f.declared for key in f.params_type.keys()}
    metrics = []
    for item in items:
        family_name = item.choice("family", tuple(name for name, f in families.items() if f.declared))
        family = families[family_name]
        own = set(family.params_type.keys())
        for key in map(str, item._mapping()):
            if key not in common and key not in own:
                if key in family_keys:
                    item.fail(key, f"does not apply to family {family_name!r}")
                item.fail(key, f"unknown field (expected one of {', '.join(sorted(common | own))})")
        if not family.uses_column and item.get("column") is not None:
            item.fail("column", f"does not apply to family {family_name!r} "
                                f"(it reads {', '.join(sorted(own))})")
        role = Role(item.choice("role", ROLES, Role.PRIMARY))
        margin = item.number("margin", GUARDRAIL_MARGIN)
        if not 0 <= margin < 1:
            item.fail("margin", f"is a relative worsening and must be in [0, 1), got {margin}")
        params = family.parse_params(item)
        rope = item.number("rope", 0.01)
        if not 0 <= rope < 1:
            item.fail("rope", f"is a relative lift and must be in [0, 1), got {rope}")
        prior_reader = item.child("prior", required=False)
        prior_reader.reject_unknown({"effect_sd", "heterogeneity_sd", "learned"})
        effect_sd = prior_reader.positive(
            "effect_sd", GUARDRAIL_EFFECT_SD if role == Role.GUARDRAIL else EffectPrior.effect_sd)
        learned = _learned_prior(prior_reader)
        # segments spread in proportion to the overall effect's scale (a learned prior keeps the fixed default)
        spread = (EffectPrior.heterogeneity_sd if learned is not None
                  else round(HETEROGENEITY_PER_EFFECT_SD * effect_sd, 12))
        prior = EffectPrior(effect_sd=effect_sd,
                            heterogeneity_sd=prior_reader.positive("heterogeneity_sd", spread), learned=learned)
        column = None
        if family.uses_column:
            column = item.string("column", None) or item.fail("column", "is required")
        novelty = _parse_novelty(item, family)
        covariates = _parse_covariates(item, family, params, column)
        metrics.extend(family.expand(Metric(
            name=item.name("name"),
            family=family_name,
            column=column,
            direction=Direction(item.choice("direction", DIRECTIONS, Direction.INCREASE)),
            role=role,
            rope=rope,
            margin=margin,
            prior=prior,
            params=params,
            novelty=novelty,
            covariates=covariates,
        )))
    names = [m.name for m in metrics]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        r.fail("", f"metric names must be unique, repeated: {', '.join(dupes)}")
    return tuple(metrics)


def _parse_covariates(item: "_Reader", family, params, column: str | None) -> tuple[Covariate, ...]:
    """``covariates``: pre-period columns the metric is regression-adjusted for (:mod:`bayes_ab.families.covariates`),
    each a column name (numeric or 0/1) or ``{column, levels}`` (categorical: its levels, the first the reference);
    for the families that define effective cells (conversion, count, mean, ratio, retention)."""
    raw = item.get("covariates")
    if raw is None:
        return ()
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        item.fail("covariates", "must be a column name or a non-empty list of column names (pre-period values)")
    found = []
    for i, entry in enumerate(raw):
        if isinstance(entry, str) and entry:
            found.append(Covariate(entry))
            continue
        if not isinstance(entry, dict):
            item.fail(f"covariates[{i}]", f"must be a column name or {{column, levels}}, got {entry!r}")
        reader = _Reader(entry, item.source, f"{item.path}.covariates[{i}]".strip("."))
        reader.reject_unknown({"column", "levels"})
        levels = reader.get("levels")
        if (not isinstance(levels, list) or len(levels) < 2 or not all(isinstance(v, (str, int)) and not
                                                                       isinstance(v, bool) for v in levels)):
            reader.fail("levels", "must list at least two levels (text or whole numbers), the first the reference")
        levels = tuple(str(v) for v in levels)
        if len(set(levels)) != len(levels):
            reader.fail("levels", "lists a level twice")
        found.append(Covariate(reader.string("column", None) or reader.fail("column", "is required"), levels))
    columns = [c.column for c in found]
    if len(set(columns)) != len(columns):
        item.fail("covariates", "lists a column twice")
    if not family.adjusts_for_covariates:
        takes = ", ".join(name for name, f in registry().items() if f.declared and f.adjusts_for_covariates)
        item.fail("covariates", f"does not apply to family {family.name!r} (the {takes} families take covariates)")
    if column in columns:
        item.fail("covariates", f"{column!r} is the metric's own column: a covariate is a value from before the "
                                "experiment, in a column of its own")
    if getattr(params, "covariate", None):
        item.fail("covariates", "cannot be combined with 'covariate' (list that column among the covariates)")
    if str(getattr(params, "count_model", "auto")) not in ("auto", "robust"):
        item.fail("covariates", f"need count_model robust or auto, not {params.count_model}: an adjusted count has a "
                                "variance but no count distribution")
    return tuple(found)


def _parse_novelty(item: "_Reader", family) -> Novelty:
    """``novelty: true`` (the long-run effect is the metric's effect), ``auto`` (only when novelty or primacy
    is likely) or ``false``; only for families read from one column of a daily panel."""
    raw = item.get("novelty", False)
    if raw is False or raw is None:
        return Novelty.OFF
    if raw is not True and raw != "auto":
        item.fail("novelty", f"must be true, false or auto, got {raw!r}")
    if not family.uses_column or family.panel_total is None or not family.weekly:
        item.fail("novelty", f"is not available for {family.name} metrics (conversion, count and mean metrics have it)")
    return Novelty.ALWAYS if raw is True else Novelty.AUTO


MAX_TEXT = 2_000
"""Characters a free-text field of the spec may hold (a description is a paragraph, not a document)."""


def _text(r: "_Reader", key: str, limit: int = MAX_TEXT) -> str | None:
    """An optional one-paragraph text field: a non-empty string of at most ``limit`` characters, whitespace
    collapsed."""
    value = r.string(key, None)
    if value is None:
        return None
    value = " ".join(value.split())
    if len(value) > limit:
        r.fail(key, f"is {len(value):,} characters long; at most {limit:,}")
    return value


def _parse_compliance(r: "_Reader", metrics: tuple[Metric, ...], arm_column: str,
                      segments: list[str]) -> tuple[str | None, Compliance]:
    """``received_column`` (who actually received the treatment) and ``compliance`` (one- or two-sided)."""
    received = r.string("received_column", None)
    if received is None:
        if r.get("compliance") is not None:
            r.fail("compliance", "needs received_column: the per-user 0/1 column saying who received the treatment")
        return None, Compliance.ONE_SIDED
    sides = Compliance(r.choice("compliance", tuple(Compliance), Compliance.ONE_SIDED))
    if received == arm_column or received in segments:
        r.fail("received_column", f"{received!r} is already {'the arm' if received == arm_column else 'a segment'} "
                                  "column; receiving the treatment is a column of its own")
    for m in metrics:
        if received in m.columns:
            r.fail("received_column", f"{received!r} is a column of metric {m.name!r}; receiving the treatment is "
                                      "not an outcome")
    families = registry()
    if not any(families[m.family].complier_effects for m in metrics):
        r.fail("received_column", "the complier effect (CACE) is estimated for conversion, count and mean metrics; "
                                  "the spec has none")
    return received, sides


def _parse_targeting(r: "_Reader", arms: tuple[Arm, ...], metrics: tuple[Metric, ...], arm_column: str,
                     segments: list[str], received: str | None) -> Targeting:
    """``targeting``: features known before assignment, the metrics and treatment arm, the candidate policies.

    A feature may not be an outcome, the arm or the received column: a policy ranks users by what is known
    when the decision to treat them is made, and a column written after assignment would leak the outcome
    into the ranking."""
    r.reject_unknown({"features", "metrics", "treatment", "top", "helps", "folds", "learner", "population", "seed"})
    features = r.get("features")
    if not isinstance(features, list) or not features or not all(isinstance(f, str) and f for f in features):
        r.fail("features", "must be a non-empty list of column names known before assignment")
    if len(set(features)) != len(features):
        r.fail("features", "lists a column twice")
    for f in features:
        if f == arm_column or f == received:
            r.fail("features", f"{f!r} is the {'arm' if f == arm_column else 'received'} column; a feature must "
                               "be known before assignment")
        for m in metrics:
            if f in m.columns and f not in m.pre_period_columns:
                r.fail("features", f"{f!r} is a column of metric {m.name!r}: an outcome cannot rank users (use "
                                   "its value from before the experiment, in a column of its own)")
    families = registry()
    by_name = {m.name: m for m in metrics}
    names = r.get("metrics")
    if names is None:
        names = [m.name for m in metrics if m.role == Role.PRIMARY and families[m.family].complier_effects]
        if not names:
            r.fail("metrics", "is required: no primary metric is the mean of one value per user (conversion, count "
                              "or mean)")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        r.fail("metrics", "must be a metric name or a list of them")
    for name in names:
        if name not in by_name:
            r.fail("metrics", f"{name!r} is not a metric of this spec (metrics: {', '.join(by_name)})")
        if not families[by_name[name].family].complier_effects:
            r.fail("metrics", f"{name!r} is a {by_name[name].family} metric; a policy's value is estimated for "
                              "conversion, count and mean metrics (one value per user)")
    treatments = [a.name for a in arms if not a.is_control]
    treatment = r.string("treatment", treatments[0] if len(treatments) == 1 else None)
    if treatment is None:
        r.fail("treatment", f"is required with {len(treatments)} treatment arms: one of {', '.join(treatments)}")
    if treatment not in treatments:
        r.fail("treatment", f"{treatment!r} is not a treatment arm (one of {', '.join(treatments)})")
    top = _shares(r, "top", (0.1, 0.2, 0.5))
    helps = _shares(r, "helps", (0.8,) if segments else ())
    if helps and not segments:
        r.fail("helps", "needs segments: the policy treats the segments whose effect is probably positive")
    population = r.get("population")
    if population is not None:
        population = r.count("population", 0, minimum=1)
    return Targeting(tuple(features), tuple(names), treatment, top, helps, r.count("folds", 5, minimum=3, maximum=21),
                     Learner(r.choice("learner", tuple(Learner), Learner.GBM)), population,
                     r.count("seed", 0, minimum=0))


def _shares(r: "_Reader", key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    """A number or list of numbers in (0, 1): sorted, without repeats."""
    raw = r.get(key, list(default))
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
        r.fail(key, f"must be a list of numbers in (0, 1), got {raw!r}")
    for v in raw:
        if not 0 < v < 1:
            r.fail(key, f"must be numbers in (0, 1), got {v}")
    return tuple(sorted({float(v) for v in raw}))


def _check_panel(r: "_Reader", metrics: tuple[Metric, ...], activity: str | None, day: str | None,
                 unit: str | None) -> None:
    """A daily panel needs the activity day, the exposure day and unit ids; novelty needs a panel."""
    wanting = [m.name for m in metrics if m.novelty != Novelty.OFF]
    if wanting and not activity:
        r.fail("activity_column", f"is required by novelty (metric {wanting[0]!r}): the day of each row of a daily "
                                  "panel, one row per user and active day")
    if activity:
        for key, value in (("day_column", day), ("unit_column", unit)):
            if not value:
                r.fail(key, "is required with activity_column (a daily panel): "
                            + ("the user's exposure day" if key == "day_column" else "the user's id"))
        families = registry()
        for m in metrics:
            if families[m.family].panel_total is None:
                r.fail("activity_column", f"a daily panel cannot carry {m.family} metric {m.name!r}")
            if m.covariates:
                r.fail("activity_column", f"metric {m.name!r} has covariates, which need one row per user (a daily "
                                          "panel's rows would total them over days)")


def _parse_switchback(r: "_Reader") -> SwitchbackDesign:
    """``switchback: {unit, time, period, washout}``."""
    r.reject_unknown({"unit", "time", "period", "washout"})
    unit, time = r.name("unit"), r.name("time")
    if unit == time:
        r.fail("time", "must differ from unit")
    period = r.string("period", None)
    if period is not None and not _PERIOD.match(period):
        r.fail("period", f"must be a length such as 30m, 1h or 1d, got {period!r}")
    return SwitchbackDesign(unit, time, period, r.count("washout", 0, minimum=0, maximum=1000))


def _check_clusters(r: "_Reader", metrics: tuple[Metric, ...], cluster: str, arm_column: str, segments: list[str],
                    activity: str | None, received: str | None, key: str = "cluster_column") -> None:
    """A cluster-randomised or switchback spec (``key`` names its field) reads every metric from totals over a
    cluster's (or a cell's) rows: its values must add up, and the designs that follow users one by one (a daily
    panel, novelty, the complier analysis, CUPED) are not available on such units."""
    if cluster == arm_column or cluster in segments:
        r.fail(key, f"{cluster!r} is already {'the arm' if cluster == arm_column else 'a segment'} "
                    "column; a segment by cluster would leave one cluster per cell")
    for other, value in (("activity_column", activity), ("received_column", received)):
        if value is not None:
            r.fail(other, f"is not available with {key}: such an experiment is analysed on rows summed per "
                          "cluster or cell")
    families = registry()
    for i, m in enumerate(metrics):
        if not families[m.family].cluster_sums:
            r.fail(key, f"metric {m.name!r} is a {m.family} metric, whose values do not add up over a "
                        "cluster's rows; conversion, count, mean and ratio metrics do")
        if m.novelty != Novelty.OFF:
            r.fail(f"metrics[{i}].novelty", f"is not available with {key}")
        if cluster in m.columns:
            r.fail(key, f"{cluster!r} is a column of metric {m.name!r}")
        for field_name, value in (("covariate", getattr(m.params, "covariate", None)), ("covariates", m.covariates)):
            if value:
                r.fail(f"metrics[{i}].{field_name}", f"is not available with {key} (regression adjustment on "
                                                     "cluster totals is not built)")


def _parse_ramp(r: "_Reader") -> tuple[Stage, ...]:
    if r.raw == {}:
        return DEFAULT_RAMP
    stages = []
    for item in r.items():
        item.reject_unknown({"percent", "min_days", "min_users"})
        percent = item.number("percent", 0)
        if not 0 < percent <= 100:
            item.fail("percent", f"must be in (0, 100], got {percent}")
        stages.append(Stage(percent, item.count("min_days", 0, minimum=0), item.count("min_users", 0, minimum=0)))
    if not stages or stages[-1].percent != 100:
        r.fail("", "the last stage must be 100 (percent)")
    if any(b.percent <= a.percent for a, b in zip(stages, stages[1:])):
        r.fail("", "stage percents must increase")
    return tuple(stages)


def _parse_thresholds(r: "_Reader", ramp: tuple[Stage, ...]) -> DecisionThresholds:
    default = DecisionThresholds()
    names = ("caring", "guardrails_safe", "harm", "severe_margin", "severe_harm", "rope", "srm_p", "segment_harm",
             "ship_beat", "targeting_better")
    r.reject_unknown(set(names) | {"max_power_stage", "calibration"})
    values: dict[str, Any] = {}
    for name in names:
        values[name] = r.number(name, getattr(default, name))
        if not 0 < values[name] < 1:
            r.fail(name, f"must be in (0, 1), got {values[name]}")
    stage = r.get("max_power_stage")
    if stage is not None:
        stage = r.number("max_power_stage", 0)
        if stage not in [s.percent for s in ramp]:
            r.fail("max_power_stage", f"must be one of the ramp's stages "
                                      f"({', '.join(f'{s.percent:g}' for s in ramp)}), got {stage:g}")
    calibration = r.get("calibration", "")
    if not isinstance(calibration, str):
        r.fail("calibration", f"must be text (what chose the thresholds), got {calibration!r}")
    return DecisionThresholds(**values, max_power_stage=stage, calibration=" ".join(calibration.split()))


SPLIT_SLACK_POINTS = 0.5
"""How far (percentage points) a stage may exceed the treatment arms' planned share: it is then the full-traffic
stage."""


def _check_ramp_split(r: "_Reader", ramp: tuple[Stage, ...], arms: tuple[Arm, ...]) -> None:
    """A stage below 100% must fit the planned split: treatment exposure at most the treatment share."""
    share = sum(a.weight for a in arms if not a.is_control) / sum(a.weight for a in arms)
    for index, stage in enumerate(ramp):
        # half a percentage point of slack: weights written from a measured split (0.49982) still carry the 50% stage,
        # which then takes all traffic (traffic_share is capped at 1)
        if stage.percent < 100 and stage.percent > share * 100 + SPLIT_SLACK_POINTS:
            r.fail(f"ramp[{index}].percent", f"{stage.percent:g}% treatment exposure does not fit the planned "
                                             f"split (treatment arms get {share * 100:.4g}% of the experiment's "
                                             f"users); stages below 100 must be at most {share * 100:.4g}")


def _parse_plan(r: "_Reader", metrics: tuple[Metric, ...]) -> PlanSettings:
    r.reject_unknown({"daily_users", "baseline", "effect", "days", "look_every", "experiments", "correlation",
                      "covariate_correlation"})
    effect = r.number("effect", 0.05)
    if effect <= 0:
        r.fail("effect", f"must be a positive relative improvement (0.05 = 5%), got {effect}")
    baselines = r.child("baseline")
    baselines.reject_unknown({m.name for m in metrics if m.role in (Role.PRIMARY, Role.GUARDRAIL)})
    parsed = {}
    for metric in (m for m in metrics if m.role in (Role.PRIMARY, Role.GUARDRAIL)):
        if baselines.get(metric.name) is None:
            if metric.role == Role.GUARDRAIL:
                continue
            baselines.fail(metric.name, "is required: the control-arm baseline of every primary metric")
        parsed[metric.name] = parse_baseline(baselines.get(metric.name), metric,
                                             f"{r.source}: {baselines.path}.{metric.name}")
    correlation = r.number("correlation", PlanSettings.correlation)
    if not 0 <= correlation < 1:
        r.fail("correlation", f"must be in [0, 1), got {correlation}")
    return PlanSettings(
        daily_users=r.count("daily_users", None), baseline=parsed, effect=effect,
        days=r.count("days", 28), look_every=r.count("look_every", 1), experiments=r.count("experiments", 1000),
        correlation=correlation, covariate_correlation=_covariate_correlation(r, metrics, parsed),
    )


def _covariate_correlation(r: "_Reader", metrics: tuple[Metric, ...], simulated: Mapping[str, Baseline]) -> dict:
    """``plan.covariate_correlation``: for every simulated metric with covariates, how strongly they predict it."""
    with_covariates = [m.name for m in metrics if m.covariates and m.name in simulated]
    given = r.child("covariate_correlation", required=False)
    given.reject_unknown(set(with_covariates))
    found = {}
    for name in with_covariates:
        if given.get(name) is None:
            given.fail(name, "is required: metric has covariates; give the correlation expected between their "
                             "prediction and the metric's value (0.5 removes a quarter of the variance)")
        value = given.number(name, 0.0)
        if not 0 <= value < 1:
            given.fail(name, f"must be in [0, 1), got {value}")
        found[name] = float(value)
    return found


def parse_baseline(raw: Any, metric: Metric, where: str) -> Baseline:
    """A planning baseline of ``metric`` in its family's form (a rate, or ``{mean, dispersion}`` and the
    like: see the family's ``parse_baseline``); ``where`` prefixes errors."""
    return registry()[metric.family].parse_baseline(raw, where)


PRIOR_DIRS = "BAYES_AB_PRIOR_DIRS"
"""Environment variable: further folders (separated by ``os.pathsep``) a spec file's learned prior may be read
from. A spec file is written by whoever sets up an experiment; which files the job that runs it may read is the
operator's to say, so a spec file alone cannot reach beyond its own folder and the working folder. (A mapping
given to :func:`parse_spec` in code is the program's own: its paths are read as given.)"""


def _learned_prior(r: "_Reader"):
    """``prior: {learned: FILE}``: a prior file written by ``bayes-ab priors learn``, its path relative to the
    spec's folder; refused beside ``effect_sd`` (which it replaces)."""
    if r.get("learned") is None:
        return None
    if r.get("effect_sd") is not None:
        r.fail("effect_sd", "cannot be given with 'learned': the learned distribution is the effect's prior")
    text = r.string("learned", None)
    folder = Path(r.source).parent if r.source != "<spec>" else Path.cwd()
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = folder / path
    allowed = [folder, Path.cwd()] + [Path(p) for p in os.environ.get(PRIOR_DIRS, "").split(os.pathsep) if p]
    # a spec file is someone else's words; a mapping handed to parse_spec in code is the program's own
    if r.source != "<spec>" and not inside_allowed_folders(path, allowed):
        r.fail("learned", f"{text}: outside the spec's folder and the working folder; list its folder in "
               f"{PRIOR_DIRS} to allow it (symbolic links are followed)")
    try:
        return load_prior(path)
    except SpecError as exc:
        r.fail("learned", str(exc))


def _parse_sampler(r: "_Reader") -> SamplerSettings:
    r.reject_unknown({"draws", "tune", "chains", "target_accept", "retry_target_accept", "seed", "backend",
                      "mass_matrix", "exact", "exact_draws"})
    default = SamplerSettings()
    target_accept = r.number("target_accept", default.target_accept)
    if not 0.5 <= target_accept < 1:
        r.fail("target_accept", f"must be in [0.5, 1), got {target_accept}")
    retry = r.get("retry_target_accept", default.retry_target_accept)
    if retry is not None:
        retry = r.number("retry_target_accept", default.retry_target_accept)
        if not target_accept <= retry < 1:
            r.fail("retry_target_accept", f"must be in [target_accept, 1) or null, got {retry}")
    return SamplerSettings(
        # bounded: every draw of every chain is kept in memory, and a typo of a few zeros must not
        # allocate terabytes or sample for days
        draws=r.count("draws", default.draws, maximum=MAX_DRAWS),
        tune=r.count("tune", default.tune, maximum=MAX_DRAWS),
        chains=r.count("chains", default.chains, maximum=MAX_CHAINS),
        target_accept=target_accept,
        retry_target_accept=retry,
        seed=r.count("seed", default.seed, minimum=0),
        backend=Backend(r.choice("backend", BACKENDS, default.backend)),
        mass_matrix=MassMatrix(r.choice("mass_matrix", tuple(MassMatrix), default.mass_matrix)),
        exact=r.boolean("exact", default.exact),
        exact_draws=r.count("exact_draws", default.exact_draws, minimum=1000, maximum=MAX_EXACT_DRAWS),
    )


class _Reader:
    """Typed access to one mapping of the raw YAML, remembering the path for error messages."""

    def __init__(self, raw: Any, source: str, path: str, required: bool = True):
        self.source, self.path = source, path
        if raw is None and not required:
            raw = {}
        self.raw = raw

    def fail(self, key: str, message: str):
        where = ".".join(p for p in (self.path, key) if p) or "spec"
        raise SpecError(f"{self.source}: {where}: {message}")

    def _mapping(self) -> Mapping[str, Any]:
        if not isinstance(self.raw, Mapping):
            self.fail("", f"must be a mapping, got {type(self.raw).__name__}")
        return self.raw

    def reject_unknown(self, known: set[str]) -> None:
        unknown = sorted(set(map(str, self._mapping())) - known)
        if unknown:
            self.fail(unknown[0], f"unknown field (expected one of {', '.join(sorted(known))})")

    def get(self, key: str, default: Any = None) -> Any:
        return self._mapping().get(key, default)

    def child(self, key: str, required: bool = True) -> "_Reader":
        value = self.get(key)
        if value is None and required:
            self.fail(key, "is required")
        return _Reader(value, self.source, f"{self.path}.{key}".strip("."), required)

    def items(self) -> list["_Reader"]:
        if not isinstance(self.raw, list):
            self.fail("", f"must be a list, got {type(self.raw).__name__}")
        return [_Reader(v, self.source, f"{self.path}[{i}]") for i, v in enumerate(self.raw)]

    def string(self, key: str, default: str | None) -> str | None:
        value = self.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            self.fail(key, f"must be a non-empty string, got {value!r}")
        return value

    def name(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            self.fail(key, "is required")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _NAME.match(value):
            self.fail(key, f"must be a name of letters, digits, '_', '-', '.' or spaces, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"must be a finite number, got {value!r}")
        return float(value)

    def positive(self, key: str, default: float) -> float:
        value = self.number(key, default)
        if value <= 0:
            self.fail(key, f"must be positive, got {value}")
        return value

    def count(self, key: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
                maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.fail(key, f"must be an integer {bounds}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key, default)
        if value is None:
            self.fail(key, f"is required (one of {', '.join(options)})")
        if value not in options:
            self.fail(key, f"{value!r} is not one of {', '.join(options)}")
        return value
