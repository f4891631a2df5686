"""Fit a family's model to statistics: compile once per structure, re-fit with new data.

A model's *structure* is its family, number of arms, number of segments and prior; data of the
same structure (a new day, a new look, another experiment) re-use the compiled sampler through
nutpie's ``with_data`` (or ``pm.set_data`` on the ``pymc`` backend), so only the first fit pays
for compilation.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Hashable

import arviz as az
import numpy as np
import pymc as pm
import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.models.diagnostics import diagnose, independent_draws
from bayes_ab.families import Family, family_of
from bayes_ab.models.hierarchy import coords_for
from bayes_ab.models.result import Fit, attach_stats
from bayes_ab.sampling import Backend
from bayes_ab.spec import Metric, SamplerSettings


@dataclass
class _Compiled:
    model: pm.Model
    sampler: Any = None


@dataclass
class ModelCache:
    """Compiled models by structure, so a re-fit never recompiles."""

    compiled: dict[Hashable, _Compiled] = field(default_factory=dict)
    compilations: int = 0

    def get(self, family: Family, stats: xr.Dataset, metric: Metric, backend: str) -> _Compiled:
        """The compiled model of this structure, compiling it on first use."""
        shape = tuple(size for dim, size in stats.sizes.items() if dim != "value")
        key = (family.name, backend, shape, metric.prior, family.variant(stats, metric))
        if key not in self.compiled:
            model = family.build_model(stats, metric)
            entry = _Compiled(model)
            if backend == Backend.NUTPIE:
                import nutpie

                entry.sampler = nutpie.compile_pymc_model(model)
            self.compiled[key] = entry
            self.compilations += 1
        return self.compiled[key]


DEFAULT_CACHE = ModelCache()


def fit(
    stats: xr.Dataset,
    metric: Metric,
    sampler: SamplerSettings = SamplerSettings(),
    cache: ModelCache = DEFAULT_CACHE,
) -> Fit:
    """Sample the posterior of ``metric`` given its statistics.

    Parameters
    ----------
    stats
        Statistics of one metric (``bayes_ab.data.aggregate`` output).
    metric
        The metric's spec (family, prior).
    sampler
        MCMC settings; ``backend`` ``nutpie`` (default) or ``pymc``.
    cache
        Compiled models by structure; the module-wide cache by default.
    """
    family = family_of(stats)
    if family.name != metric.family:
        raise ModelError(f"metric {metric.name!r} is {metric.family!r} but its statistics are {family.name!r}")
    if sampler.backend == Backend.CONJUGATE:
        idata = attach_stats(family.sample_conjugate(stats, metric, sampler), stats)
        return Fit(metric, stats, idata, independent_draws(sampler.chains, sampler.draws), sampler.backend, sampler)
    compiled = cache.get(family, stats, metric, sampler.backend)
    data = family.model_data(stats)
    parameters = [rv.name for rv in compiled.model.free_RVs]
    result = _sample(compiled, data, stats, metric, sampler, parameters)
    retry = sampler.retry_target_accept
    if result.diagnostics.divergences and retry is not None and retry > sampler.target_accept:
        # Divergences mean the step size was too large for the posterior's geometry (typically the
        # funnel of the pooling scale); smaller steps are the standard remedy. The retry is reported.
        result = _sample(compiled, data, stats, metric, replace(sampler, target_accept=retry), parameters)
    return result


def _sample(compiled: _Compiled, data: dict[str, np.ndarray], stats: xr.Dataset, metric: Metric,
            sampler: SamplerSettings, parameters: list[str]) -> Fit:
    try:
        if sampler.backend == Backend.NUTPIE:
            idata = _sample_nutpie(compiled, data, sampler)
        else:
            idata = _sample_pymc(compiled, data, sampler)
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        raise ModelError(f"metric {metric.name!r}: sampling failed ({str(exc).splitlines()[0]})") from None
    idata = attach_stats(_label(idata, stats), stats)
    return Fit(metric, stats, idata, diagnose(idata, parameters), sampler.backend, sampler)


def _sample_nutpie(compiled: _Compiled, data: dict[str, np.ndarray], s: SamplerSettings) -> az.InferenceData:
    import nutpie

    # pm.Data the graph does not use (e.g. covariate sums of a model without one) are optimised away
    used = {name: values for name, values in data.items() if name in compiled.sampler.shared_data}
    model = compiled.sampler.with_data(**used)
    return nutpie.sample(model, draws=s.draws, tune=s.tune, chains=s.chains,
                         cores=min(s.chains, os.cpu_count() or 1), seed=s.seed,
                         target_accept=s.target_accept, progress_bar=False, save_warmup=False)


def _sample_pymc(compiled: _Compiled, data: dict[str, np.ndarray], s: SamplerSettings) -> az.InferenceData:
    logging.getLogger("pymc").setLevel(logging.ERROR)
    with compiled.model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.set_data(data)
        return pm.sample(draws=s.draws, tune=s.tune, chains=s.chains,
                         cores=min(s.chains, os.cpu_count() or 1), random_seed=s.seed,
                         target_accept=s.target_accept, progressbar=False, compute_convergence_checks=False)


def _label(idata: az.InferenceData, stats: xr.Dataset) -> az.InferenceData:
    """Attach this data's arm/segment labels (a re-used compiled model carries the first fit's)."""
    coords = coords_for(stats)
    posterior = idata.posterior.assign_coords({k: v for k, v in coords.items() if k in idata.posterior.dims})
    return az.InferenceData(posterior=posterior, sample_stats=idata.sample_stats)
