"""The principal-strata model of non-compliance (Imbens & Rubin 1997) on sufficient statistics, sampled exactly.

Users fall into strata by what they would receive under either assignment: **compliers** receive the treatment
when assigned to it and not otherwise, **never-takers** never receive it (notifications off), **always-takers**
always do (another campaign; only under two-sided compliance). Nobody does the opposite of the assignment
(monotonicity), and the assignment changes a user's outcome only through receiving the treatment (the exclusion
restriction), so never- and always-takers have one mean each, whatever their arm. Each arm's four groups then
identify everything:

=====================  ===========================================  ==========================================
group                  who is in it                                 mean
=====================  ===========================================  ==========================================
control, received      always-takers                                ``mu_a``
control, not received  compliers and never-takers                   ``((c mu_c0) + nv mu_n) / (c + nv)``
treatment, received    compliers and always-takers                  ``((c mu_c1) + a mu_a) / (c + a)``
treatment, not         never-takers                                 ``mu_n``
=====================  ===========================================  ==========================================

with stratum shares ``a`` (the control's received share), ``nv`` (the treatment's not-received share) and
``c = 1 - a - nv``. The complier average causal effect is ``CACE = mu_c1 - mu_c0``, and for every draw
``CACE = ITT / c`` exactly (ITT: the difference of the arms' means).

**Sampling.** With flat priors, each group's mean has its conjugate posterior (a Beta for 0/1 values; the
Student-t of a mean otherwise, the central limit theorem's normal with the sample variance) and each arm's
received share a Beta; the strata parameters follow from them by the table above. A flat prior on the strata
parameters (``mu_c1``, ``mu_c0``, shares on the simplex) is restored by importance weights: the Jacobian
``(c + a)(c + nv) / c^2`` of the map from group means to complier means, times the indicator that every mean lies
in the metric's range (a rate in [0, 1], a count at least 0) and ``c > 0``. Resampling by those weights gives
independent draws of the exact posterior; the weights' effective sample size is reported. A stratum with no user
in its group (nobody in control received it) is taken as absent: its share is 0, its mean never needed.

Array-first: the caller hands in each group's ``n``, sum and sum of squares (one arm pair, one segment or all).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bayes_ab.models.prior_resampling import effective_size

PROPOSALS_PER_DRAW = 4
"""Flat-prior proposals per kept draw: the weights vary little unless compliance is low, so the kept draws stay
nearly independent."""


@dataclass(frozen=True)
class Group:
    """Users of one arm who did or did not receive the treatment: how many, the sum and the sum of squares of their
    values."""

    n: float
    total: float
    squares: float


@dataclass(frozen=True)
class StrataDraws:
    """Posterior draws of one treatment arm against control, each of shape (draws,).

    ``complier_share``: ``c``; ``itt_abs``/``itt_rel``: the difference and ratio - 1 of the arms' means;
    ``cace_abs``: the complier effect ``mu_c1 - mu_c0``; ``cace_rel``: ``mu_c1 / mu_c0 - 1``;
    ``complier_control``: ``mu_c0``, the compliers' mean without the treatment; ``ess``: the importance weights'
    effective sample size (Kish)."""

    complier_share: np.ndarray
    itt_abs: np.ndarray
    itt_rel: np.ndarray
    cace_abs: np.ndarray
    cace_rel: np.ndarray
    complier_control: np.ndarray
    ess: float


def _mean_draws(rng: np.random.Generator, group: Group, size: int, binary: bool, fallback_variance: float) -> np.ndarray:
    """Flat-prior draws of a group's mean: Beta for 0/1 values, Student-t of the sample mean otherwise (a group of
    one user borrows ``fallback_variance`` with one degree of freedom)."""
    if binary:
        return rng.beta(1.0 + group.total, 1.0 + group.n - group.total, size)
    mean = group.total / group.n
    if group.n >= 2:
        variance, dof = max(group.squares - group.total * mean, 0.0) / (group.n - 1), group.n - 1
    else:
        variance, dof = fallback_variance, 1.0
    return mean + np.sqrt(variance / group.n) * rng.standard_t(dof, size)


def pooled_variance(groups: tuple[Group, ...]) -> float:
    """The sample variance of all the groups' users together (what a group of one user borrows)."""
    n = sum(g.n for g in groups)
    if n < 2:
        return 0.0
    mean = sum(g.total for g in groups) / n
    return max(sum(g.squares for g in groups) - n * mean ** 2, 0.0) / (n - 1.0)


