"""Credible intervals of posterior draws: the one definition every table, figure and test uses."""

from __future__ import annotations

import arviz as az
import numpy as np


def hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    """Highest-density interval of the finite values (NaN when fewer than two)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan"), float("nan")
    low, high = az.hdi(finite, hdi_prob=prob)
    return float(low), float(high)
