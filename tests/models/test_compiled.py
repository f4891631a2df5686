"""The disk-cached sampler: one compilation per structure and machine, loads in later processes, never stale."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import sys
import textwrap

import numpy as np
import pymc as pm
import pytest

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.models.compiled import LAYOUT_FILE, ModelData, cache_root, native_model, structure_key
from bayes_ab.models.nuts import NutsSettings, sample
from bayes_ab.spec import EffectPrior, Metric

from conftest import FAST, ROOT


def location_model(y: np.ndarray) -> pm.Model:
    """``y ~ Normal(mu, 1)`` with a flat-ish prior on ``mu``: the posterior of ``mu`` is N(ybar, 1/n)."""
    with pm.Model() as model:
        data = pm.Data("y", y)
        mu = pm.Normal("mu", 0.0, 100.0)
        pm.Potential("obs", pm.logp(pm.Normal.dist(mu, 1.0), data).sum())
    return model


def sample_mu(native, y: np.ndarray, seed: int = 1) -> np.ndarray:
    trace = sample(native, {"y": y}, {}, NutsSettings(draws=500, tune=300, chains=2, cores=1, seed=seed,
                                                      target_accept=0.8))
    return trace.posterior["mu"].values.ravel()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_new_data_of_any_size_reuse_the_compiled_code_and_give_the_exact_posterior(cache_dir):
    rng = np.random.default_rng(5)
    key = structure_key("location", "test", {}, {"y": np.zeros(3)})
    native = native_model(key, lambda: location_model(np.zeros(3)))
    assert native.compiled
    for n, mean in ((10, 2.0), (2_000, -1.0)):
        y = rng.normal(mean, 1.0, n)
        draws = sample_mu(native, y)
        # exact posterior N(ybar, 1/n) (the prior sd of 100 is negligible); MC error from ~1000 draws
        assert abs(draws.mean() - y.mean()) < 5 * (1 / np.sqrt(n)) / np.sqrt(500)
        assert abs(draws.std() / (1 / np.sqrt(n)) - 1) < 0.12


def test_a_second_load_reads_the_cache_and_a_damaged_entry_is_rebuilt(cache_dir):
    key = structure_key("location", "test", {}, {"y": np.zeros(3)})
    built = []

    def build():
        built.append(1)
        return location_model(np.zeros(3))

    first = native_model(key, build)
    layout = cache_root() / key / LAYOUT_FILE
    assert first.compiled and json.loads(layout.read_text())["key"] == key
    y = np.random.default_rng(6).normal(0.5, 1.0, 50)
    # the callbacks' module is cached in this process; a load from the layout must give the same draws
    loaded = native_model(key, build)
    assert not loaded.compiled and len(built) == 1
    np.testing.assert_array_equal(sample_mu(first, y), sample_mu(loaded, y))
    layout.write_text('{"key": "truncated')          # a killed writer, a full disk
    rebuilt = native_model(key, build)
    assert rebuilt.compiled and len(built) == 2
    assert abs(sample_mu(rebuilt, y).mean() - y.mean()) < 5 * (1 / np.sqrt(50)) / np.sqrt(500)


def test_the_key_follows_the_structure_and_ignores_data_values_and_sizes():
    base = structure_key("conversion", "conversion", {"arm": 2, "segment": 3}, {"n": np.zeros((2, 3), int)})
    assert base == structure_key("conversion", "conversion", {"arm": 2, "segment": 3},
                                 {"n": np.ones((2, 3), int)})
    assert base == structure_key("conversion", "conversion", {"segment": 3, "arm": 2},
                                 {"n": np.ones((5, 7), int)})
    changed = [
        structure_key("count", "conversion", {"arm": 2, "segment": 3}, {"n": np.zeros((2, 3), int)}),
        structure_key("conversion", "robust", {"arm": 2, "segment": 3}, {"n": np.zeros((2, 3), int)}),
        structure_key("conversion", "conversion", {"arm": 3, "segment": 3}, {"n": np.zeros((2, 3), int)}),
        structure_key("conversion", "conversion", {"arm": 2, "segment": 3}, {"n": np.zeros((2, 3), float)}),
        structure_key("conversion", "conversion", {"arm": 2, "segment": 3}, {"n": np.zeros(6, int)}),
        structure_key("conversion", "conversion", {"arm": 2, "segment": 3}, {"m": np.zeros((2, 3), int)}),
    ]
    assert len({base, *changed}) == 1 + len(changed)


def test_another_prior_reuses_the_compiled_model_and_moves_the_posterior():
    """Priors are data of the model: a second prior must not recompile, and must not be served the first."""
    rng = np.random.default_rng(12)
    users = np.full((2, 3), 4_000)
    stats = conversion_stats(["control", "treatment"], ["a", "b", "c"], users,
                             rng.binomial(users, np.array([[0.10] * 3, [0.11] * 3])), "converted")
    cache = ModelCache()
    wide = fit(stats, Metric(name="converted", family="conversion", column="converted",
                             prior=EffectPrior(effect_sd=1.0, heterogeneity_sd=0.1)), FAST, cache)
    tight_sd = 0.002
    tight = fit(stats, Metric(name="converted", family="conversion", column="converted",
                              prior=EffectPrior(effect_sd=tight_sd, heterogeneity_sd=0.1)), FAST, cache)
    assert cache.compilations == 1
    wide_sd = float(wide.idata.posterior["effect_mu"].std())
    # the data alone put the effect's sd near 0.04 (logit scale); a N(0, 0.002) prior must dominate it
    assert wide_sd > 0.02
    assert float(tight.idata.posterior["effect_mu"].std()) < 1.2 * tight_sd


SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import FAST
    from bayes_ab.families.conversion import conversion_stats
    from bayes_ab.posterior import ModelCache, fit
    from bayes_ab.spec import EffectPrior, Metric

    HEAVY = {{"arviz", "matplotlib", "pymc", "pytensor", "scipy.stats"}}
    cache = ModelCache()
    runs = []
    for run in sys.argv[1:]:        # "SEGMENTS:HETEROGENEITY_SD"; one structure per segment count
        segments, heterogeneity_sd = int(run.split(":")[0]), float(run.split(":")[1])
        users = np.full((2, segments), 2500)
        rates = np.array([[0.10] * segments, [0.11] * segments])
        stats = conversion_stats(["control", "treatment"], [f"s{{i}}" for i in range(segments)], users,
                                 np.round(users * rates).astype(int), "converted")
        imported = sorted(HEAVY & set(sys.modules))       # before this fit
        loaded = cache.from_disk
        metric = Metric(name="converted", family="conversion", column="converted",
                        prior=EffectPrior(effect_sd=0.5, heterogeneity_sd=heterogeneity_sd))
        result = fit(stats, metric, FAST, cache)
        draws = np.ascontiguousarray(result.idata.posterior["mean"].values)
        runs.append({{"loaded": cache.from_disk - loaded, "imported_before": imported,
                     "imported_after": sorted(HEAVY & set(sys.modules)),
                     "digest": hashlib.sha256(draws.tobytes()).hexdigest(),
                     "lift": float(draws[..., 1, :].mean() - draws[..., 0, :].mean())}})
    print(json.dumps(runs))
""")


