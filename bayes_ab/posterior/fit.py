"""Fit a family's model to statistics: compile once per structure, re-fit with new data.

A model's *structure* is its family, likelihood variant, the classes of its arm, segment and day counts
(:func:`~bayes_ab.models.hierarchy.size_classes`), and the names, types and ranks of its data; the effect prior
and the counts themselves are data. On the ``nutpie`` backend the compiled sampler is
cached on disk (:mod:`bayes_ab.models.compiled`), so a structure compiles once per machine and every later
process — the next check-in, the next ``analyze`` — loads it in a fraction of a second, and samples it through
nutpie's compiled core (:mod:`bayes_ab.models.nuts`) without importing PyMC or ArviZ. Within a process,
:class:`ModelCache` keeps what was loaded, so a re-fit costs only the sampling. The ``pymc`` backend keeps the
PyMC model and swaps data with ``pm.set_data``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Hashable

import numpy as np
import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.families import Family, family_of
from bayes_ab.families.covariates import effective_statistics
from bayes_ab.models import nutpie_api
from bayes_ab.models.compat import NativeUnavailable, check_compile, public_notice, sampler_path
from bayes_ab.models.compiled import NativeModel, native_model, structure_key
from bayes_ab.models.conjugate import posterior_dataset
from bayes_ab.models.diagnostics import Diagnostics, diagnose, divergent_transitions, independent_draws
from bayes_ab.models.fitdata import FitData, from_inference_data
from bayes_ab.models.gaussian_pool import NORMAL_CELLS, NORMAL_CELLS_FAMILY, is_normal_cells, with_mean
from bayes_ab.learned_prior import ScaleMixture
from bayes_ab.models.hierarchy import (PRIOR_EFFECT_MEAN, PRIOR_EFFECT_SD, PRIOR_MIX_LOG_WEIGHTS, PRIOR_MIX_NODES,
                                      coords_for, fixed_lengths, mapped_prior_data, model_coords,
                                      size_classes)
from bayes_ab.models.nuts import NutsSettings
from bayes_ab.models.nuts import sample as sample_nuts
from bayes_ab.models.quadrature import exact_draws
from bayes_ab.posterior.result import Fit, attach_stats
from bayes_ab.progress import progress
from bayes_ab.sampling import EXACT, Backend, MassMatrix
from bayes_ab.spec import Metric, SamplerSettings

if TYPE_CHECKING:
    import pymc as pm


@dataclass
class _Compiled:
    """One structure, prepared for its backend: the disk-cached native model (the fast path), or the PyMC
    model with nutpie's public compiled form of it (``public``, the fallback path) or alone (``pymc``)."""

    native: NativeModel | None = None
    model: "pm.Model | None" = None
    public: Any = None

    @property
    def parameters(self) -> list[str]:
        if self.native is not None:
            return self.native.parameters
        return [rv.name for rv in self.model.free_RVs]


@dataclass
class ModelCache:
    """Compiled models by structure, so a re-fit in this process never compiles or loads again.

    ``compilations`` counts the structures this cache prepared (compiled here, or loaded from the disk cache);
    ``from_disk`` how many of them were loads. ``compile_workers``: processes that compile an analysis's missing
    structures at once before it fits (:func:`~bayes_ab.posterior.warmup.compile_ahead`); 1, the default, compiles
    each in this process when it is first fitted. The command line uses the machine's cores.
    """

    compiled: dict[Hashable, _Compiled] = field(default_factory=dict)
    compilations: int = 0
    from_disk: int = 0
    compile_workers: int = 1

    def get(self, family: Family, stats: xr.Dataset, metric: Metric, backend: str,
            data: dict[str, np.ndarray], variant: str, size_free: bool = False) -> _Compiled:
        """The compiled model of this structure (``variant``: the family's, for these statistics), compiling (or
        loading) it on first use.

        A structure is named by its sizes' classes (:func:`~bayes_ab.models.hierarchy.size_classes`), so the
        disk-cached native model of a new segment, arm or day count is the one already compiled; the public and
        PyMC paths compile a model per size, so there the sizes themselves are part of the entry. ``size_free``:
        compile a missing structure for every size of its class, as ``bayes-ab warmup`` does; an analysis
        compiles one for its sizes, which is faster (:func:`~bayes_ab.models.compiled.native_model`)."""
        sizes = model_sizes(stats)
        key = model_key(family, sizes, data, variant)
        sized = (key, tuple(sorted(sizes.items())), backend)
        entry = self.compiled.get((key, backend)) or (None if size_free else self.compiled.get(sized))
        if entry is None:
            if backend == Backend.NUTPIE:
                with progress(f"{metric.name}: preparing the {family.name} model"):
                    entry = _prepare_nutpie(key, sizes, lambda: family.build_model(stats, metric), size_free)
                self.from_disk += entry.native is not None and not entry.native.compiled
            else:
                entry = _Compiled(model=family.build_model(stats, metric))
            any_size = entry.native is not None and entry.native.layout.fixed_sizes is None
            self.compiled[(key, backend) if any_size else sized] = entry
            self.compilations += 1
        return entry


