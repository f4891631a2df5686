"""Mid-test: how likely is the rule to leave ``hold`` within the next days, given what has been seen.

Posterior predictive simulation: draw the true per-arm means of every primary metric and guardrail from the current
posterior (overall, segments weighted by traffic), simulate the coming days at the current stage on
top of the statistics observed so far, and apply the decision rule at every look until it says
something other than ``hold``. The share of draws that have done so by day ``N`` is the predictive
probability of a decision within ``N`` more days, split by what the decision was.

The observed data are pooled over segments and analysed with the conjugate closed forms (as in the
stopping-rule simulation). Retention users already exposed keep the life table they have (they are
not followed further), which makes the retention outlook conservative. A CUPED covariate is not
simulated (the outlook uses the unadjusted variance, also conservative).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayes_ab.analysis import Analysis
from bayes_ab.decision import ACTIONS, Action
from bayes_ab.errors import SpecError
from bayes_ab.families import family_for
from bayes_ab.metric import Role
from bayes_ab.spec import Baseline, Metric
from bayes_ab.stopping.generate import Truth, truth
from bayes_ab.stopping.operating import run_world
from bayes_ab.stopping.rules import rule

LEAVING_HOLD = tuple(a for a in ACTIONS if a != Action.HOLD)


@dataclass(frozen=True)
class DecisionOutlook:
    """Predictive probabilities of the rule's next non-``hold`` action within each number of days."""

    stage: float
    daily_users: int
    days: int
    draws: int
    outcomes: tuple[str, ...]           # per draw: the first non-hold action, or "hold"
    decision_days: tuple[int, ...]      # per draw: the day (1..days) it came, ``days`` if none
    experiment_daily: float
    """Users a day entering the experiment at this stage, every arm counted."""

    def probability(self, within: float, actions=LEAVING_HOLD) -> float:
        """P(the rule's next action is one of ``actions`` and comes within ``within`` more days)."""
        hits = sum(1 for o, d in zip(self.outcomes, self.decision_days) if o in actions and d <= within)
        return hits / self.draws

    def standard_error(self, within: float) -> float:
        """Monte Carlo standard error of :meth:`probability` (any action)."""
        p = self.probability(within)
        return math.sqrt(max(p * (1 - p), 1e-12) / self.draws)

    def days_needed(self, probability: float = 0.8) -> int | None:
        """Fewest more days after which a decision has at least ``probability``; ``None`` if not within
        the simulated days."""
        for day in range(1, self.days + 1):
            if self.probability(day) >= probability:
                return day
        return None

    def to_pandas(self) -> pd.DataFrame:
        """One row per day ahead: P(any decision) and P(each action) by then."""
        return pd.DataFrame([{"days_ahead": d, "p_decision": self.probability(d),
                              **{f"p_{a}": self.probability(d, (a,)) for a in LEAVING_HOLD}}
                             for d in range(1, self.days + 1)])

    def text(self) -> str:
        """What would change the ``hold``, as a product review reads it: how likely a decision is within a few
        days at this stage, how many days and users (every arm) an 80% chance takes, and which decision is likely.

        E.g. "If the test stays at 5% (about 2,000 users a day, both arms): a decision is 10% likely within 1 day,
        35% within 3 days, 64% within 7 days; about 11 more days (~22,000 users) give an 80% chance. If it
        decides, most likely: advance 60%, roll back 5% (simulated from 200 posterior draws)."
        """
        per_day = self.experiment_daily
        marks = sorted({d for d in (1, 3, 7, 14, self.days) if d <= self.days})
        chances = ", ".join(f"{self.probability(d):.0%} within {d} day{'s' if d > 1 else ''}" for d in marks)
        ahead = self.days_needed()
        need = (f"about {ahead} more day{'s' if ahead > 1 else ''} (~{ahead * per_day:,.0f} users) give an 80% chance"
                if ahead else f"even {self.days} more days give less than an 80% chance")
        likely = sorted(((self.probability(self.days, (a,)), a) for a in LEAVING_HOLD), reverse=True)
        split = ", ".join(f"{str(a).replace('_', ' ').replace('rollback', 'roll back')} {p:.0%}"
                          for p, a in likely if p > 0)
        return (f"If the test stays at {self.stage:g}% (about {per_day:,.0f} users a day, both arms): a decision is "
                f"{chances}; {need}."
                + (f" If it decides within {self.days} days, most likely: {split}" if split else "")
                + f" (simulated from {self.draws} posterior draws).")

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.text())}</p>"
                + self.to_pandas().to_html(index=False, float_format=lambda x: f"{x:.1%}"))


