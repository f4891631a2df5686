"""One compiled structure per family, likelihood and class of sizes: a new arm, segment or day count reuses it.

The structure compiled at one size is evaluated at another of the same class (:func:`size_classes`) and held to
PyMC's own model built at that size -- log density, gradient and starting point -- so a builder that wrote a
size into its graph, or branched on one the classes do not name, fails here.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.families import family_of
from bayes_ab.models.compiled import ModelData
from bayes_ab.models.hierarchy import mapped_prior_data, model_coords, size_classes
from bayes_ab.posterior import ModelCache
from bayes_ab.posterior.fit import _structure, model_sizes
from bayes_ab.spec import SamplerSettings

from conftest import make_spec

CASES = {
    # metric, (arms, segments) compiled, (arms, segments) evaluated
    "binomial, three arms": ({"name": "y", "family": "conversion", "column": "converted"}, (3, 3), (4, 5)),
    "binomial, pooled baselines": ({"name": "y", "family": "conversion", "column": "converted"}, (2, 10), (2, 13)),
    "negative binomial": ({"name": "y", "family": "count", "column": "trades", "count_model": "negative_binomial"},
                          (2, 2), (2, 4)),
    # a few segments and many: one class where the baselines are not pooled (integrated out, or zero-sum)
    "mean with its covariate (one treatment in scalars)": (
        {"name": "y", "family": "mean", "column": "revenue", "covariate": "pre"}, (2, 3), (2, 12)),
    "retention (zero-sum segments, days)": (
        {"name": "y", "family": "retention", "column": "churn_day", "observed_column": "days_observed",
         "max_day": 7, "horizon": 3}, (2, 2), (2, 11)),
}


def rows(arms: int, segments: int, users: int, seed: int, days_observed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = arms * segments * users
    churned = rng.random(n) < 0.3
    observed = rng.integers(2, days_observed + 1, n)
    return pd.DataFrame({
        "arm": np.repeat([f"arm{a}" for a in range(arms)], segments * users),
        "seg": np.tile(np.repeat([f"s{s}" for s in range(segments)], users), arms),
        "converted": (rng.random(n) < 0.2).astype(int),
        "trades": rng.negative_binomial(2, 0.5, n),
        "revenue": rng.gamma(2.0, 5.0, n),
        "pre": rng.gamma(2.0, 5.0, n),
        "churn_day": np.where(churned, np.minimum(rng.integers(1, 9, n), observed), np.nan),
        "days_observed": observed,
    })


def statistics(metric: dict, arms: int, segments: int, seed: int, days: int = 7):
    spec = make_spec([{**metric, **({"max_day": days} if "max_day" in metric else {})}], segments=("seg",),
                     arms=[f"arm{a}" for a in range(arms)])
    return aggregate(spec, rows(arms, segments, 40, seed))["y"], spec.metrics[0]


def compiled_at(native, packed: ModelData, x: np.ndarray) -> tuple[float, np.ndarray]:
    grad, value = np.empty_like(x), np.empty(1)
    pointer = ctypes.POINTER(ctypes.c_double)
    status = native.logp_callback.ctypes(x.size, x.ctypes.data_as(pointer), grad.ctypes.data_as(pointer),
                                         value.ctypes.data_as(pointer), ctypes.c_void_p(packed.address))
    assert status == 0, status
    return float(value[0]), grad


@pytest.mark.parametrize("case", list(CASES))
def test_a_structure_compiled_at_one_size_is_pymcs_model_at_another(case, tmp_path, monkeypatch):
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))
    metric_spec, (arms_a, segments_a), (arms_b, segments_b) = CASES[case]
    stats_a, metric = statistics(metric_spec, arms_a, segments_a, seed=1)
    stats_b, _ = statistics(metric_spec, arms_b, segments_b, seed=2, days=9)
    sizes = {d: n for d, n in stats_b.sizes.items() if d != "value"}
    family = family_of(stats_a)
    pooled = family.pools_baselines(family.variant(stats_a, metric))
    assert size_classes(model_sizes(stats_a), pooled) == size_classes(sizes, pooled)
    cache, sampler = ModelCache(), SamplerSettings()
    _structure(family, stats_a, metric, sampler, cache, mapped_prior_data(family, stats_a, metric), size_free=True)
    compiled, data, variant = _structure(family, stats_b, metric, sampler, cache,
                                         mapped_prior_data(family, stats_b, metric))
    assert cache.compilations == 1 and compiled.native.layout.fixed_sizes is None, variant

    packed = ModelData.pack(compiled.native.layout, data, model_coords(stats_b))
    model = family.build_model(stats_b, metric)
    names = compiled.native.layout.names[:compiled.native.layout.n_unconstrained]
    assert list(names) == [v.name for v in model.value_vars]
    start = model.initial_point()
    np.testing.assert_allclose(compiled.native.support_point(packed),
                               np.concatenate([np.ravel(start[name]) for name in names]), rtol=1e-10, atol=1e-12)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(0.0, 0.5, packed.n_dim)
        point, offset = {}, 0
        for name, shape in zip(names, packed.shapes):
            size = int(np.prod(shape))
            point[name] = x[offset:offset + size].reshape(shape)
            offset += size
        value, gradient = compiled_at(compiled.native, packed, x)
        np.testing.assert_allclose(value, logp(point), rtol=1e-9)
        np.testing.assert_allclose(gradient, dlogp(point), rtol=1e-7, atol=1e-9)


def test_the_classes_name_what_the_builders_branch_on():
    assert size_classes({"arm": 2, "segment": 1, "day": 7}) == size_classes({"arm": 2, "segment": 1, "day": 30})
    assert size_classes({"arm": 3, "segment": 4}) == size_classes({"arm": 5, "segment": 9})
    assert size_classes({"arm": 2, "segment": 9}) != size_classes({"arm": 2, "segment": 10})
    assert size_classes({"arm": 2, "segment": 1}) != size_classes({"arm": 2, "segment": 2})
    assert size_classes({"arm": 2, "segment": 3}) != size_classes({"arm": 3, "segment": 3})
    assert size_classes({"cluster": 40}) != size_classes({"cluster": 41})       # an unknown dimension: exact
    # only the hierarchies that pool their baselines tell a few segments from many
    assert size_classes({"arm": 2, "segment": 9}, False) == size_classes({"arm": 2, "segment": 10}, False)
    assert size_classes({"arm": 2, "segment": 1}, False) != size_classes({"arm": 2, "segment": 2}, False)


@pytest.mark.parametrize("family, variant, pooled", [
    ("conversion", "binomial", True), ("conversion", "binomial_effective", True), ("conversion", "normal_cells", False),
    ("count", "negative_binomial", True), ("count", "robust+normal_cells", False), ("mean", "cuped", False),
    ("ratio", "delta", False), ("retention", "horizon 7", False)])
def test_only_the_exact_hierarchies_pool_their_baselines(family, variant, pooled):
    """What each family declares must be what its builder does: it calls segment_baselines exactly where it says
    so (the structure test above checks the declared classes against PyMC's model at other sizes)."""
    from bayes_ab.families import registry

    assert registry()[family].pools_baselines(variant) is pooled


def test_a_model_sized_by_a_data_length_is_compiled_for_its_sizes_only(tmp_path, monkeypatch):
    """A parameter whose length is a data array's, not a dimension's, would be served at the wrong length by a
    size-free structure: it is found out at compile time, cached under its sizes and held to them."""
    import pymc as pm

    from bayes_ab.models.compiled import native_model, sized_key

    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))

    def build():
        with pm.Model(coords={"segment": ["a", "b"]}) as model:
            y = pm.Data("y", np.zeros(3))
            mu = pm.Normal("mu", 0.0, 1.0, shape=y.shape[0])
            pm.Normal("level", 0.0, 1.0, dims="segment")
            pm.Potential("obs", -((y - mu) ** 2).sum())
        return model

    native = native_model("sized-by-data", build, {"segment": 2}, size_free=True)
    assert native.layout.fixed_sizes == {"segment": 2}
    assert native.layout.key == sized_key("sized-by-data", {"segment": 2})
    with pytest.raises(ValueError, match="compiled for the sizes"):
        ModelData.pack(native.layout, {"y": np.zeros(3)}, {"segment": ["a", "b", "c"]})
