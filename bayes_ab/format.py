"""Number formatting for humans: probabilities and relative lifts."""

from __future__ import annotations

import math


def probability(p: float) -> str:
    """``0.9612 -> '96%'``; extremes keep a decimal (``'99.8%'``) and never round to 0% or 100%."""
    if math.isnan(p):
        return "n/a"
    if p < 0.001:
        return "<0.1%"
    if p > 0.999:
        return ">99.9%"
    if p < 0.01 or p > 0.99:
        return f"{100 * p:.1f}%"
    return f"{100 * p:.0f}%"


def relative(x: float) -> str:
    """Signed percentage with a precision that suits its size: ``+4.1%``, ``-0.35%``."""
    if math.isnan(x):
        return "n/a"
    pct = 100 * x
    return f"{pct:+.2f}%" if abs(pct) < 1 else f"{pct:+.1f}%"


def amount(x: float, signed: bool = False) -> str:
    """A number in a metric's display unit with the digits its size needs: ``0.42``, ``12.50``, ``0.00038``
    (two significant digits below 0.1), the one formatter of expected losses and absolute differences
    (:meth:`~bayes_ab.families.base.Family.format_absolute`, the console's and the report's tables)."""
    if math.isnan(x):
        return "n/a"
    digits = 2 if abs(x) >= 0.1 or x == 0 else 1 - int(math.floor(math.log10(abs(x))))
    return f"{x:{'+' if signed else ''}.{digits}f}"


def threshold(p: float) -> str:
    """A configured probability or share exactly as set: ``0.995 -> '99.5%'``, ``0.95 -> '95%'``."""
    return f"{round(100 * p, 6):g}%"


def share(x: float) -> str:
    """A share of users: ``0.783 -> '78%'``, ``0.052 -> '5.2%'`` (a decimal below 10%)."""
    if math.isnan(x):
        return "n/a"
    return f"{100 * x:.1f}%" if abs(x) < 0.1 else f"{100 * x:.0f}%"
