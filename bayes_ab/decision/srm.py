"""Sample-ratio mismatch: chi-square test of users per arm against the planned split."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import special

from bayes_ab.decision.checks import RuleCheck
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
    """Overall and per-segment SRM checks; a failure is blocking."""
    weights = np.array([next(a.weight for a in spec.arms if a.name == arm) for arm in stats["arm"].values])
    scopes = [("overall", stats["n"].sum("segment").values)]
    if stats.sizes["segment"] > 1:
        scopes += [(str(s), stats["n"].sel(segment=s).values) for s in stats["segment"].values]
    return [srm_check(scope, users, weights, threshold) for scope, users in scopes]


def srm_check(scope: str, users: np.ndarray, weights: np.ndarray, threshold: float) -> RuleCheck:
    """The blocking SRM check of one scope (``overall`` or a segment): users per arm against ``weights``."""
    weights = np.asarray(weights, dtype=float)
    planned = " / ".join(f"{w:.0%}" for w in weights / weights.sum())
    p = srm_p_value(users, weights)
    shares = " / ".join(f"{u / users.sum():.1%}" for u in users) if users.sum() else "no users"
    return RuleCheck(name=f"sample ratio ({scope})", value=f"p = {p:.2g}", threshold=f"p >= {threshold:g}",
                     passed=p >= threshold, blocking=True,
                     detail=f"users {', '.join(f'{int(u):,}' for u in users)} = {shares}, planned {planned}")