def test_a_fresh_process_loads_the_compiled_model_and_draws_the_same_posterior(tmp_path):
    script = SCRIPT.format(tests=str(ROOT / "tests"))

    def process(cache: str, *runs: str) -> list[dict]:
        env = {**os.environ, "BAYES_AB_CACHE_DIR": str(tmp_path / cache)}
        done = subprocess.run([sys.executable, "-c", script, *runs], env=env, capture_output=True,
                              text=True, check=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1])

    (compiled,) = process("one", "2:0.1")
    # a load, then a new structure compiled in the same process
    loaded, compiled_after_a_load = process("one", "2:0.1", "3:0.1")
    (reloaded,) = process("one", "3:0.1")
    # the compiled structure of a wider heterogeneity prior, on another machine's cache, then loaded here
    (compiled_elsewhere,) = process("two", "2:0.8")
    (loaded_with_another_prior,) = process("one", "2:0.8")
    assert [compiled["loaded"], loaded["loaded"], compiled_after_a_load["loaded"], reloaded["loaded"],
            compiled_elsewhere["loaded"], loaded_with_another_prior["loaded"]] == [0, 1, 0, 1, 0, 1]
    # the same machine code, data and seed: the same draws, bit for bit
    assert compiled["digest"] == loaded["digest"]
    assert compiled_after_a_load["digest"] == reloaded["digest"]
    # the starting point is computed from the run's prior: the draws do not depend on which prior compiled
    # the structure first (they did while the compiling run's start was stored with the code)
    assert loaded_with_another_prior["digest"] == compiled_elsewhere["digest"] != compiled["digest"]
    # true lift 0.01; FAST's 1,000 draws: the posterior mean is within a few posterior sds (~0.006)
    for run in (compiled, compiled_after_a_load):
        assert 0.0 < run["lift"] < 0.025
    # a process that loads a compiled model reads it without PyMC, PyTensor, ArviZ, matplotlib or scipy.stats
    # (seconds of imports); numba's stored environments name PyTensor's modules but are rebuilt without them
    assert loaded["imported_before"] == loaded["imported_after"] == reloaded["imported_after"] == []
    # the cache carried through a tar archive, as a container image's layers carry it (whole-second times): still
    # a load, with the same draws (numba's index compares the source's mtime; fractions of a second were lost)
    with tarfile.open(tmp_path / "cache.tar", "w", format=tarfile.GNU_FORMAT) as archive:   # whole seconds
        archive.add(tmp_path / "one", arcname="copied")
    with tarfile.open(tmp_path / "cache.tar") as archive:
        archive.extractall(tmp_path, filter="tar")
    (carried,) = process("copied", "2:0.1")
    assert carried["loaded"] == 1 and carried["digest"] == compiled["digest"]


