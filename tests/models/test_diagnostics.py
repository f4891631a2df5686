"""Diagnostics: a fit that cannot be diagnosed is never reported clean."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from bayes_ab.errors import ModelError
from bayes_ab.models.diagnostics import diagnose, divergent_transitions
from bayes_ab.models.fitdata import FitData, from_inference_data, sampler_statistics


def mcmc_fit(diverging: np.ndarray | None) -> FitData:
    rng = np.random.default_rng(0)
    posterior = xr.Dataset({"mean": (("chain", "draw", "arm"), rng.normal(size=(2, 200, 2))),
                            "effect": (("chain", "draw", "treatment"), rng.normal(size=(2, 200, 1)))})
    stats = {"energy": (("chain", "draw"), rng.normal(size=(2, 200)))}
    if diverging is not None:
        stats["diverging"] = (("chain", "draw"), diverging)
    return FitData(posterior=posterior, sample_stats=xr.Dataset(stats))


def test_divergences_are_counted():
    flags = np.zeros((2, 200), dtype=bool)
    flags[0, [3, 70]] = True
    flags[1, 9] = True
    assert divergent_transitions(mcmc_fit(flags)) == 3
    assert diagnose(mcmc_fit(flags), ["mean"]).divergences == 3


def test_a_fit_whose_diverging_statistic_was_deleted_is_an_error_not_a_clean_fit():
    fit = mcmc_fit(np.zeros((2, 200), dtype=bool))
    stripped = fit.with_group("sample_stats", fit.sample_stats.drop_vars("diverging"))
    with pytest.raises(ModelError, match="no 'diverging'"):
        divergent_transitions(stripped)
    with pytest.raises(ModelError, match="no 'diverging'"):
        diagnose(stripped, ["mean"])


def test_exact_draws_have_no_transitions_to_diverge():
    fit = mcmc_fit(None)
    exact = FitData(posterior=fit.posterior)
    assert divergent_transitions(exact) == 0


def test_a_sampler_that_stops_reporting_divergences_is_refused_where_its_output_is_read():
    with pytest.raises(RuntimeError, match="returned no diverging statistic"):
        sampler_statistics(["energy", "step_size"], "nutpie's sampler")
    assert sampler_statistics(["step_size", "diverging", "tuning"], "x") == ["diverging", "step_size"]
    fit = mcmc_fit(None)

    class Trace:
        posterior = fit.posterior
        sample_stats = fit.sample_stats

    with pytest.raises(RuntimeError, match="returned no diverging statistic"):
        from_inference_data(Trace(), {})
