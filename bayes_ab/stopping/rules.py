"""The stopping rules a simulation compares, each reading the same simulated looks.

- ``default``: the spec's decision rule, :func:`bayes_ab.decision.decide` itself (what planning
  promises: the real rule, not an imitation), with the spec's ramp, on closed-form posteriors
  resampled by each metric's effect prior (:func:`with_effect_prior`).
- ``naive``: ship as soon as every primary has P(beat control) > 95%, at the maximum-power stage from
  day one; it never rolls back. What peeking at a Bayesian dashboard every day amounts to.
- ``sequential``: the always-valid mixture sequential probability ratio test (mSPRT; Johari, Koomen,
  Pekelis and Walsh, "Always Valid Inference", Operations Research 2022) that commercial platforms run
  so that daily looks keep the false-positive rate, on the spec's ramp: at any look it rolls back when a
  primary or guardrail is significantly worse; a risk stage advances at its minimum exposure; at the
  maximum-power stage, once its minimum exposure is met, it ships when every primary is significantly
  better and no guardrail significantly worse. Two-sided alpha 0.10 (at most 5% on each side, the level of
  the default rule's false-ship target), normal mixing distribution with standard deviation equal to
  the planned relative effect, on the relative lift by the delta method.
- ``fixed_horizon``: the classical test, at the maximum-power stage from day one and looked at once, on
  the horizon day: one-sided z-tests at 5%; ship when every primary is significantly better and no
  guardrail significantly worse, roll back when any is significantly worse, otherwise stop.
- ``risk_aware``: the risk-aware decision rule of Schultzberg, Ankargren and Franberg ("Risk-aware product
  decisions in A/B tests with multiple metrics", 2024), looked at once on the horizon day at full power:
  success metrics (primaries) tested for superiority with Bonferroni over them (one-sided alpha / S), guardrails
  for non-inferiority against their margins, each at alpha (an intersection-union test: all must pass, so no
  correction), and every metric for deterioration with Bonferroni over all of them. Ship when some primary is
  significantly better and every guardrail significantly non-inferior; roll back when any metric significantly
  deteriorates; otherwise stop. (The paper also corrects the *power* for the number of guardrails -- a sample
  size matter, which planning's fixed-horizon reference shows.)
- ``holm`` and ``benjamini_hochberg``: the fixed-horizon test with its one-sided p-values adjusted across the
  metrics (Holm's step-down for the family-wise error, Benjamini-Hochberg for the false discovery rate), for
  deterioration over every metric and for superiority over the primaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Protocol

import numpy as np
from scipy.special import ndtr, ndtri

from bayes_ab.decision import Action, decide
from bayes_ab.decision.evidence import evidence_from_draws
from bayes_ab.decision.srm import srm_check
from bayes_ab.families import family_for
from bayes_ab.metric import Role
from bayes_ab.models.hierarchy import mapped_prior_data, prior_data
from bayes_ab.models.prior_resampling import resampled
from bayes_ab.spec import ExperimentSpec, Metric, Stage
from bayes_ab.stopping.generate import Accumulator
from bayes_ab.multiplicity import benjamini_hochberg, holm

RuleName = Literal["default", "naive", "sequential", "fixed_horizon", "risk_aware", "holm", "benjamini_hochberg"]
RULES: tuple[RuleName, ...] = ("default", "naive", "sequential", "fixed_horizon", "risk_aware", "holm",
                               "benjamini_hochberg")
"""Every rule, in the order their random streams are numbered (add new rules at the end)."""
NAIVE_THRESHOLD = 0.95
SEQUENTIAL_ALPHA = 0.10
FIXED_HORIZON_ALPHA = 0.05
POSTERIOR_DRAWS = 2000


@dataclass(frozen=True)
class Look:
    """What a rule sees at one look of one simulated experiment."""

    spec: ExperimentSpec
    stage: float
    days_at_stage: float
    day: int
    horizon: int
    effect: float
    accumulators: Mapping[str, Accumulator]
    rng: np.random.Generator

    @property
    def users(self) -> int:
        """Users in the experiment so far (all arms)."""
        return int(next(iter(self.accumulators.values())).users().sum())


class SimulatedRule(Protocol):
    """A stopping rule as the simulation runs it: its ramp and its action at a look."""

    name: RuleName

    def ramp(self, spec: ExperimentSpec) -> tuple[Stage, ...]:
        """The stages it moves through."""

    def decide(self, look: Look) -> str:
        """``advance``, ``hold``, ``ship``, ``rollback`` or ``stop_no_effect``."""


def rule(name: RuleName) -> SimulatedRule:
    """The rule called ``name`` (one of :data:`RULES`)."""
    return {"default": DefaultRule, "naive": NaiveRule, "sequential": SequentialRule,
            "fixed_horizon": FixedHorizonRule, "risk_aware": RiskAwareRule, "holm": HolmRule,
            "benjamini_hochberg": BenjaminiHochbergRule}[name]()


def max_power_only(spec: ExperimentSpec) -> tuple[Stage, ...]:
    """A one-stage ramp: the maximum-power stage from day one, with no minimum exposure."""
    return (Stage(spec.max_power_stage, 0, 0),)


class DefaultRule:
    name: RuleName = "default"

    def ramp(self, spec: ExperimentSpec) -> tuple[Stage, ...]:
        return spec.ramp

    def decide(self, look: Look) -> str:
        return self.recommend(look, look.spec).action

    def recommend(self, look: Look, spec: ExperimentSpec):
        """The rule's recommendation at ``look`` under ``spec``'s thresholds (:func:`bayes_ab.decision.decide`
        on the evidence of closed-form posteriors resampled by each metric's effect prior)."""
        users, arm, evidence, gates = self.inputs(look, spec)
        return decide(spec, look.stage, look.days_at_stage, users, arm, evidence, gates)

    def inputs(self, look: Look, spec: ExperimentSpec) -> tuple[int, str, dict, list]:
        """What :func:`~bayes_ab.decision.decide` reads at ``look``: users, the arm, each metric's evidence and the
        sample-ratio gate (drawing the posteriors from the look's stream, so the same look gives the same)."""
        primaries = spec.metrics_in(Role.PRIMARY)
        draws = {name: with_effect_prior(acc, spec.metric(name), acc.posterior(look.rng, POSTERIOR_DRAWS), look.rng)
                 for name, acc in look.accumulators.items()}
        severe = spec.decision.severe_margin
        first = draws[primaries[0].name]
        # the arm the recommendation is about: least expected loss on the first primary (as recommend())
        arm = min(range(1, first.shape[1]),
                  key=lambda k: evidence_from_draws(primaries[0], first[:, 0], first[:, k], severe).loss_ship_rel)
        evidence = {name: evidence_from_draws(spec.metric(name), d[:, 0], d[:, arm], severe) for name, d in draws.items()}
        users = next(iter(look.accumulators.values())).users()
        gates = [srm_check("overall", users, np.array(spec.arm_weights), spec.decision.srm_p)]
        return int(users.sum()), spec.arm_names[arm], evidence, gates


def with_effect_prior(acc: Accumulator, metric: Metric, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Closed-form (flat-prior) draws resampled by the metric's treatment-effect prior.

    The models put ``Normal(0, prior.effect_sd)`` on each treatment's effect on the link scale (the
    sceptical 0.1 of guardrails included), or a learned prior mapped to that scale; the closed forms have no such prior, and with a few users at
    a 1% stage their flat prior makes tiny counts look like large harm. Weighting each draw by the prior
    density of its effects and resampling (importance resampling: the flat-prior posterior is the
    proposal) gives draws of the posterior under the model's prior, as the real analysis has it.
    """
    linked = acc.link(draws)
    effects = linked[:, 1:] - linked[:, :1]
    # a learned prior of relative effects is mapped to the link scale as the analysis maps it (the statistics
    # are built only then: the default prior does not depend on them, and this runs at every simulated look)
    prior = (prior_data(metric.prior) if metric.prior.learned is None
             else mapped_prior_data(family_for(metric), acc.stats(), metric))
    return resampled(draws, effects, prior, rng)[0]


class NaiveRule:
    name: RuleName = "naive"

    def ramp(self, spec: ExperimentSpec) -> tuple[Stage, ...]:
        return max_power_only(spec)

    def decide(self, look: Look) -> str:
        for name, acc in look.accumulators.items():
            metric = look.spec.metric(name)
            if metric.role != Role.PRIMARY:
                continue
            d = acc.posterior(look.rng, POSTERIOR_DRAWS)
            sign = 1.0 if metric.increase_is_good else -1.0
            if max(np.mean(sign * (d[:, k] - d[:, 0]) > 0) for k in range(1, d.shape[1])) <= NAIVE_THRESHOLD:
                return Action.HOLD
        return Action.SHIP


def relative_lift_z(acc: Accumulator, increase_is_good: bool) -> tuple[float, float]:
    """The best treatment's relative lift over control in the good direction and its delta-method
    variance (``nan`` when a mean is not positive)."""
    mean, variance = acc.estimate()
    if mean[0] <= 0 or np.any(mean <= 0):
        return math.nan, math.nan
    sign = 1.0 if increase_is_good else -1.0
    lifts = sign * (mean[1:] / mean[0] - 1.0)
    k = 1 + int(np.argmax(lifts))
    ratio = mean[k] / mean[0]
    return float(lifts[k - 1]), float(ratio ** 2 * (variance[k] / mean[k] ** 2 + variance[0] / mean[0] ** 2))


def msprt_log_likelihood_ratio(lift: float, variance: float, tau: float) -> float:
    """log of the mSPRT mixture likelihood ratio for an estimate ``lift`` ~ N(theta, ``variance``) against
    theta = 0, mixing theta ~ N(0, ``tau``^2); always valid: P(it ever exceeds log(1/alpha) | theta = 0)
    <= alpha."""
    if not (np.isfinite(lift) and variance > 0):
        return -math.inf
    total = variance + tau ** 2
    return 0.5 * math.log(variance / total) + lift ** 2 * tau ** 2 / (2 * variance * total)


def _verdicts(look: Look, significant) -> tuple[bool, bool]:
    """(every primary significantly better, any primary or guardrail significantly worse)."""
    better, worse = True, False
    for name, acc in look.accumulators.items():
        metric = look.spec.metric(name)
        lift, variance = relative_lift_z(acc, metric.increase_is_good)
        hit = significant(lift, variance)
        worse = worse or (hit and lift < 0)
        if metric.role == Role.PRIMARY:
            better = better and hit and lift > 0
    return better, worse


class SequentialRule:
    name: RuleName = "sequential"

    def ramp(self, spec: ExperimentSpec) -> tuple[Stage, ...]:
        return spec.ramp

    def decide(self, look: Look) -> str:
        spec = look.spec
        index = spec.stage_index(look.stage)
        current = spec.ramp[index]
        bound = math.log(1 / SEQUENTIAL_ALPHA)
        better, worse = _verdicts(look, lambda lift, v: msprt_log_likelihood_ratio(lift, v, look.effect) >= bound)
        if worse:
            return Action.ROLLBACK
        if look.days_at_stage < current.min_days or look.users < current.min_users:
            return Action.HOLD
        following = spec.ramp[min(index + 1, len(spec.ramp) - 1)]
        if look.stage < spec.max_power_stage:
            return Action.ADVANCE
        if better:
            return Action.SHIP if following.percent == 100 else Action.ADVANCE
        return Action.HOLD


class _AtTheHorizon:
    """A rule that runs at the maximum-power stage only and looks once, at the horizon: it holds before then,
    and :meth:`at_horizon` decides."""

    name: RuleName

    def ramp(self, spec: ExperimentSpec) -> tuple[Stage, ...]:
        return max_power_only(spec)

    def decide(self, look: Look) -> str:
        return Action.HOLD if look.day < look.horizon else self.at_horizon(look)

    def at_horizon(self, look: Look) -> str:
        raise NotImplementedError


class FixedHorizonRule(_AtTheHorizon):
    name: RuleName = "fixed_horizon"

    def at_horizon(self, look: Look) -> str:
        critical = -ndtri(FIXED_HORIZON_ALPHA)
        better, worse = _verdicts(look, lambda lift, v: v > 0 and abs(lift) / math.sqrt(v) > critical)
        if worse:
            return Action.ROLLBACK
        return Action.SHIP if better else Action.STOP_NO_EFFECT


def _z_tests(look: Look) -> list[tuple[Metric, float, float]]:
    """Per simulated metric: (metric, z of the best treatment's relative lift, its z against the margin) --
    the lift in the good direction over its delta-method standard error, and (lift + margin) over the same."""
    found = []
    for name, acc in look.accumulators.items():
        metric = look.spec.metric(name)
        lift, variance = relative_lift_z(acc, metric.increase_is_good)
        if not (np.isfinite(lift) and variance > 0):
            found.append((metric, math.nan, math.nan))
            continue
        sd = math.sqrt(variance)
        found.append((metric, lift / sd, (lift + metric.margin) / sd))
    return found


def _p_upper(z: float) -> float:
    """One-sided p-value of a z-statistic against "no improvement" (NaN: no evidence, p = 1)."""
    return 1.0 if not np.isfinite(z) else float(ndtr(-z))


class RiskAwareRule(_AtTheHorizon):
    name: RuleName = "risk_aware"

    def at_horizon(self, look: Look) -> str:
        tests = _z_tests(look)
        primaries = [z for m, z, _ in tests if m.role == Role.PRIMARY]
        alpha = FIXED_HORIZON_ALPHA
        if any(_p_upper(-z) < alpha / len(tests) for _, z, _ in tests):       # deterioration, Bonferroni
            return Action.ROLLBACK
        superior = any(_p_upper(z) < alpha / len(primaries) for z in primaries)
        non_inferior = all(_p_upper(z_margin) < alpha for m, _, z_margin in tests if m.role == Role.GUARDRAIL)
        return Action.SHIP if superior and non_inferior else Action.STOP_NO_EFFECT


class _AdjustedFixedHorizon(_AtTheHorizon):
    """The fixed-horizon test with its p-values adjusted across the metrics by :attr:`procedure`."""

    procedure = staticmethod(holm)

    def at_horizon(self, look: Look) -> str:
        tests = _z_tests(look)
        if any(self.procedure([_p_upper(-z) for _, z, _ in tests], FIXED_HORIZON_ALPHA)):
            return Action.ROLLBACK
        primaries = [z for m, z, _ in tests if m.role == Role.PRIMARY]
        return Action.SHIP if all(self.procedure([_p_upper(z) for z in primaries], FIXED_HORIZON_ALPHA)) \
            else Action.STOP_NO_EFFECT


class HolmRule(_AdjustedFixedHorizon):
    name: RuleName = "holm"
    procedure = staticmethod(holm)


class BenjaminiHochbergRule(_AdjustedFixedHorizon):
    name: RuleName = "benjamini_hochberg"
    procedure = staticmethod(benjamini_hochberg)