def test_an_unwritable_cache_compiles_for_this_process_and_says_so(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(blocker / "cache"))
    key = structure_key("location", "unwritable", {}, {"y": np.zeros(3)})
    native = native_model(key, lambda: location_model(np.zeros(3)))
    assert native.compiled and "cannot be written" in capsys.readouterr().err
    y = np.random.default_rng(8).normal(1.0, 1.0, 40)
    assert abs(sample_mu(native, y).mean() - y.mean()) < 5 * (1 / np.sqrt(40)) / np.sqrt(500)


def test_entries_unused_for_a_month_are_pruned_when_a_structure_is_compiled(cache_dir):
    stale = cache_root() / "stale-entry"
    stale.mkdir(parents=True)
    (stale / LAYOUT_FILE).write_text("{}")
    os.utime(stale / LAYOUT_FILE, (0, 0))
    native_model(structure_key("location", "prune", {}, {"y": np.zeros(3)}), lambda: location_model(np.zeros(3)))
    assert not stale.exists()


def test_a_support_point_written_with_a_draw_compiles_and_a_random_start_is_refused(cache_dir):
    """ZeroSumNormal's support point is ``zeros_like(draw)``: its draw gives a shape only, so it compiles (and
    equals PyMC's start, which the compilation checks). A start drawn from the prior cannot be a function of
    the data; it is refused at compile time, never served as zeros."""
    def build(initval):
        with pm.Model(coords={"segment": ["a", "b", "c"]}) as model:
            y = pm.Data("y", np.array([0.5, -0.2, 0.1]), dims="segment")
            scale = pm.HalfNormal("scale", 2.0, initval=initval)
            offsets = pm.ZeroSumNormal("offsets", sigma=scale, dims="segment")
            pm.Potential("obs", pm.logp(pm.Normal.dist(offsets, 1.0), y).sum())
        return model

    native = native_model(structure_key("zerosum", "support", {"segment": 3}, {"y": np.zeros(3)}),
                          lambda: build(None))
    start = native.support_point(ModelData.pack(native.layout, {"y": np.array([3.0, 1.0, -4.0])}))
    # HalfNormal(2)'s support point is 2 (log 2 unconstrained); the zero-sum offsets' is 0
    np.testing.assert_allclose(start, [np.log(2.0), 0.0, 0.0], atol=1e-12)
    with pytest.raises(RuntimeError, match="differs from PyMC's"):
        native_model(structure_key("zerosum", "prior", {"segment": 3}, {"y": np.zeros(3)}), lambda: build("prior"))


CELLS = {"n": np.array([[21306.0], [21387.0]]), "ybar": np.array([[0.0544], [0.0898]])}