def _share_draws(rng: np.random.Generator, inside: float, outside: float, size: int) -> np.ndarray:
    """Flat-prior draws of the share of an arm's users in one group (exactly 0 when the group is empty)."""
    return rng.beta(1.0 + inside, 1.0 + outside, size) if inside > 0 else np.zeros(size)


def strata_draws(rng: np.random.Generator, control: tuple[Group, Group], treatment: tuple[Group, Group], *,
                 binary: bool, lower: float | None, upper: float | None, size: int) -> StrataDraws | None:
    """Posterior draws of the principal-strata model of one treatment arm against control.

    Parameters
    ----------
    control, treatment
        Each arm's groups (not received, received).
    binary
        The values are 0/1 (a conversion): Beta posteriors of the groups' rates.
    lower, upper
        The range of a mean (``None``: unbounded).
    size
        Draws to return.

    Returns
    -------
    StrataDraws or None
        ``None`` when no treatment user received the treatment or every control user did: there are no
        compliers to estimate an effect for.
    """
    (c_not, c_got), (t_not, t_got) = control, treatment
    if t_got.n == 0 or c_not.n == 0:
        return None
    proposals = size * PROPOSALS_PER_DRAW
    fallback = pooled_variance((c_not, c_got, t_not, t_got))

    a = _share_draws(rng, c_got.n, c_not.n, proposals)          # always-takers: control users who received it
    nv = _share_draws(rng, t_not.n, t_got.n, proposals)         # never-takers: treatment users who did not
    c = 1.0 - a - nv
    q_treated = _mean_draws(rng, t_got, proposals, binary, fallback)
    q_untreated = _mean_draws(rng, c_not, proposals, binary, fallback)
    mu_a = _mean_draws(rng, c_got, proposals, binary, fallback) if c_got.n > 0 else np.zeros(proposals)
    mu_n = _mean_draws(rng, t_not, proposals, binary, fallback) if t_not.n > 0 else np.zeros(proposals)

    with np.errstate(divide="ignore", invalid="ignore"):
        treated_mean = (1.0 - nv) * q_treated + nv * mu_n          # the arms' means: (c + a) q + nv mu_n
        control_mean = a * mu_a + (1.0 - a) * q_untreated
        mu_c1 = ((1.0 - nv) * q_treated - a * mu_a) / c
        mu_c0 = ((1.0 - a) * q_untreated - nv * mu_n) / c
        valid = c > 0
        for means in (mu_c1, mu_c0, q_treated, q_untreated, mu_a, mu_n):
            if lower is not None:
                valid &= means >= lower
            if upper is not None:
                valid &= means <= upper
        weight = np.where(valid, (1.0 - nv) * (1.0 - a) / np.where(valid, c, 1.0) ** 2, 0.0)
    if not weight.sum() > 0:
        return None
    ess = effective_size(weight)
    chosen = rng.choice(proposals, size=size, p=weight / weight.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        itt_abs = treated_mean - control_mean
        return StrataDraws(complier_share=c[chosen], itt_abs=itt_abs[chosen],
                           itt_rel=(treated_mean / control_mean - 1.0)[chosen],
                           cace_abs=(mu_c1 - mu_c0)[chosen], cace_rel=(mu_c1 / mu_c0 - 1.0)[chosen],
                           complier_control=mu_c0[chosen], ess=ess)
