"""Holm and Benjamini-Hochberg against statsmodels: the one definition the SRM checks and the reference rules use."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from bayes_ab.multiplicity import benjamini_hochberg, holm


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_benjamini_hochberg_reject_what_statsmodels_rejects(seed):
    rng = np.random.default_rng(seed)
    p_values = list(np.concatenate([rng.uniform(0, 0.02, 3), rng.uniform(0, 1, 7)]))
    for ours, method in ((holm, "holm"), (benjamini_hochberg, "fdr_bh")):
        assert ours(p_values, 0.05) == list(multipletests(p_values, alpha=0.05, method=method)[0])


def test_holm_rejects_what_statsmodels_rejects_across_family_sizes(monkeypatch):
    # statsmodels' Holm runs a full garbage collection on every call: in a test worker whose heap holds compiled
    # models that took 0.7 s a call (142 s for this test); the collection changes no result
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)
    rng = np.random.default_rng(3)
    for _ in range(200):
        p = np.concatenate([rng.uniform(size=rng.integers(1, 30)), rng.uniform(0, 1e-3, size=rng.integers(0, 5))])
        assert holm(list(p), 0.01) == list(multipletests(p, alpha=0.01, method="holm")[0])


def test_benjamini_hochberg_rejects_what_statsmodels_rejects_across_family_sizes():
    """Families of 1 to 40 with a few small p-values near the step-up limits, where a limit off by one rank
    (alpha (i + 1) / k instead of alpha i / k) rejects more than statsmodels does."""
    rng = np.random.default_rng(4)
    for _ in range(300):
        p = np.concatenate([rng.uniform(size=rng.integers(1, 40)), rng.uniform(0, 0.02, size=rng.integers(0, 6))])
        assert benjamini_hochberg(list(p), 0.05) == list(multipletests(p, alpha=0.05, method="fdr_bh")[0])