def cancelling_model() -> pm.Model:
    """Two Gaussian cells pooled as the mean family pools them, with an empty cell's variance blended in as
    ``present * sigma^2 / n + (1 - present) * 1e12`` -- the first form of the mean family's marginalised model.
    The pinned PyTensor's numba rewrites expand that into a difference of 1e12-sized terms, so its default
    compilation of this log density loses every digit -- with the dimensions' lengths as constants, as every
    structure had them before structures became size-free (the rewrite needs the constant shapes)."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    from bayes_ab.models.gaussian_pool import pooled_gaussian_cells

    with pm.Model(coords={"treatment": ["t"], "segment": ["s"]}) as model:
        users, ybar = pm.Data("n", CELLS["n"]), pm.Data("ybar", CELLS["ybar"])
        present = pm.math.minimum(users, 1.0)
        sigma = pm.math.exp(pm.Normal("log_sigma", 0.0, 1.0, shape=(2, 1)))
        variance = present * sigma ** 2 / pm.math.maximum(users, 1.0) + (1.0 - present) * 1e12
        pooled_gaussian_cells(ybar, variance, EffectPrior(), 1, 1)
    return freeze_dims_and_data(model, data=[])


def test_a_compiled_density_that_disagrees_with_pytensor_is_compiled_again_and_agrees(tmp_path, monkeypatch):
    """The check at compile time: the cached structure's log density equals PyTensor's reference evaluation
    at points away from the start, where the default numba compilation of this graph does not."""
    import ctypes

    import pytensor

    from bayes_ab.models.hierarchy import prior_data

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))
    model = cancelling_model()
    inputs = [pytensor.tensor.TensorType("float64", shape=(None, None))(name) for name in CELLS]
    point = pytensor.tensor.dvector("point")
    sizes = [int(np.prod(model.initial_point()[v.name].shape)) for v in model.value_vars]
    replace, offset = {model[name]: variable for name, variable in zip(CELLS, inputs)}, 0
    for variable, size in zip(model.value_vars, sizes):
        replace[variable] = point[offset:offset + size].reshape(model.initial_point()[variable.name].shape)
        offset += size
    (density,) = pytensor.clone_replace([model.logp()], replace)
    at = np.array([0.3, -0.4, 0.5, -0.2, 0.1])
    values = [pytensor.function([point, *inputs], density, mode=mode)(at, *CELLS.values())
              for mode in ("FAST_COMPILE", "NUMBA")]
    assert not np.isclose(*values), "the pinned PyTensor compiles this graph right: the check has nothing to catch"

    logp = model.compile_logp()
    native = native_model(structure_key("cancelling", "plain", {}, CELLS), cancelling_model)
    data = ModelData.pack(native.layout, {**CELLS, **prior_data(EffectPrior())})
    pointer = ctypes.POINTER(ctypes.c_double)
    names = native.layout.names[:native.layout.n_unconstrained]
    for shift in (0.0, 0.4, -1.3):
        value = np.concatenate([np.ravel(model.initial_point()[name]) + shift for name in names])
        gradient, out = np.empty_like(value), np.empty(1)
        status = native.logp_callback.ctypes(value.size, value.ctypes.data_as(pointer),
                                             gradient.ctypes.data_as(pointer), out.ctypes.data_as(pointer),
                                             data.address)
        expected = logp({name: model.initial_point()[name] + shift for name in names})
        assert status == 0 and out[0] == pytest.approx(expected, rel=1e-9)


# -- the model's code goes through LLVM once ------------------------------------------------------------------


def test_a_structure_is_compiled_as_three_callbacks_with_the_models_code_inlined(cache_dir, monkeypatch):
    """numba optimises and generates machine code for every function it compiles, and again inside every caller
    it is linked into. The model's code is therefore inlined into the three C callbacks: no PyTensor graph
    function (``numba_funcified_fgraph``, with PyTensor's ``*args`` wrapper of the same name) and no helper of
    the generated module (``_logp``, ``_expand``, ``_initial``) is compiled on its own."""
    from numba.core import codegen

    finalized = []
    original = codegen.CPUCodeLibrary._optimize_final_module

    def recording(library):
        finalized.append(library.name)
        return original(library)

    monkeypatch.setattr(codegen.CPUCodeLibrary, "_optimize_final_module", recording)
    key = structure_key("location", "inlined", {}, {"y": np.zeros(3)})
    native = native_model(key, lambda: location_model(np.zeros(3)))
    assert native.compiled
    assert {"logp", "expand", "initial"} <= set(finalized)
    assert not [name for name in finalized if "fgraph" in name or name in ("_logp", "_expand", "_initial")]
    draws = sample_mu(native, np.full(50, 1.5))         # and it samples the posterior N(1.5, 1/50)
    assert abs(draws.mean() - 1.5) < 5 * np.sqrt(1 / 50) / np.sqrt(500)


def test_pytensors_function_is_unwrapped_for_inlining_and_left_as_it_is_when_it_cannot_be():
    import numba
    import pytensor
    import pytensor.tensor as pt

    from bayes_ab.models.compiled import inlined

    x = pt.dvector("x")
    function = pytensor.function([x], [(x ** 2).sum(), pt.exp(x)], mode="NUMBA")
    unwrapped = inlined(function.vm.jit_fn)
    assert unwrapped.targetoptions["inline"] == "always", "the pinned PyTensor's wrapper was not unwrapped"

    @numba.njit
    def call(values):
        return unwrapped(values)

    total, exp = call(np.array([1.0, 2.0]))
    assert total == 5.0 and np.allclose(exp, np.exp([1.0, 2.0]))

    @numba.njit
    def star(*args):
        return args[0] + 1.0

    assert inlined(star) is star                       # a ``*args`` function numba cannot inline: as it is
