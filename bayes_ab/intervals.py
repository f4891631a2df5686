"""Credible intervals of posterior draws: the one definition every table, figure and test uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:     # ArviZ costs seconds to import; only the functions that build its objects load it
    import arviz as az


def hdi(values: np.ndarray, prob: float) -> tuple[float, float]:
    """Highest-density interval of the finite values (NaN when fewer than two)."""
    finite = values[np.isfinite(values)]
    if finite.size < 2:
        return float("nan"), float("nan")
    import arviz as az

    low, high = az.hdi(finite, hdi_prob=prob)
    return float(low), float(high)
