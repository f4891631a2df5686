"""The groups of a fitted posterior, laid out and written as ArviZ's ``InferenceData``.

A check-in runs as its own process, and importing ArviZ costs about a second there (it imports matplotlib
for its plots), more than sampling a metric. Every fit, whatever its backend (the disk-cached NUTS sampler,
PyMC, a closed form, exact integration), is therefore held in this small container: named xarray Datasets
(``posterior``, ``sample_stats``, ``constant_data``) with the attribute access ArviZ users expect. It writes
the same netCDF layout as ``InferenceData.to_netcdf`` (one netCDF4 group per Dataset), so
``arviz.from_netcdf`` reads every stored posterior as before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import xarray as xr

GROUPS = ("posterior", "sample_stats", "constant_data", "observed_data", "prior", "posterior_predictive")
"""The ArviZ group names a fit may carry, in the order ArviZ writes them."""


@dataclass(frozen=True, init=False)
class FitData:
    """Named groups of one fit; ``fit_data.posterior`` is the posterior draws' Dataset.

    Parameters
    ----------
    **groups
        Datasets by ArviZ group name (:data:`GROUPS`); ``posterior`` is required.
    """

    datasets: Mapping[str, xr.Dataset]

    def __init__(self, **groups: xr.Dataset) -> None:
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise ValueError(f"unknown group(s) {unknown}; known: {list(GROUPS)}")
        if "posterior" not in groups:
            raise ValueError("a fit needs a posterior group")
        ordered = {name: groups[name] for name in GROUPS if name in groups}
        object.__setattr__(self, "datasets", ordered)

    def __getattr__(self, name: str) -> xr.Dataset:
        # only reached when normal lookup fails: a group by name, as ``InferenceData.posterior``
        datasets = self.__dict__.get("datasets", {})
        if name in datasets:
            return datasets[name]
        raise AttributeError(f"this fit has no {name!r} group (it has {list(datasets)})")

    def groups(self) -> list[str]:
        """The groups present, in ArviZ's order."""
        return list(self.datasets)

    def with_group(self, name: str, dataset: xr.Dataset) -> "FitData":
        """A copy with group ``name`` set to ``dataset`` (added or replaced), every other group kept."""
        return FitData(**{**self.datasets, name: dataset})

    def to_netcdf(self, path: str | os.PathLike) -> str:
        """Write every group to one netCDF4 file (``h5netcdf``), as ``InferenceData.to_netcdf`` does."""
        # uncompressed: MCMC draws are close to incompressible (zlib saved 8% of a posterior's size and
        # cost a fifth more time to write)
        mode = "w"
        for name, dataset in self.datasets.items():
            dataset.to_netcdf(str(path), mode=mode, group=name, engine="h5netcdf")
            mode = "a"
        return str(path)
