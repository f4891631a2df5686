"""Sample-ratio mismatch: chi-square test of users per arm against the planned split."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from bayes_ab.decision.checks import RuleCheck
from bayes_ab.multiplicity import holm, holm_limits
from bayes_ab.spec import ExperimentSpec


def srm_p_value(users: np.ndarray, weights: np.ndarray) -> float:
    """P-value of the chi-square goodness-of-fit test of ``users`` per arm against ``weights``."""
    users = np.asarray(users, dtype=float)
    if users.sum() == 0:
        return 1.0
    expected = users.sum() * np.asarray(weights, dtype=float) / np.sum(weights)
    statistic = float(((users - expected) ** 2 / expected).sum())
    # the chi-square survival function with k - 1 degrees of freedom, as scipy.stats.chisquare computes it
    # (scipy.special only: scipy.stats costs a check-in half a second to import)
    return float(special.chdtrc(users.size - 1, statistic))


def srm_checks(stats: xr.Dataset, spec: ExperimentSpec, threshold: float) -> list[RuleCheck]:
    """Overall and per-segment SRM checks; a failure is blocking.

    The overall check is one test at ``threshold``. The per-segment checks are a family: with 1,000 segments,
    each tested at p < 0.001, one fails by chance in two experiments out of three. They are corrected by Holm's
    step-down (segment ``i`` of ``k``, by increasing p-value, fails while ``p_(i) <= threshold / (k - i + 1)``;
    :func:`~bayes_ab.multiplicity.holm`),
    which keeps the chance that any segment of a correctly split experiment fails at ``threshold`` whatever the
    number of segments, and flags every segment Bonferroni would and possibly more.
    """
    weights = np.array([next(a.weight for a in spec.arms if a.name == arm) for arm in stats["arm"].values])
    counted = spec.unit_name
    checks = [srm_check("overall", stats["n"].sum("segment").values, weights, threshold, counted=counted)]
    count = stats.sizes["segment"]
    if count > 1:
        users = list(stats["n"].transpose("segment", "arm").values)
        p_values = [srm_p_value(u, weights) for u in users]
        failed, limits = holm(p_values, threshold), holm_limits(p_values, threshold)
        checks += [srm_check(str(s), u, weights, limit, family=count, failed=f, counted=counted)
                   for s, u, limit, f in zip(stats["segment"].values, users, limits, failed)]
    return checks


def srm_check(scope: str, users: np.ndarray, weights: np.ndarray, threshold: float,
              family: int = 1, failed: bool | None = None, counted: str = "users") -> RuleCheck:
    """The blocking SRM check of one scope (``overall`` or a segment): users per arm against ``weights``.

    For a segment among ``family`` > 1, ``threshold`` is its Holm limit (by its rank) and ``failed`` Holm's
    verdict, which also depends on the smaller p-values. ``counted`` names the units (clusters when whole clusters
    were randomised: their split is what the randomisation fixed)."""
    weights = np.asarray(weights, dtype=float)
    planned = " / ".join(f"{w:.0%}" for w in weights / weights.sum())
    p = srm_p_value(users, weights)
    shares = " / ".join(f"{u / users.sum():.1%}" for u in users) if users.sum() else "no users"
    corrected = f" (Holm, {family:,} segments)" if family > 1 else ""
    return RuleCheck(name=f"sample ratio ({scope})", value=f"p = {p:.2g}", threshold=f"p >= {threshold:.2g}{corrected}",
                     passed=p >= threshold if failed is None else not failed, blocking=True,
                     detail=f"{counted} {', '.join(f'{int(u):,}' for u in users)} = {shares}, planned {planned}")
