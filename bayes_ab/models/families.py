"""Registry of metric families: each provides ``build_model(stats, metric)``, ``model_data(stats)``
and an unpooled conjugate sampler.

Every family's model exposes the same named quantities, so effects and decisions are
family-agnostic: ``mean`` (arm x segment, the metric's per-user mean on its natural scale) and
``effect`` (treatment x segment, on the link scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.models import conjugate, conversion, count, mean, retention
from bayes_ab.spec import Metric, SamplerSettings


@dataclass(frozen=True)
class Family:
    """How to turn one family's statistics into a model, and how to talk about it."""

    name: str
    module: ModuleType
    sample_conjugate: Callable[[xr.Dataset, Metric, SamplerSettings], az.InferenceData]
    unit: str
    unit_scale: float = 1.0

    def build_model(self, stats: xr.Dataset, metric: Metric) -> pm.Model:
        """The PyMC model of ``metric`` on ``stats``."""
        return self.module.build_model(stats, metric)

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        """Arrays the model reads through ``pm.Data``, by name."""
        return self.module.model_data(stats)

    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Raw per-arm mean over the segments in ``stats``, without any model."""
        return self.module.observed_mean(stats, metric)

    def variant(self, stats: xr.Dataset, metric: Metric) -> str:
        """Which likelihood the data call for (part of the compiled structure)."""
        return self.module.variant(stats, metric)

    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        """One line: which likelihood was used and why."""
        return self.module.describe(stats, metric)

    def format_absolute(self, value: float, signed: bool = False) -> str:
        """An absolute difference in the family's display unit, e.g. ``+0.42 percentage points``."""
        scaled = value * self.unit_scale
        digits = 2 if abs(scaled) >= 0.1 or scaled == 0 else 1 - int(np.floor(np.log10(abs(scaled))))
        return f"{scaled:{'+' if signed else ''}.{digits}f} {self.unit}"


FAMILIES: dict[str, Family] = {
    "conversion": Family("conversion", conversion, conjugate.sample_conversion, "percentage points", 100.0),
    "count": Family("count", count, conjugate.sample_count, "per user"),
    "retention": Family("retention", retention, conjugate.sample_retention, "percentage points", 100.0),
    "mean": Family("mean", mean, conjugate.sample_mean, "per user"),
}


def family_of(stats: xr.Dataset) -> Family:
    """The family recorded in the statistics' ``attrs``."""
    name = stats.attrs.get("family")
    if name not in FAMILIES:
        raise ModelError(f"statistics of metric {stats.attrs.get('metric')!r} have unknown family {name!r}")
    return FAMILIES[name]
