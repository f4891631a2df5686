"""The sampler driver: the draws nutpie's own front end gives, without its imports."""

from __future__ import annotations

import math
import tempfile

import numpy as np
import pandas as pd
import pytest

import nutpie
from nutpie.compile_pymc import CompiledPyMCModel
from pymc.initial_point import make_initial_point_fn
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.models.compiled import ModelData, native_model, structure_key
from bayes_ab.models.hierarchy import coords_for, prior_data
from bayes_ab.models.nuts import NutsSettings, _flat_names, library, sample
from bayes_ab.families import family_of
from bayes_ab.spec import EffectPrior, Metric


@pytest.fixture(scope="module")
def loaded(stats):
    """One compiled structure (3-segment conversion) for every test here, in its own cache folder."""
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setenv("BAYES_AB_CACHE_DIR", folder)
        metric = Metric(name="converted", family="conversion", column="converted",
                        prior=EffectPrior(effect_sd=0.5, heterogeneity_sd=0.1))
        family = family_of(stats)
        data = {**family.model_data(stats), **prior_data(metric.prior)}
        native = native_model(structure_key("conversion", "test", dict(stats.sizes), data),
                              lambda: family.build_model(stats, metric))
        yield native, data, coords_for(stats), pymc_start(family.build_model(stats, metric))


@pytest.fixture(scope="module")
def stats():
    users = np.array([[3000, 2000, 900], [3000, 2000, 900]])
    return conversion_stats(["control", "treatment"], ["a", "b", "c"], users,
                            np.array([[300, 190, 95], [330, 215, 88]]), "converted")


def pymc_start(model) -> np.ndarray:
    """PyMC's own unjittered starting point of ``model``, flattened in the order of its value variables."""
    point = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(0)
    return np.concatenate([np.ravel(point[v.name]) for v in model.value_vars]).astype(float)


def nutpie_model(native, data, coords, initial) -> CompiledPyMCModel:
    """The same loaded callbacks wrapped as nutpie's own PyMC model, for ``nutpie.sample`` (the reference).

    ``initial`` is PyMC's starting point of the model on this data, jittered as bayes-ab jitters it.
    """
    layout = native.layout
    # the words laid out by hand (address and sizes per array, then the counts), not by ModelData.pack
    arrays, words = {}, []
    lengths = {dim: len(values) for dim, values in {**layout.coords, **coords}.items() if dim in layout.coords}
    given = {**data, **{f"dimension:{dim}": np.asarray(n) for dim, n in lengths.items()}}
    for name, dtype, _ in layout.data:
        array = np.array(given[name], dtype=dtype, order="C", copy=True)
        arrays[name] = array
        words += [array.ctypes.data, *array.shape]
    shapes = layout.shapes_for(lengths)
    n_dim = sum(math.prod(s) for s in shapes[:layout.n_unconstrained])
    n_expanded = sum(math.prod(s) for s in shapes)
    merged = {**layout.coords, **coords}
    index = {name: pd.Index(values) for name, values in merged.items()}
    index["unconstrained_parameter"] = pd.Index(_flat_names(layout, shapes))
    offsets = np.cumsum([0, *(math.prod(s) for s in shapes)])
    return CompiledPyMCModel(
        _n_dim=n_dim, dims={k: tuple(v) for k, v in layout.dims.items()}, _coords=index,
        _shapes={name: tuple(shape) for name, shape in zip(layout.names, shapes)},
        compiled_logp_func=native.logp_callback, compiled_expand_func=native.expand_callback,
        initial_point_func=lambda seed=None: initial + np.random.default_rng(seed).uniform(-1, 1, initial.size),
        shared_data=arrays, user_data=np.array(words + [n_dim, n_expanded], dtype=np.uint64), n_expanded=n_expanded,
        shape_info=(list(layout.names), [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])],
                    list(shapes)),
        logp_func=None, expand_func=None)


@pytest.mark.parametrize("low_rank", [False, True])
def test_the_draws_and_statistics_are_nutpies_bit_for_bit(loaded, low_rank):
    native, data, coords, start = loaded
    settings = NutsSettings(draws=300, tune=300, chains=3, cores=2, seed=17, target_accept=0.85, low_rank=low_rank)
    ours = sample(native, data, coords, settings)
    theirs = nutpie.sample(nutpie_model(native, data, coords, start), draws=300, tune=300, chains=3, cores=2, seed=17,
                           target_accept=0.85, progress_bar=False, save_warmup=False,
                           low_rank_modified_mass_matrix=low_rank)
    assert set(ours.posterior.data_vars) == {v for v in theirs.posterior.data_vars if not v.endswith("__")}
    for name in ours.posterior.data_vars:
        np.testing.assert_array_equal(ours.posterior[name].values, theirs.posterior[name].values)
        assert ours.posterior[name].dims == theirs.posterior[name].dims
    for name in ours.sample_stats.data_vars:
        np.testing.assert_array_equal(ours.sample_stats[name].values, theirs.sample_stats[name].values)
    assert list(ours.posterior["segment"].values) == ["a", "b", "c"]
    assert ours.posterior.sizes["draw"] == 300 and ours.posterior.sizes["chain"] == 3


def test_the_extension_is_the_one_nutpie_uses():
    # nutpie is imported in this process: its extension must be re-used, never initialised twice
    assert library() is nutpie._lib


def test_missing_or_misshapen_data_are_refused(loaded):
    native, data, coords, _ = loaded
    settings = NutsSettings(draws=10, tune=10, chains=1, cores=1, seed=1, target_accept=0.8)
    name = native.layout.data[0][0]
    with pytest.raises(KeyError, match=name):
        sample(native, {k: v for k, v in data.items() if k != name}, coords, settings)
    with pytest.raises(ValueError, match="rank"):
        sample(native, {**data, name: np.ravel(data[name])[None, None, :]}, coords, settings)


def test_the_starting_point_is_pymcs_for_this_runs_prior_not_the_compiling_runs(loaded, stats):
    """The support point of a variance parameter is set by its prior, which is data: it is computed per run."""
    native, data, _, compiling_start = loaded
    family = family_of(stats)
    metric = Metric(name="converted", family="conversion", column="converted",
                    prior=EffectPrior(effect_sd=0.05, heterogeneity_sd=0.9))
    other = {**family.model_data(stats), **prior_data(metric.prior)}
    start = native.support_point(ModelData.pack(native.layout, other))
    expected = pymc_start(family.build_model(stats, metric))
    np.testing.assert_allclose(start, expected, rtol=1e-12, atol=1e-12)
    assert np.abs(start - compiling_start).max() > 1.0       # log(0.9) against log(0.1) for the sd's start
    np.testing.assert_allclose(native.support_point(ModelData.pack(native.layout, data)), compiling_start,
                               rtol=1e-12, atol=1e-12)
