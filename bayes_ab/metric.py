"""A metric and what it is judged by: family, column, direction, role, effect prior, planning baseline.

The lowest layer of the spec: the family modules (:mod:`bayes_ab.families`) build on these types, and the
spec (:mod:`bayes_ab.spec`) validates YAML into them through the family registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum


@dataclass(frozen=True)
class FamilyParams:
    """A family's own spec fields (none by default). Field names are the YAML keys."""

    def columns(self, metric: str) -> dict[str, str]:
        """Input columns these parameters name, with what each is for (besides the metric's ``column``)."""
        return {}

    @classmethod
    def of(cls, metric: "Metric") -> "FamilyParams":
        """The parameters of ``metric``: its own, or these defaults when it has none (a ``Metric`` built
        in code without ``params``)."""
        return metric.params if metric.params is not None else cls()

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The YAML keys these parameters are read from."""
        return tuple(f.name for f in fields(cls))


class Direction(StrEnum):
    """Which way a metric is good."""

    INCREASE = "increase"
    DECREASE = "decrease"


class Role(StrEnum):
    """What a metric is for: deciding (primary), guarding (guardrail) or informing (secondary)."""

    PRIMARY = "primary"
    GUARDRAIL = "guardrail"
    SECONDARY = "secondary"


class Novelty(StrEnum):
    """Whether the effect is also modelled by weeks since exposure (a daily panel is needed), and when the
    long-run effect replaces the whole-test effect in the numbers and the decision."""

    OFF = "off"
    ALWAYS = "always"       # spec ``novelty: true``: the long-run effect is the metric's effect
    AUTO = "auto"           # the long-run effect only when novelty or primacy is likely


@dataclass(frozen=True)
class LearnedEffectPrior:
    """A distribution of true *relative* effects learned from past experiments (``bayes-ab priors learn``):
    ``location + scale * StudentT(df)``, or a normal when ``df`` is ``None``; 0.01 is +1%."""

    form: str
    location: float
    scale: float
    df: float | None
    experiments: int
    source: str
    learned_at: str

    def describe(self) -> str:
        """One line for reports: the distribution and its origin."""
        shape = f"Student-t (df {self.df:.1f})" if self.df is not None else "normal"
        return (f"learned from {self.experiments} experiments ({self.source.rsplit('/', 1)[-1]}, {self.learned_at}): "
                f"{shape}, location {self.location:+.2%}, scale {self.scale:.2%} (relative effect)")


@dataclass(frozen=True)
class EffectPrior:
    """Prior of the treatment effect on the link scale (logit for conversion).

    ``effect_sd`` is the scale of the overall effect; ``heterogeneity_sd`` the half-normal
    scale of how much segments differ from it (smaller means stronger pooling). With ``learned``, the
    overall effect's prior is that distribution of relative effects mapped to the link scale at the
    control's observed value (``Family.link_per_relative``), and ``effect_sd`` is not used.
    """

    effect_sd: float = 0.5
    heterogeneity_sd: float = 0.2
    learned: LearnedEffectPrior | None = None


HETEROGENEITY_PER_EFFECT_SD = 0.4
"""A spec's default ``heterogeneity_sd`` as a share of its ``effect_sd`` (0.2 at the default 0.5). Why a share:
the overall lift averages the segments' effects, so its prior widens with their spread; a fixed 0.2 under a
guardrail's sceptical 0.1 doubled it, and segmenting the push example's opt-outs moved their lift by 0.47
posterior sd (by tenure) -- 0.10 at most with the share (``benchmarks/fits.py segments``)."""
GUARDRAIL_EFFECT_SD = 0.1
"""Default sceptical prior scale of a guardrail's treatment effect (link scale): +/-0.1 on the logit
or log scale is about +/-10% relative at one sd, so a guardrail alarm needs real evidence."""
GUARDRAIL_MARGIN = 0.02
"""Default non-inferiority margin of a guardrail: 2% relative worsening is tolerated."""


@dataclass(frozen=True)
class Covariate:
    """A pre-period column a metric is regression-adjusted for: numeric (or 0/1), or categorical with its
    ``levels`` declared, the first the reference (each other level is a 0/1 term)."""

    column: str
    levels: tuple[str, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        """The regression's terms: the column, or ``column=level`` for each level but the reference."""
        return tuple(f"{self.column}={level}" for level in self.levels[1:]) if self.levels else (self.column,)


@dataclass(frozen=True)
class Metric:
    """A metric: what to model (family), from which column, and which way is good.

    ``family`` names an entry of the family registry (:mod:`bayes_ab.families`); ``params`` holds that
    family's own fields (e.g. ``CountParams(count_model, cap)``); ``None`` means the family's defaults
    (``Family.params`` resolves it).
    ``column`` is the per-user value, except for families that name their columns in ``params``.
    """

    name: str
    family: str
    column: str | None = None
    direction: Direction = Direction.INCREASE
    role: Role = Role.PRIMARY
    rope: float = 0.01
    prior: EffectPrior = field(default_factory=EffectPrior)
    margin: float = GUARDRAIL_MARGIN
    params: FamilyParams | None = None
    novelty: Novelty = Novelty.OFF
    covariates: tuple[Covariate, ...] = ()   # pre-period columns the metric is regression-adjusted for (CUPED)

    @property
    def columns(self) -> dict[str, str]:
        """Input columns this metric reads, with what each is for."""
        wanted = {self.column: f"metric {self.name!r}"} if self.column else {}
        if self.params is not None:
            wanted.update(self.params.columns(self.name))
        wanted.update({c.column: f"covariate of metric {self.name!r}" for c in self.covariates})
        return wanted

    @property
    def covariate_terms(self) -> tuple[str, ...]:
        """The regression terms of the metric's covariates, in order (:attr:`Covariate.terms`)."""
        return tuple(term for c in self.covariates for term in c.terms)

    @property
    def pre_period_columns(self) -> tuple[str, ...]:
        """The columns this metric reads from before the experiment (its covariates): known at assignment, so a
        targeting policy may rank users by them."""
        own = getattr(self.params, "covariate", None)
        return tuple(c.column for c in self.covariates) + ((own,) if own else ())

    @property
    def increase_is_good(self) -> bool:
        """True when a higher metric value is the better outcome."""
        return self.direction == "increase"


@dataclass(frozen=True)
class Baseline:
    """Control-arm behaviour of one primary metric, for simulating experiments.

    ``value``: the metric's control value (a conversion rate, D-horizon retention, mean count, mean or
    ratio). ``spread``: the family's second parameter where it has one (a count's negative-binomial
    dispersion, ``None`` = Poisson; a mean's standard deviation; see each family's ``parse_baseline``).
    """

    value: float
    spread: float | None = None