def decision_outlook(
    analysis: Analysis,
    stage: float,
    days_at_stage: float,
    daily_users: int,
    *,
    days: int = 14,
    look_every: int = 1,
    draws: int = 200,
    seed: int = 0,
) -> DecisionOutlook:
    """Predictive probability that the decision rule leaves ``hold`` within 1..``days`` more days.

    Parameters
    ----------
    analysis
        The current analysis (its posteriors and statistics).
    stage, days_at_stage
        Current ramp stage (percent) and days already spent at it.
    daily_users
        Users entering per day at 100% of traffic; the stage gets its share.
    days, look_every
        Days simulated ahead and the days between looks.
    draws
        Posterior draws simulated (each one continuation of the experiment).
    """
    spec = analysis.spec
    if spec.grouped_units:
        raise SpecError(f"{spec.source}: the outlook simulates independent users; a cluster-randomised or switchback "
                        "experiment grows by clusters or periods (bayes-ab plan says how many)")
    stage_index = spec.stage_index(stage)
    for name, value in (("daily_users", daily_users), ("days", days), ("look_every", look_every), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SpecError(f"outlook: {name} must be an integer >= 1, got {value!r}")
    primaries = spec.metrics_in(Role.PRIMARY)
    if not primaries:
        raise SpecError(f"{spec.source}: metrics: an outlook needs at least one metric with role 'primary'")
    rng = np.random.default_rng(seed)
    judged = spec.metrics_in(Role.PRIMARY, Role.GUARDRAIL)
    means = {m.name: _arm_mean_draws(analysis, m) for m in judged}
    start = {m.name: analysis.stats[m.name] for m in judged}
    default_rule = rule("default")
    outcomes, decision_days = [], []
    for _ in range(draws):
        truths = {m.name: _continuation(analysis, m, means[m.name], rng) for m in judged}
        (outcome, day, *_), = run_world(spec, truths, [default_rule], daily_users=daily_users, days=days,
                                         look_every=look_every, effect=0.0, world_rng=rng, rule_rngs=[rng],
                                         start=start, stage_index=stage_index, days_at_stage=days_at_stage,
                                         ends=LEAVING_HOLD)
        outcomes.append("hold" if outcome == "undecided" else outcome)
        decision_days.append(day)
    return DecisionOutlook(stage, daily_users, days, draws, tuple(outcomes), tuple(decision_days),
                           daily_users * spec.traffic_share(stage))


def _arm_mean_draws(analysis: Analysis, metric: Metric) -> np.ndarray:
    """Posterior draws of each arm's overall mean, shape (draws, arms); segments weighted by traffic."""
    return analysis.fits[metric.name].overall_mean.stack(sample=("chain", "draw")).transpose("sample", "arm").values


def _continuation(analysis: Analysis, metric: Metric, means: np.ndarray, rng: np.random.Generator) -> Truth:
    """The truth of one continuation: every arm's mean from one posterior draw."""
    draw = means[rng.integers(len(means))]
    control = float(draw[0])
    if control == 0:
        raise SpecError(f"metric {metric.name!r}: the control mean is 0 in the posterior; relative lifts are undefined")
    return truth(metric, Baseline(control, family_for(metric).spread(metric, analysis.stats[metric.name])), draw / control)

