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

from bayes_ab.models.netcdf import write_groups

GROUPS = ("posterior", "sample_stats", "constant_data", "observed_data", "prior", "posterior_predictive")
"""The ArviZ group names a fit may carry, in the order ArviZ writes them."""

SAMPLE_STATS = ("diverging", "energy", "energy_error", "step_size", "depth", "n_steps", "logp", "mean_tree_accept")
"""The sampler statistics kept with an MCMC posterior (divergences for the diagnostics; energy for BFMI; the
rest to see how hard the sampler worked)."""
REQUIRED_STATS = ("diverging",)
"""Statistics without which an MCMC fit cannot be diagnosed: a sampler that stops reporting one (a renamed
column in a new release) is an error, never a fit reported clean."""


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
        """Write every group to one netCDF-4 file, as ``InferenceData.to_netcdf`` does
        (:func:`~bayes_ab.models.netcdf.write_groups`: the same layout, without xarray's per-variable cost)."""
        return write_groups(path, self.datasets)


def sampler_statistics(found: Mapping[str, object], where: str) -> list[str]:
    """The names of :data:`SAMPLE_STATS` present in ``found`` (a sampler's statistics), in that order.

    Raises
    ------
    RuntimeError
        A statistic of :data:`REQUIRED_STATS` is missing; ``where`` names the sampler.
    """
    missing = [name for name in REQUIRED_STATS if name not in found]
    if missing:
        raise RuntimeError(f"{where} returned no {', '.join(missing)!s} statistic: the fit cannot be diagnosed "
                           "(a sampler release that renamed its statistics?)")
    return [name for name in SAMPLE_STATS if name in found]


def from_inference_data(idata, coords: Mapping[str, list]) -> FitData:
    """An ArviZ ``InferenceData`` (from ``pm.sample`` or ``nutpie.sample``) as :class:`FitData`: relabelled with
    this data's coordinates (a re-used model carries the first fit's), the sampler's unconstrained copies
    (``effect_sd_log__``) left out as :mod:`bayes_ab.models.nuts` leaves them out, and :data:`SAMPLE_STATS` kept.
    """
    posterior = idata.posterior.assign_coords({k: v for k, v in coords.items() if k in idata.posterior.dims})
    posterior = posterior[[v for v in posterior.data_vars if not str(v).endswith("__")]]
    kept = sampler_statistics(idata.sample_stats.data_vars, "the sampler")
    return FitData(posterior=posterior, sample_stats=idata.sample_stats[kept])

