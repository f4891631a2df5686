"""The classical fixed-horizon sample size for the same effect: the reference an analyst expects to see.

A two-sided z-test at level ``alpha`` with power ``power`` against a relative change ``effect`` of
the control mean, with ``ratio`` treatment users per control user. The family gives the per-user variance
(``Family.unit_variance`` / ``fixed_horizon_sds``):

- rates (conversion, D-horizon retention): the two-proportion test with the pooled variance
  under the null and the unpooled one under the alternative (Fleiss, without continuity correction);
- counts: the per-user variance of a negative binomial, ``mu + mu^2 / dispersion`` (Poisson: ``mu``);
- means: the baseline standard deviation in both arms;
- ratios: the delta-method variance of the per-user linearised ratio.

The test is looked at once, at the end, so it does not answer "when can we stop" -- the simulated
assurance of the Bayesian rule does; this figure is for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import ndtri

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import SpecError
from bayes_ab.families import family_for
from bayes_ab.metric import Direction
from bayes_ab.spec import Baseline, Metric


@dataclass(frozen=True)
class FixedHorizon(HtmlRepr):
    """Users needed per arm by a fixed-horizon z-test, and the days that takes at full traffic."""

    metric: str
    family: str
    effect: float
    alpha: float
    power: float
    control_users: int
    treatment_users: int
    days_at_full_traffic: float
    variance_factor: float = 1.0
    """The share of each user's variance left after the metric's covariates (``1 - R^2``; 1 without them)."""

    @property
    def total_users(self) -> int:
        """Control plus one treatment arm."""
        return self.control_users + self.treatment_users

    def text(self) -> str:
        """One line for the console."""
        return (f"{self.metric}: a fixed-horizon two-sided z-test (alpha {self.alpha:g}, power {self.power:.0%}) "
                f"needs {self.control_users:,} control and {self.treatment_users:,} treatment users "
                f"for a {self.effect:+.1%} change (~{self.days_at_full_traffic:.1f} days at full traffic, "
                f"one look at the end" + (f"; with covariates leaving {self.variance_factor:.0%} of the variance)"
                                          if self.variance_factor < 1 else ")"))


def fixed_horizon_sample_size(
    metric: Metric,
    baseline: Baseline,
    effect: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    power: float = 0.8,
    daily_users: float | None = None,
    control_share: float | None = None,
    variance_factor: float = 1.0,
) -> FixedHorizon:
    """Users per arm for a two-sided z-test to detect relative change ``effect`` of ``baseline.value``.

    Parameters
    ----------
    metric, baseline
        The metric (its family picks the variance) and its control-arm baseline.
    effect
        Relative change in the metric's good direction (0.05 = 5% better).
    ratio
        Treatment users per control user (the traffic split).
    alpha, power
        Two-sided significance level and power.
    daily_users, control_share
        Users per day at 100% traffic and the control arm's share of them (default: the share when
        control and one treatment split traffic by ``ratio``); give the days at full traffic.
    variance_factor
        The share of the per-user variance left after regression adjustment (``1 - R^2`` for covariates whose
        prediction correlates with the value by ``R``): the users needed scale by it.
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise SpecError(f"alpha and power must be in (0, 1), got alpha {alpha}, power {power}")
    if not ratio > 0:
        raise SpecError(f"the treatment/control ratio must be positive, got {ratio}")
    if effect == 0 or not math.isfinite(effect):
        raise SpecError(f"metric {metric.name!r}: the effect must be a non-zero relative change, got {effect}")
    sign = 1.0 if metric.direction == Direction.INCREASE else -1.0
    control = baseline.value
    treatment = control * (1 + sign * effect)
    diff = treatment - control
    z_alpha, z_power = -ndtri(alpha / 2), -ndtri(1 - power)      # normal quantiles: norm.isf(q) = -ndtri(q)
    sd_null, sd_alt = family_for(metric).fixed_horizon_sds(metric, baseline, control, treatment, ratio)
    control_users = math.ceil(variance_factor * ((z_alpha * sd_null + z_power * sd_alt) / diff) ** 2)
    treatment_users = math.ceil(ratio * control_users)
    days = math.nan
    if daily_users:
        share = control_share if control_share is not None else 1 / (1 + ratio)
        days = control_users / (daily_users * share)
    return FixedHorizon(metric.name, metric.family, effect, alpha, power, control_users, treatment_users, days,
                        variance_factor)