DEFAULT_CACHE = ModelCache()


def model_sizes(stats: xr.Dataset) -> dict[str, int]:
    """The dimension lengths of the model of ``stats`` (a count histogram's values are data, not a dimension)."""
    return {dim: size for dim, size in stats.sizes.items() if dim != "value"}


def model_key(family: Family, sizes: dict[str, int], data: dict[str, np.ndarray], variant: str) -> str:
    """The structure key (:func:`~bayes_ab.models.compiled.structure_key`) of ``family``'s model of ``variant``
    at ``sizes`` with ``data``. The normal-cells model is the same graph for every family: one structure serves
    them all."""
    owner = NORMAL_CELLS_FAMILY if is_normal_cells(variant) else family.name
    classes = size_classes(sizes, family.pools_baselines(variant))
    return structure_key(owner, NORMAL_CELLS if is_normal_cells(variant) else variant, classes, data)


def _prepare_nutpie(key: str, sizes: dict[str, int], build, size_free: bool) -> _Compiled:
    """The structure for nutpie: native and disk-cached when the installed libraries are the ones that path
    was built for (:mod:`bayes_ab.models.compat`), else compiled through nutpie's public API."""
    if sampler_path().native:
        def build_checked():        # called on a cache miss only: PyTensor is imported to compile anyway
            check_compile()
            return build()

        try:
            return _Compiled(native=native_model(key, build_checked, sizes, fixed_lengths(sizes), size_free))
        except NativeUnavailable as exc:
            public_notice(str(exc))
    model = build()
    return _Compiled(model=model, public=nutpie_api.compile_model(model))

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
        Statistics of one metric (``bayes_ab.aggregation.aggregate`` output).
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
    # a covariate-adjusted metric's model sees effective cells; the fit keeps (and reports) the observed statistics
    cells = effective_statistics(family, stats, metric)
    if sampler.backend == Backend.CONJUGATE:
        idata = attach_stats(family.sample_conjugate(cells, metric, sampler), stats)
        return Fit(metric, stats, idata, independent_draws(sampler.chains, sampler.draws), sampler.backend, sampler)
    exact = family.exact_posterior(stats, metric, sampler)
    if exact is not None:
        idata, ess = exact
        draws = idata.posterior.sizes
        diagnostics = replace(independent_draws(draws["chain"], draws["draw"]), min_ess_bulk=ess, min_ess_tail=ess)
        return Fit(metric, stats, attach_stats(idata, stats), diagnostics, EXACT,
                   replace(sampler, chains=draws["chain"], draws=draws["draw"]))
    prior = mapped_prior_data(family, stats, metric)
    if sampler.exact:
        exact = _integrate(family, stats, metric, sampler, prior, cells)
        if exact is not None:
            return exact
    compiled, data, variant = _structure(family, cells, metric, sampler, cache, prior)
    idata, diagnostics = _sample_diagnosed(compiled, data, stats, metric, sampler, family, variant)
    # at most two retries: smaller steps, then the low-rank metric (each remedy is taken once)
    while (retry := _retry(idata, diagnostics, sampler)) is not None:
        sampler = retry
        idata, diagnostics = _sample_diagnosed(compiled, data, stats, metric, sampler, family, variant)
    if not diagnostics.passed and metric.prior.learned is not None and metric.prior.learned.df is not None:
        diagnostics = replace(diagnostics, cause=TWO_MODES)
    return Fit(metric, stats, idata, diagnostics, sampler.backend, sampler)


def prepare(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings(),
            cache: ModelCache = DEFAULT_CACHE, size_free: bool = True) -> str:
    """Compile (or load) the sampled structure :func:`fit` would use for ``metric`` on ``stats``, without sampling;
    what was done, in a few words. ``bayes-ab warmup`` runs it so that a worker's first check-in pays no
    compilation: the structure is written to the disk cache (``BAYES_AB_CACHE_DIR``), which an image can carry.
    Compiled size-free, it serves every experiment of the same families and size classes (other segment, day or
    arm counts), not only this one.
    Closed-form, exact and integrable posteriors compile nothing. ``size_free=False`` compiles for these sizes
    only, as an analysis does (faster; :func:`~bayes_ab.posterior.warmup.compile_ahead`)."""
    family = family_of(stats)
    cells = effective_statistics(family, stats, metric)
    nothing = _nothing_to_compile(family, cells, metric, sampler)
    if nothing is not None:
        return nothing
    before = (cache.compilations, cache.from_disk)
    compiled, _, _ = _structure(family, cells, metric, sampler, cache, mapped_prior_data(family, stats, metric),
                                size_free)
    if cache.compilations == before[0]:
        return "the structure of an earlier metric (prepared above)"
    if cache.from_disk > before[1]:
        return "loaded from the model cache"
    if compiled.native is None:
        return "compiled (not cached on disk: nutpie's public path)"
    if compiled.native.layout.fixed_sizes is not None:
        return "compiled for these sizes only" + ("" if not size_free else
                                                  " (the model's shapes do not follow its dimensions alone)")
    return "compiled for any size of its class"


