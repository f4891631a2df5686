"""Credible intervals of posterior draws: the one definition every table, figure and test uses."""

from __future__ import annotations

import numpy as np


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
