"""Credible intervals of posterior draws: the one definition every table, figure and test uses.

Two kinds (the spec's ``interval_kind``): the **equal-tailed** interval (the default), whose ends are the
draws' ``(1 - p)/2`` and ``(1 + p)/2`` quantiles, and the **highest-density** interval, the narrowest window
holding ``p`` of the draws. A lift is reported on two scales (relative and absolute) and read against
bootstrap and frequentist intervals, which are equal-tailed: the equal-tailed interval maps through any
monotone transform (the log ratio, the relative lift) to the same interval, where an HDI of a skewed lift
sits towards the mode -- 2 to 8 points left of a per-user bootstrap's interval on a spend metric.

The level travels through the code as the number it has always been (formatted as "90%", used in
arithmetic, written to JSON) and carries its kind with it (:class:`CredibleLevel`), so no table, figure,
check or stored look can use the other definition by having been handed a bare number.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np


class IntervalKind(StrEnum):
    """Which credible interval of the draws is reported."""

    ETI = "eti"     # equal-tailed: the (1 - p)/2 and (1 + p)/2 quantiles
    HDI = "hdi"     # highest-density: the narrowest window holding p of the draws


class CredibleLevel(float):
    """A credible level (e.g. 0.9) that remembers which interval it asks for; a plain float means equal-tailed.

    Arithmetic gives plain floats: only the level as the spec set it carries the kind, which is what every
    interval of the analysis is computed from.
    """

    kind: IntervalKind

    def __new__(cls, level: float, kind: IntervalKind | str = IntervalKind.ETI) -> "CredibleLevel":
        value = super().__new__(cls, level)
        value.kind = IntervalKind(kind)
        return value

    def __getnewargs__(self) -> tuple[float, str]:
        return float(self), str(self.kind)

    def __repr__(self) -> str:
        return f"CredibleLevel({float(self)!r}, {str(self.kind)!r})"


def kind_of(level: float) -> IntervalKind:
    """The interval kind ``level`` asks for (equal-tailed unless it is a :class:`CredibleLevel` saying HDI)."""
    return getattr(level, "kind", IntervalKind.ETI)


def interval_name(level: float) -> str:
    """How a table heading names the interval: "interval" for the equal-tailed default, "HDI" otherwise."""
    return "HDI" if kind_of(level) == IntervalKind.HDI else "interval"


def credible_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The credible interval of the finite ``values`` at ``level``, of the kind the level carries."""
    return hdi(values, level) if kind_of(level) == IntervalKind.HDI else eti(values, level)


def eti(values: np.ndarray, prob: float) -> tuple[float, float]:
    """Equal-tailed interval of the finite values (NaN when fewer than two): numpy's linear-interpolation
    quantiles at ``(1 - prob)/2`` and ``(1 + prob)/2`` (ArviZ's ``eti`` and ``np.quantile`` agree)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - prob) / 2, (1 + prob) / 2])
    return float(low), float(high)


def hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    """Highest-density interval of the finite values (NaN when fewer than two).

    The narrowest window of sorted draws holding ``floor(prob * n)`` steps, the first of equally narrow ones
    (ArviZ's definition for unimodal draws; computed here because importing ArviZ costs a check-in about a
    second, and the tests compare both).
    """
    finite = np.sort(values[np.isfinite(values)])
    n = finite.size
    if n < 2:
        return float("nan"), float("nan")
    steps = int(np.floor(prob * n))
    if steps >= n:
        return float(finite[0]), float(finite[-1])
    widths = finite[steps:] - finite[:n - steps]
    start = int(np.argmin(widths))
    return float(finite[start]), float(finite[start + steps])


__all__ = ["IntervalKind", "CredibleLevel", "kind_of", "interval_name", "credible_interval", "eti", "hdi"]
