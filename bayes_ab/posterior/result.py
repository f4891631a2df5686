"""The result of fitting a metric: posterior draws, diagnostics and the statistics behind them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import xarray as xr

from bayes_ab.display import HtmlRepr
from bayes_ab.families import family_of
from bayes_ab.models.diagnostics import Diagnostics
from bayes_ab.models.fitdata import FitData
from bayes_ab.spec import Metric, SamplerSettings


@dataclass(frozen=True)
class Fit(HtmlRepr):
    """A fitted posterior with its diagnostics and the statistics it was fitted to."""

    metric: Metric
    stats: xr.Dataset
    idata: FitData
    diagnostics: Diagnostics
    backend: str
    sampler: SamplerSettings

    @property
    def mean(self) -> xr.DataArray:
        """Posterior draws of the per-user metric mean, dims ``chain, draw, arm, segment``."""
        return self.idata.posterior["mean"]

    @property
    def overall_mean(self) -> xr.DataArray:
        """Draws of each arm's overall mean, segments weighted as the family weighs them (by their traffic,
        all arms together; a ratio by its denominator); dims ``chain, draw, arm``. A posterior that is not an
        average of its segments (a quantile of all values together) carries its own ``overall_mean``."""
        if "overall_mean" in self.idata.posterior:
            return self.idata.posterior["overall_mean"].transpose("chain", "draw", "arm")
        weights = family_of(self.stats).segment_weights(self.stats)
        return (self.mean * weights).sum("segment").transpose("chain", "draw", "arm")

    def text(self) -> str:
        """What was fitted, how, and whether it can be trusted."""
        arms = ", ".join(map(str, self.stats["arm"].values))
        return (f"{self.metric.name} ({self.metric.family}) fitted by {self.backend} to {self.stats.sizes['segment']} "
                f"segment(s), arms {arms}\n{self.diagnostics.summary()}")

    def to_netcdf(self, path: str | os.PathLike) -> str:
        """Write the posterior (with the statistics as ``constant_data``) as ArviZ netCDF."""
        return self.idata.to_netcdf(path)


def attach_stats(idata: FitData, stats: xr.Dataset) -> FitData:
    """Store the statistics the posterior was fitted to as the ``constant_data`` group."""
    constant = stats.copy()
    constant.attrs = {k: str(v) for k, v in stats.attrs.items()}
    return idata.with_group("constant_data", constant)
