"""Corrections for testing many hypotheses at once: Holm's step-down and Benjamini-Hochberg.

Both the sample-ratio checks across segments (:mod:`bayes_ab.decision.srm`) and the multi-metric reference
rules (:mod:`bayes_ab.stopping.rules`) use them, so they sit in the kernel: one definition, checked against
statsmodels (``tests/test_multiplicity.py``).
"""

from __future__ import annotations


def holm_limits(p_values: list[float], alpha: float) -> list[float]:
    """Each hypothesis's limit in Holm's step-down procedure: ``alpha / (k - i + 1)`` for the ``i``-th of ``k``
    (from 1) by increasing p-value, ties in the given order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    limits = [0.0] * len(p_values)
    for rank, i in enumerate(order):
        limits[i] = alpha / (len(p_values) - rank)
    return limits


def holm(p_values: list[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``: by increasing p-value,
    the ``i``-th of ``k`` (from 1) while ``p_(i) <= alpha / (k - i + 1)`` (:func:`holm_limits`) holds for it
    and every smaller one."""
    limits = holm_limits(p_values, alpha)
    rejected = [False] * len(p_values)
    for i in sorted(range(len(p_values)), key=lambda i: p_values[i]):
        if p_values[i] > limits[i]:
            break
        rejected[i] = True
    return rejected


def benjamini_hochberg(p_values: list[float], alpha: float) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg procedure rejects at false-discovery rate ``alpha``."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    passing = [rank for rank, i in enumerate(order) if p_values[i] <= alpha * (rank + 1) / len(p_values)]
    cut = max(passing, default=-1)
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        rejected[i] = rank <= cut
    return rejected
