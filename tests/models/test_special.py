"""Native special functions: equal to SciPy's, and they let numba cache a negative binomial model on disk."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from scipy import special as sp

from bayes_ab.models import special
from bayes_ab.models.compiled import cache_root, native_model


def test_digamma_equals_scipy_including_small_and_negative_arguments():
    xs = np.concatenate([np.geomspace(1e-8, 1e8, 400), -np.linspace(0.013, 7.9, 300)])
    ours = np.array([special.digamma(x) for x in xs])
    np.testing.assert_allclose(ours, sp.psi(xs), rtol=1e-12, atol=1e-13)   # near the poles tan() limits the reflection
    assert np.isnan(special.digamma(-2.0)) and np.isnan(special.digamma(0.0))


def test_the_numba_backend_uses_them_and_agrees_with_scipy():
    special.register()
    x = pt.dvector("x")
    f = pytensor.function([x], [pt.gammaln(x), pt.psi(x), pt.erf(x - 3), pt.erfc(x - 3)], mode="NUMBA")
    values = np.linspace(0.05, 40.0, 97)
    for got, expected in zip(f(values), (sp.gammaln(values), sp.psi(values), sp.erf(values - 3),
                                         sp.erfc(values - 3))):
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)
    counts = pt.lvector("counts")                         # gammaln(y + 1) of integer data, as count models do
    g = pytensor.function([counts], pt.gammaln(counts + 1), mode="NUMBA")
    np.testing.assert_allclose(g(np.arange(0, 50_000, 997)), sp.gammaln(np.arange(0, 50_000, 997) + 1.0), rtol=1e-14)


def test_a_negative_binomial_model_is_cached_on_disk_whole(tmp_path, monkeypatch):
    """Its log-density calls gammaln and its gradient psi: through SciPy's function pointers numba would not
    cache the log-density callback, and every process compiled it again."""
    monkeypatch.setenv("BAYES_AB_CACHE_DIR", str(tmp_path))

    def build():
        with pm.Model() as model:
            y = pm.Data("y", np.array([0, 1, 1, 3, 8, 2, 0, 5]))
            mu = pm.LogNormal("mu", 0.0, 1.0)
            alpha = pm.LogNormal("alpha", 0.0, 1.0)
            pm.Potential("obs", pm.logp(pm.NegativeBinomial.dist(mu=mu, alpha=alpha), y).sum())
        return model

    native_model("nbtest", build)
    cached = {p.name.split("-")[0] for p in (cache_root() / "nbtest" / "__pycache__").glob("*.nbi")}
    assert cached == {"callbacks.logp", "callbacks.expand", "callbacks.initial"}
