"""Metric families: each is one module of this package (see :mod:`bayes_ab.families.base`), registered in
:mod:`bayes_ab.families.registered`.

Everything outside this package finds a family here, by the name a metric's spec gives
(:func:`family_for`) or the name its statistics carry (:func:`family_of`); no other module names a family.
Family names are the registry's keys -- an open set by design, so that a family is added by its module
and one registry line.

The family modules build on the floors below (:mod:`bayes_ab.data.queries`, :mod:`bayes_ab.models.hierarchy`);
nothing below dispatches through this package, so the registry is imported with it.
"""

from __future__ import annotations

import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.families.base import Accumulator, Family, FamilyParams, Truth
from bayes_ab.families.registered import FAMILIES


def registry() -> dict[str, Family]:
    """Every registered family by name."""
    return FAMILIES


def family_for(metric) -> Family:
    """The family of a spec metric (validated against the registry when the spec was read)."""
    return registry()[metric.family]


def family_of(stats: xr.Dataset) -> Family:
    """The family recorded in the statistics' ``attrs``."""
    name = stats.attrs.get("family")
    families = registry()
    if name not in families:
        raise ModelError(f"statistics of metric {stats.attrs.get('metric')!r} have unknown family {name!r}")
    return families[name]


__all__ = ["Accumulator", "Family", "FamilyParams", "Truth", "family_for", "family_of", "registry"]
