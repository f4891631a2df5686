"""The sampler's use of library internals: pinned, checked before use, and a public-API path when they differ."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.models import compat
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.spec import Metric, SamplerSettings

from conftest import ROOT


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_the_fast_paths_releases_are_the_ones_make_installs():
    pins = constraint_pins()
    assert {name: pins.get(name) for name in compat.PINNED} == compat.PINNED


def test_this_environment_has_the_tested_releases_and_takes_the_fast_path():
    """The suite is meant to run on `make`'s environment: the fast path is what it tests."""
    assert compat.version_mismatches() == []
    assert compat.runtime_mismatches() == [] and compat.compile_mismatches() == []


def test_a_changed_signature_in_nutpies_extension_is_found(monkeypatch):
    from bayes_ab.models import nuts

    real = nuts.library()
    changed = SimpleNamespace(**{name: getattr(real, name) for name in dir(real) if not name.startswith("_")})
    changed.PyMcModel = SimpleNamespace(__text_signature__="(density, expand, variables, dim, dim_sizes, coords)")
    del changed.PyStorage
    monkeypatch.setattr(nuts, "library", lambda: changed)
    problems = compat.runtime_mismatches()
    assert any(p.startswith("nutpie._lib.PyMcModel(density, expand, variables, dim, dim_sizes, coords)") for p in problems)
    assert "nutpie._lib.PyStorage.arrow is missing" in problems


def test_a_changed_internal_of_pytensor_is_found(monkeypatch):
    from pytensor.link.numba.dispatch import basic

    monkeypatch.delattr(basic, "register_funcify_and_cache_key")
    assert compat.compile_mismatches() == ["pytensor.link.numba.dispatch.basic.register_funcify_and_cache_key is missing"]
    with pytest.raises(compat.NativeUnavailable, match="register_funcify_and_cache_key is missing"):
        compat.check_compile()


@pytest.mark.parametrize("choice, versions, internals, expected", [
    ("", [], [], "native"),
    ("", ["nutpie 0.17.0 (tested 0.16.8)"], [], "public"),
    ("native", ["nutpie 0.17.0 (tested 0.16.8)"], [], "native"),
    ("native", [], ["nutpie._lib.LogpFunc is missing"], "public"),
    ("public", [], [], "public"),
])
def test_the_path_follows_the_versions_the_internals_and_the_override(monkeypatch, capsys, choice, versions,
                                                                      internals, expected):
    monkeypatch.setenv(compat.CHOICE_ENV, choice)
    monkeypatch.setattr(compat, "version_mismatches", lambda: versions)
    monkeypatch.setattr(compat, "runtime_mismatches", lambda: internals)
    monkeypatch.setattr(compat, "_NOTICED", set())
    compat.sampler_path.cache_clear()
    try:
        path = compat.sampler_path()
    finally:
        compat.sampler_path.cache_clear()
    assert path.path == expected
    err = capsys.readouterr().err
    if expected == "public":
        assert err.startswith("bayes-ab: note: sampling through nutpie's public API (") and err.count("\n") == 1
    else:
        assert err == ""


@pytest.mark.smoke
def test_the_public_path_fits_the_same_posterior_as_the_fast_path(monkeypatch, capsys, tmp_path):
    """The fallback is correct, not only present: both paths sample one model; their posterior means agree
    within Monte Carlo error (4 MC standard errors of the difference)."""
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))
    stats = conversion_stats(["control", "treatment"], ["a", "b", "c"], np.array([[3000, 2000, 900]] * 2),
                             np.array([[300, 190, 95], [330, 215, 88]]), "converted")
    metric = Metric("converted", "conversion", "converted")
    settings = SamplerSettings(draws=1000, tune=600, chains=2, seed=11)
    fast = fit(stats, metric, settings, ModelCache())
    monkeypatch.setenv(compat.CHOICE_ENV, "public")       # the override a user has, read once per process
    compat.sampler_path.cache_clear()
    try:
        cache = ModelCache()
        public = fit(stats, metric, settings, cache)
    finally:
        compat.sampler_path.cache_clear()
    assert "sampling through nutpie's public API" in capsys.readouterr().err
    entry = next(iter(cache.compiled.values()))
    assert entry.native is None and entry.public is not None
    for result in (fast, public):       # mixed well enough for the effective sample size to size the error
        assert result.diagnostics.max_rhat < 1.05 and result.diagnostics.divergences == 0
    for name in ("mean", "effect"):
        a, b = fast.idata.posterior[name], public.idata.posterior[name]
        assert a.dims == b.dims and a.shape == b.shape
        se = np.sqrt(a.var(("chain", "draw")) / fast.diagnostics.min_ess_bulk
                     + b.var(("chain", "draw")) / public.diagnostics.min_ess_bulk)
        gap = abs(a.mean(("chain", "draw")) - b.mean(("chain", "draw")))
        assert bool((gap < 4 * se).all()), f"{name}: {gap.values} vs {se.values}"
    assert "diverging" in public.idata.sample_stats
