"""NUTS on a disk-cached model through nutpie's sampler core, without nutpie's Python front end.

nutpie's package ``__init__`` imports ArviZ (to return ``InferenceData``), and ArviZ imports matplotlib:
about 1.1 s of a check-in's 6-7 s, spent before the first draw. The sampler itself lives in nutpie's
compiled extension ``nutpie._lib``; this module loads that extension alone and drives it as
``nutpie.sample`` does (same settings object, same seed, same starting points), so the draws are the very
ones ``nutpie.sample`` returns (tested bit for bit), and turns the Arrow trace into xarray Datasets itself.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import numpy as np
import xarray as xr

from bayes_ab.models.compiled import Layout, ModelData, NativeModel
from bayes_ab.models.fitdata import FitData, sampler_statistics

LIBRARY = "nutpie._lib"



@lru_cache(maxsize=1)
def library() -> ModuleType:
    """nutpie's compiled extension, loaded without running ``nutpie/__init__.py``.

    When nutpie is already imported (a process that compiled a model through PyMC), its extension is
    re-used: a native module is initialised once per process.
    """
    if LIBRARY in sys.modules:
        return sys.modules[LIBRARY]
    package = importlib.util.find_spec("nutpie")
    if package is None or not package.submodule_search_locations:
        raise ImportError("nutpie is not installed")
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    for folder in package.submodule_search_locations:
        for suffix in suffixes:
            path = Path(folder) / f"_lib{suffix}"
            if path.exists():
                spec = importlib.util.spec_from_file_location(LIBRARY, path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                # registered so that a later ``import nutpie`` (its ``from nutpie import _lib``) finds this one
                sys.modules[LIBRARY] = module
                return module
    raise ImportError(f"nutpie's extension _lib{suffixes[0]} not found in {package.submodule_search_locations}")


@dataclass(frozen=True)
class NutsSettings:
    """What one run of the sampler needs (the subset of :class:`~bayes_ab.sampling.SamplerSettings` it reads)."""

    draws: int
    tune: int
    chains: int
    cores: int
    seed: int
    target_accept: float
    low_rank: bool = False
    """nutpie's low-rank modified mass matrix instead of the diagonal one."""


