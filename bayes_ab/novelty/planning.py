"""How many weeks tell novelty from a lasting effect: simulated experiments read by the real analysis.

Each simulated experiment enrols users for ``exposure_days`` and follows them for ``max_weeks`` weeks; it is
read at the end of every week from week 2 on, as a running test would be, by the same
:func:`~bayes_ab.novelty.effects.analyze_novelty` and the same :data:`~bayes_ab.novelty.effects.LIKELY`
threshold the analysis uses. Two truths are simulated on common random numbers:

- **fading**: the treatment's lift is ``early`` in the first week and approaches ``long_run``
  (halving the gap every ``half_life`` weeks);
- **lasting**: the first week's lift stays (``early`` every week).

A week count "tells them apart" when novelty is found in at least ``power`` of the fading experiments and a
lasting effect is flagged in at most ``false_rate`` of the lasting ones (default 80% and 10%).

Users are heterogeneous (a gamma frailty with shape ``dispersion`` persists across weeks, so the same users
stay heavy); given the frailty, the family draws each user's weekly value (``Family.draw_from_means``: a count
is Poisson, a conversion Bernoulli with the frailty on its rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import xarray as xr

from bayes_ab.aggregation.panel import DAYS_PER_WEEK as DAYS, weekly_dataset
from bayes_ab.display import HtmlRepr
from bayes_ab.families import registry
from bayes_ab.metric import Metric
from bayes_ab.novelty.effects import analyze_novelty
from bayes_ab.novelty.model import decay

_ORIGIN = date(2026, 1, 5)      # a Monday: cohort labels only


@dataclass(frozen=True)
class WeekReading:
    """What reading the simulated experiments after ``weeks`` weeks gives."""

    weeks: int
    novelty_found: float        # fading truth: share with novelty likely
    lasting_flagged: float      # lasting truth: share wrongly flagged as novelty
    long_run_width: float       # fading truth: median width of the long-run interval
    long_run_covered: float     # fading truth: share of long-run intervals covering the truth


@dataclass(frozen=True)
class NoveltyPlan(HtmlRepr):
    """The readings week by week and the first week count that tells the two truths apart."""

    metric: str
    daily_users: int
    exposure_days: int
    early: float
    long_run: float
    half_life_weeks: float
    experiments: int
    power: float
    false_rate: float
    readings: tuple[WeekReading, ...]

    @property
    def weeks_needed(self) -> int | None:
        return next((r.weeks for r in self.readings
                     if r.novelty_found >= self.power and r.lasting_flagged <= self.false_rate), None)

    def text(self) -> str:
        lines = [f"Novelty plan for {self.metric}: {self.daily_users:,} users/day for {self.exposure_days} days; "
                 f"fading {self.early:+.1%} -> {self.long_run:+.1%} (half-life {self.half_life_weeks:g} week(s)) "
                 f"against a lasting {self.early:+.1%}; {self.experiments} simulated experiments each",
                 "", "weeks  novelty found (fading)  flagged (lasting)  long-run interval width  covers truth"]
        for r in self.readings:
            lines.append(f"{r.weeks:>5}  {r.novelty_found:>22.1%}  {r.lasting_flagged:>17.1%}  "
                         f"{r.long_run_width:>23.2%}  {r.long_run_covered:>12.1%}")
        needed = self.weeks_needed
        lines.append("")
        lines.append(f"{needed} weeks tell the fading lift from a lasting one (novelty found in >= {self.power:.0%}, "
                     f"a lasting effect flagged in <= {self.false_rate:.0%})." if needed is not None else
                     f"No week count up to {self.readings[-1].weeks} tells them apart at these settings: more users, "
                     "or a longer test.")
        return "\n".join(lines)


def simulate_weekly(rng: np.random.Generator, family: str, n_users: int, weekly_mean: float, dispersion: float,
                    lift_by_week: np.ndarray, exposure_days: int, share_treated: float = 0.5):
    """Users' weekly values for every week since exposure: (arm, exposure day, values users x weeks).

    ``family``: the registered family whose :meth:`~bayes_ab.families.Family.draw_from_means` draws a user's
    value given its rate."""
    treated = rng.random(n_users) < share_treated
    exposed = rng.integers(0, exposure_days, n_users)
    frailty = rng.gamma(dispersion, 1.0 / dispersion, n_users)
    factor = np.where(treated[:, None], 1.0 + lift_by_week[None, :], 1.0)
    rate = weekly_mean * frailty[:, None] * factor
    values = registry()[family].draw_from_means(rng, rate)
    return treated.astype(int), exposed, values


def weekly_statistics(arm: np.ndarray, exposed: np.ndarray, values: np.ndarray, last_day: int,
                      arms: tuple[str, str] = ("control", "treatment")) -> xr.Dataset:
    """The statistics :func:`~bayes_ab.aggregation.panel.novelty_statistics` computes, from simulated users
    (only users exposed by ``last_day``; weeks not yet complete are masked)."""
    keep = exposed <= last_day
    arm, exposed, values = arm[keep], exposed[keep], values[keep]
    cohort = exposed // DAYS
    cohorts, weeks = int(cohort.max()) + 1, values.shape[1]
    users = np.zeros((2, cohorts))
    sums = np.zeros((2, cohorts, weeks))
    cross = np.zeros((2, cohorts, weeks, weeks))
    latest = np.full(cohorts, -1)
    for a in (0, 1):
        for c in range(cohorts):
            chosen = (arm == a) & (cohort == c)
            block = values[chosen]
            users[a, c] = chosen.sum()
            sums[a, c] = block.sum(axis=0)
            cross[a, c] = block.T @ block
            if chosen.any():
                latest[c] = max(latest[c], int(exposed[chosen].max()))
    return weekly_dataset(list(arms), users, sums, cross, latest, last_day,
                          [(_ORIGIN + timedelta(days=DAYS * c)).isoformat() for c in range(cohorts)])


def plan_novelty(metric: Metric, *, daily_users: int, weekly_mean: float, dispersion: float = 0.5, early: float,
                 long_run: float, half_life_weeks: float = 1.0, exposure_days: int = 14, max_weeks: int = 8,
                 experiments: int = 200, power: float = 0.8, false_rate: float = 0.1, seed: int = 0) -> NoveltyPlan:
    """Simulate both truths and read them every week from 2 to ``max_weeks`` (see the module docstring).

    ``weekly_mean``: the control's mean per user per week (a count), or its weekly conversion rate.
    """
    weeks = np.arange(max_weeks)
    fading = long_run + (early - long_run) * decay(weeks, half_life_weeks)
    lasting = np.full(max_weeks, early)
    n_users = daily_users * exposure_days
    found, flagged, widths, covered = ([[] for _ in range(max_weeks + 1)] for _ in range(4))
    for i in range(experiments):
        for truth, is_fading in ((fading, True), (lasting, False)):
            rng = np.random.default_rng([seed, i])          # the same users under both truths
            arm, exposed, values = simulate_weekly(rng, metric.family, n_users, weekly_mean, dispersion, truth,
                                                   exposure_days)
            for read in range(2, max_weeks + 1):
                stats = weekly_statistics(arm, exposed, values[:, :read], DAYS * read - 1)
                effects, _ = analyze_novelty(stats, metric, 0.9, 2000, seed * 100_003 + i)
                result = effects.arm("treatment")
                if result is None:
                    continue
                if is_fading:
                    found[read].append(result.likely == "novelty")
                    widths[read].append(result.long_run_high - result.long_run_low)
                    covered[read].append(result.long_run_low <= long_run <= result.long_run_high)
                else:
                    flagged[read].append(result.likely == "novelty")
    readings = tuple(WeekReading(read, float(np.mean(found[read])), float(np.mean(flagged[read])),
                                 float(np.median(widths[read])), float(np.mean(covered[read])))
                     for read in range(2, max_weeks + 1) if found[read])
    return NoveltyPlan(metric.name, daily_users, exposure_days, early, long_run, half_life_weeks, experiments,
                       power, false_rate, readings)


__all__ = ["NoveltyPlan", "WeekReading", "plan_novelty", "simulate_weekly", "weekly_statistics"]