def nothing_to_compile(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> str | None:
    """Why :func:`fit` compiles nothing for ``metric`` on ``stats`` (a closed form, an exact or integrated
    posterior), in a few words; ``None`` when it samples a compiled structure."""
    family = family_of(stats)
    return _nothing_to_compile(family, effective_statistics(family, stats, metric), metric, sampler)


def _nothing_to_compile(family: Family, cells: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> str | None:
    """:func:`nothing_to_compile`, given the statistics the model is of
    (:func:`~bayes_ab.families.covariates.effective_statistics`)."""
    if sampler.backend == Backend.CONJUGATE:
        return "closed form: nothing to compile"
    if type(family).exact_posterior is not Family.exact_posterior:      # a family whose posterior needs no sampler
        return "exact posterior: nothing to compile"
    if sampler.exact and family.integrable(cells, metric) is not None:
        return "integrated exactly: nothing to compile"
    return None


def structure_of(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings = SamplerSettings()) -> str | None:
    """The key of the structure :func:`prepare` compiles for ``metric`` on ``stats`` (``None``: nothing to
    compile), computed without compiling: two metrics with one key share one compilation."""
    family = family_of(stats)
    cells = effective_statistics(family, stats, metric)
    if _nothing_to_compile(family, cells, metric, sampler) is not None:
        return None
    data = _model_data(family, cells, mapped_prior_data(family, stats, metric))
    return model_key(family, model_sizes(cells), data, family.variant(cells, metric))


def _model_data(family: Family, cells: xr.Dataset, prior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The sampled model's data: the family's of its cells, and the prior's."""
    return {**family.model_data(cells), **prior}


def _structure(family: Family, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings, cache: ModelCache,
               prior: dict[str, np.ndarray], size_free: bool = False) -> tuple[_Compiled, dict[str, np.ndarray], str]:
    """The sampled model's compiled structure (from ``cache``), its data (the family's and the prior's) and its
    variant: what :func:`fit` samples and :func:`prepare` compiles (``size_free``: for every size of its class)."""
    data = _model_data(family, stats, prior)
    variant = family.variant(stats, metric)         # a count family's checks fit the data: computed once
    return cache.get(family, stats, metric, sampler.backend, data, variant, size_free), data, variant


TWO_MODES = ("likely cause: the learned Student-t prior -- against data far in its tail its posterior can have "
             "two modes, the prior's and the data's, which the sampler does not move between; read the data-only "
             "answer beside it (one-segment conversion and the Gaussian-cell models integrate the t exactly)")
"""The cause a failed fit under a learned Student-t prior names (the sampled models draw its mixture)."""


def _sample_diagnosed(compiled: _Compiled, data: dict[str, np.ndarray], stats: xr.Dataset, metric: Metric,
                      sampler: SamplerSettings, family: Family, variant: str) -> tuple[FitData, Diagnostics]:
    """One run of the sampler, its draws mapped to the metric's means, and its diagnostics."""
    idata = _sample(compiled, data, stats, metric, sampler)
    if is_normal_cells(variant):
        idata = with_mean(idata, family.inverse_link)
    return idata, diagnose(idata, compiled.parameters)


def _retry(idata: FitData, diagnostics: Diagnostics, sampler: SamplerSettings) -> SamplerSettings | None:
    """The settings of a fit's next retry, or ``None`` when it passed, retries are off or both remedies were
    taken.

    Divergences mean the step size was too large for the posterior's geometry (typically the funnel of a
    pooling scale): smaller steps, the standard remedy. R-hat or ESS failing without divergences mean slow
    mixing along a direction the diagonal metric does not scale, typically a pooling scale against the many
    standardised effects it multiplies (1,000 segments: its ESS was 230 of 4,000 draws, R-hat 1.013; 485 and
    1.004 with the low-rank metric), or R-hat's own noise over thousands of cell-level quantities (the largest
    of 2,000 well-mixed cell means reached 1.011 at 1,000 draws a chain, 1.004 at 2,000): the low-rank mass
    matrix and twice the draws. A run that still fails at the smaller steps -- diverging or not -- gets the second
    remedy too, keeping the smaller steps (Group Stories' D7 retention at 50% of seed 15: 11 divergences, 0 with
    both). The last run is the one kept and reported.
    """
    if sampler.retry_target_accept is None or diagnostics.passed:
        return None
    if divergent_transitions(idata) and sampler.retry_target_accept > sampler.target_accept:
        return replace(sampler, target_accept=sampler.retry_target_accept)
    if sampler.backend != Backend.NUTPIE or sampler.mass_matrix == MassMatrix.LOW_RANK:
        return None
    return replace(sampler, mass_matrix=MassMatrix.LOW_RANK, draws=2 * sampler.draws)


def _integrate(family: Family, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings,
               prior: dict[str, np.ndarray], cells: xr.Dataset) -> Fit | None:
    """The exact posterior of a model small enough to integrate (:mod:`bayes_ab.models.quadrature`), as
    ``exact_draws`` independent draws split over ``chains``; ``None`` when the model has no such form or the
    integration could not resolve it (the model is then sampled). ``cells``: the statistics the model is of
    (:func:`~bayes_ab.families.covariates.effective_statistics`)."""
    model = family.integrable(cells, metric)
    if model is None:
        return None
    per_chain = -(-sampler.exact_draws // sampler.chains)
    rng = np.random.default_rng(sampler.seed)
    with progress(f"{metric.name}: integrating the {family.name} posterior"):
        mixture = (ScaleMixture(prior[PRIOR_MIX_NODES], prior[PRIOR_MIX_LOG_WEIGHTS]) if PRIOR_MIX_NODES in prior
                   else None)
        draws = exact_draws(model.likelihoods[0], model.likelihoods[1:], model.baseline_sd,
                            float(prior[PRIOR_EFFECT_SD]), sampler.chains * per_chain, rng,
                            float(prior.get(PRIOR_EFFECT_MEAN, 0.0)), mixture)
    if draws is None:
        return None
    shape = (sampler.chains, per_chain)
    linear = draws.reshape(shape + (draws.shape[1],))
    mean = model.inverse_link(linear)[..., None]
    effect = (linear[..., 1:] - linear[..., :1])[..., None]
    posterior = replace(sampler, draws=per_chain)
    idata = posterior_dataset(stats, posterior, mean, {
        "baseline": (("chain", "draw", "segment"), linear[..., :1]),
        "effect_mu": (("chain", "draw", "treatment"), effect[..., 0]),
        "effect": (("chain", "draw", "treatment", "segment"), effect),
    })
    return Fit(metric, stats, attach_stats(idata, stats), independent_draws(*shape), EXACT, posterior)


def _sample(compiled: _Compiled, data: dict[str, np.ndarray], stats: xr.Dataset, metric: Metric,
            sampler: SamplerSettings) -> FitData:
    try:
        with progress(f"{metric.name}: sampling {sampler.chains} chains x {sampler.tune} + {sampler.draws} draws"
                      + (f" (target_accept {sampler.target_accept})" if sampler.target_accept > 0.9 else "")
                      + (" (low-rank mass matrix)" if sampler.mass_matrix == MassMatrix.LOW_RANK else "")):
            if sampler.backend == Backend.NUTPIE:
                idata = _sample_nutpie(compiled, data, stats, sampler)
            else:
                idata = _sample_pymc(compiled, data, stats, sampler)
    except (ValueError, RuntimeError, FloatingPointError) as exc:
        raise ModelError(f"metric {metric.name!r}: sampling failed ({str(exc).splitlines()[0]})") from None
    return attach_stats(idata, stats)


def _sample_nutpie(compiled: _Compiled, data: dict[str, np.ndarray], stats: xr.Dataset,
                   s: SamplerSettings) -> FitData:
    # labelled with this data's coordinates, unconstrained copies and unused statistics left out (models.nuts)
    settings = NutsSettings(draws=s.draws, tune=s.tune, chains=s.chains, cores=min(s.chains, os.cpu_count() or 1),
                            seed=s.seed, target_accept=s.target_accept,
                            low_rank=s.mass_matrix == MassMatrix.LOW_RANK)
    if compiled.native is not None:
        return sample_nuts(compiled.native, data, model_coords(stats), settings)
    return nutpie_api.sample(compiled.public, data, coords_for(stats), settings)


def _sample_pymc(compiled: _Compiled, data: dict[str, np.ndarray], stats: xr.Dataset,
                 s: SamplerSettings) -> FitData:
    import logging

    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)
    with compiled.model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the data cover every model of the prior (a learned t's mixture nodes), as on nutpie's paths; this model
        # takes the ones it declares (PyMC refuses any other name)
        pm.set_data({name: value for name, value in data.items() if name in compiled.model.named_vars})
        idata = pm.sample(draws=s.draws, tune=s.tune, chains=s.chains,
                          cores=min(s.chains, os.cpu_count() or 1), random_seed=s.seed,
                          target_accept=s.target_accept, progressbar=False, compute_convergence_checks=False)
    return from_inference_data(idata, coords_for(stats))
