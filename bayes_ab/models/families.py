"""Registry of metric families: each provides ``build_model(stats, metric)``, ``model_data(stats)``
and an unpooled conjugate sampler.

Every family's model exposes the same named quantities, so effects and decisions are
family-agnostic: ``mean`` (arm x segment, the metric's per-user mean on its natural scale) and
``effect`` (treatment x segment, on the link scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.models import conjugate, conversion
from bayes_ab.spec import Metric, SamplerSettings


@dataclass(frozen=True)
class Family:
    """How to turn one family's statistics into a PyMC model."""

    name: str
    build_model: Callable[[xr.Dataset, Metric], pm.Model]
    model_data: Callable[[xr.Dataset], dict[str, np.ndarray]]
    sample_conjugate: Callable[[xr.Dataset, Metric, SamplerSettings], az.InferenceData]
    observed_mean: Callable[[xr.Dataset], xr.DataArray]
    unit: str
    unit_scale: float = 1.0

    def format_absolute(self, value: float, signed: bool = False) -> str:
        """An absolute difference in the family's display unit, e.g. ``+0.42 percentage points``."""
        scaled = value * self.unit_scale
        digits = 2 if abs(scaled) >= 0.1 or scaled == 0 else 1 - int(np.floor(np.log10(abs(scaled))))
        return f"{scaled:{'+' if signed else ''}.{digits}f} {self.unit}"


FAMILIES: dict[str, Family] = {
    "conversion": Family("conversion", conversion.build_model, conversion.model_data,
                         conjugate.sample_conversion, conversion.observed_mean,
                         unit="percentage points", unit_scale=100.0),
}


def family_of(stats: xr.Dataset) -> Family:
    """The family recorded in the statistics' ``attrs``."""
    name = stats.attrs.get("family")
    if name not in FAMILIES:
        raise ModelError(f"statistics of metric {stats.attrs.get('metric')!r} have unknown family {name!r}")
    return FAMILIES[name]