def sample(native: NativeModel, data: Mapping[str, np.ndarray], coords: Mapping[str, list[str]],
           settings: NutsSettings) -> FitData:
    """Posterior draws of a loaded structure on ``data``, labelled by ``coords``.

    Parameters
    ----------
    native
        The loaded structure (its layout and C callbacks).
    data
        Every array the layout lists, by name (their sizes may differ from the compiling run's).
    coords
        Labels of the model's dimensions for this data (arm, segment, treatment, ...).
    settings
        Draws, tuning steps, chains, worker threads, seed and target acceptance rate.

    Returns
    -------
    FitData
        ``posterior`` (every traced quantity; the sampler's unconstrained copies ``*__`` left out, as PyMC
        leaves them out) and ``sample_stats`` (:data:`~bayes_ab.models.fitdata.SAMPLE_STATS`), tuning draws dropped.
    """
    lib = library()
    layout = native.layout
    packed = ModelData.pack(layout, data, coords)
    keep_alive = (packed, native)       # the callbacks read these addresses while sampling

    labels = _labels(layout, packed.shapes, coords)
    sizes = {name: len(values) for name, values in labels.items()}
    logp = lib.LogpFunc(native.logp_callback.address, packed.address, keep_alive)
    expand = lib.ExpandFunc(packed.n_dim, packed.n_expanded, native.expand_callback.address, packed.address,
                            keep_alive)
    variables = lib.PyVariable.new_variables(list(layout.names), ["float64"] * len(layout.names),
                                             [list(shape) for shape in packed.shapes], sizes,
                                             {name: tuple(dims) for name, dims in layout.dims.items()})
    initial = native.support_point(packed)

    def initial_point(seed: Any = None) -> np.ndarray:
        # PyMC's default start: the support point on the unconstrained scale, jittered by U(-1, 1)
        return initial + np.random.default_rng(seed).uniform(-1.0, 1.0, size=initial.size)

    def no_transform_adapter(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bayes-ab samples with a diagonal mass matrix; transform adaptation is not used")

    import pandas as pd     # nutpie's model reads its coordinates as pandas indexes (pandas is loaded already)

    model = lib.PyMcModel(logp, expand, variables, packed.n_dim, sizes,
                          {name: pd.Index(values) for name, values in labels.items()}, initial_point,
                          no_transform_adapter)
    nuts = (lib.PyNutsSettings.LowRank if settings.low_rank else lib.PyNutsSettings.Diag)(settings.seed)
    nuts.num_tune = settings.tune
    nuts.num_draws = settings.draws
    nuts.num_chains = settings.chains
    nuts.target_accept = settings.target_accept
    sampler = lib.PySampler.from_pymc(nuts, settings.cores, model, lib.ProgressType.none(), lib.PyStorage.arrow())
    try:
        sampler.wait(None)
    except BaseException:
        sampler.abort()
        raise
    draw_batches, stat_batches = sampler.take_results().get_arrow_trace()
    return _fit_data(layout, packed.shapes, labels, draw_batches, stat_batches)


def _labels(layout: Layout, shapes: tuple[tuple[int, ...], ...], coords: Mapping[str, list[str]]) -> dict[str, list]:
    """The layout's coordinates, overridden by this data's, plus the unconstrained vector's element names."""
    merged = {**layout.coords, **{k: list(v) for k, v in coords.items() if k in layout.coords}}
    merged["unconstrained_parameter"] = _flat_names(layout, shapes)
    return merged


def _flat_names(layout: Layout, shapes: tuple[tuple[int, ...], ...]) -> list[str]:
    names = []
    for name, shape in zip(layout.names[:layout.n_unconstrained], shapes):
        if not shape:
            names.append(name)
        else:
            names += [f"{name}_{'.'.join(map(str, idx))}" for idx in np.ndindex(*shape)]
    return names


def _fit_data(layout: Layout, shapes: tuple[tuple[int, ...], ...], labels: Mapping[str, list], draw_batches: list,
              stat_batches: list) -> FitData:
    """The post-tuning draws and statistics of every chain as ``(chain, draw, ...)`` Datasets (``shapes``: the
    traced arrays' shapes in this run)."""
    import pyarrow as pa        # pandas' Arrow support has imported it already

    traced = [(name, shape) for name, shape in zip(layout.names, shapes) if not name.endswith("__")]
    draws_by_chain, stats_by_chain = [], []
    for draw_batch, stat_batch in zip(draw_batches, stat_batches):
        draw_table, stat_table = pa.record_batch(draw_batch), pa.record_batch(stat_batch)
        kept = ~stat_table.column("tuning").to_numpy(zero_copy_only=False)
        draws_by_chain.append({name: _column(draw_table, name, shape)[kept] for name, shape in traced})
        stats_by_chain.append({name: _column(stat_table, name, ())[kept]
                               for name in sampler_statistics(stat_table.schema.names, "nutpie's sampler")})
    lengths = {len(chain[next(iter(chain))]) for chain in draws_by_chain}
    if len(lengths) != 1:
        raise RuntimeError(f"chains returned different numbers of draws {sorted(lengths)}")
    (n_draws,) = lengths
    coords = {"chain": np.arange(len(draws_by_chain)), "draw": np.arange(n_draws)}
    posterior = xr.Dataset(
        {name: (("chain", "draw", *layout.dims.get(name, _default_dims(name, shape))),
                np.stack([chain[name] for chain in draws_by_chain]))
         for name, shape in traced},
        coords=coords)
    posterior = posterior.assign_coords({dim: labels[dim] for dim in posterior.dims if dim in labels})
    sample_stats = xr.Dataset({name: (("chain", "draw"), np.stack([chain[name] for chain in stats_by_chain]))
                               for name in stats_by_chain[0]}, coords=coords)
    return FitData(posterior=posterior, sample_stats=sample_stats)


def _column(table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One column as ``(rows, *shape)``: list columns are flattened, scalars read as they are."""
    column = table.column(name)
    if hasattr(column, "flatten"):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape((len(column), *shape))
    return column.to_numpy(zero_copy_only=False)


def _default_dims(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Dimension names of a traced quantity the model gave no dims (as ArviZ names them)."""
    return tuple(f"{name}_dim_{i}" for i in range(len(shape)))
