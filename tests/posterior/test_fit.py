"""The fit's retries: which remedy a failing run gets, and that a failing fit ends with the remedies taken."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.models.diagnostics import Diagnostics
from bayes_ab.models.fitdata import FitData
from bayes_ab.posterior import fit
from bayes_ab.posterior.fit import _retry
from bayes_ab.sampling import Backend, MassMatrix, SamplerSettings
from bayes_ab.spec import Metric

SETTINGS = SamplerSettings(draws=500, tune=500, chains=2, seed=3)


def run(divergences: int) -> FitData:
    flags = np.zeros((2, 10), dtype=bool)
    flags[0, :divergences] = True
    posterior = xr.Dataset({"mean": (("chain", "draw", "arm"), np.zeros((2, 10, 2)))})
    return FitData(posterior=posterior, sample_stats=xr.Dataset({"diverging": (("chain", "draw"), flags)}))


def diagnostics(rhat: float = 1.0, divergences: int = 0) -> Diagnostics:
    return Diagnostics(max_rhat=rhat, min_ess_bulk=1000, min_ess_tail=1000, divergences=divergences, chains=2,
                       draws=10)


def test_divergences_get_smaller_steps_and_slow_mixing_the_low_rank_metric_with_twice_the_draws():
    assert _retry(run(3), diagnostics(divergences=3), SETTINGS) == replace(SETTINGS, target_accept=0.99)
    assert _retry(run(0), diagnostics(rhat=1.02), SETTINGS) == replace(
        SETTINGS, mass_matrix=MassMatrix.LOW_RANK, draws=1000)
    assert _retry(run(0), diagnostics(), SETTINGS) is None


def test_each_remedy_is_taken_once_and_retries_can_be_turned_off():
    smaller_steps = replace(SETTINGS, target_accept=0.99)
    # smaller steps that still diverge, or end the divergences but leave R-hat failing: the second remedy too
    assert _retry(run(2), diagnostics(divergences=2), smaller_steps) == replace(
        smaller_steps, mass_matrix=MassMatrix.LOW_RANK, draws=1000)
    assert _retry(run(0), diagnostics(rhat=1.02), smaller_steps).mass_matrix == MassMatrix.LOW_RANK
    both = replace(smaller_steps, mass_matrix=MassMatrix.LOW_RANK)
    assert _retry(run(2), diagnostics(divergences=2), both) is None
    assert _retry(run(0), diagnostics(rhat=1.02), both) is None
    assert _retry(run(3), diagnostics(divergences=3), replace(SETTINGS, retry_target_accept=None)) is None
    # PyMC's NUTS has no low-rank metric
    assert _retry(run(0), diagnostics(rhat=1.02), replace(SETTINGS, backend=Backend.PYMC)) is None


@pytest.mark.slow
def test_a_pooling_scale_that_mixes_slowly_is_retried_with_the_low_rank_metric_and_then_passes():
    """1,000 segments of 30 users per arm: at 2 x 300 draws the diagonal metric leaves R-hat above 1.01 (the
    heterogeneity scale against its 1,000 standardised effects); the fit reports the retry it kept."""
    rng = np.random.default_rng(3)
    users = np.full((2, 1000), 30)
    stats = conversion_stats(["control", "treatment"], [f"s{i}" for i in range(1000)], users,
                             rng.binomial(users, 0.1), "converted")
    metric = Metric(name="converted", family="conversion", column="converted")
    first = fit(stats, metric, replace(SETTINGS, draws=300, tune=500, retry_target_accept=None))
    assert not first.diagnostics.passed
    kept = fit(stats, metric, replace(SETTINGS, draws=300, tune=500))
    assert kept.sampler.mass_matrix == MassMatrix.LOW_RANK and kept.sampler.draws == 600
    assert kept.diagnostics.max_rhat < first.diagnostics.max_rhat


def test_a_failed_fit_under_a_learned_student_t_prior_names_the_two_modes_as_its_likely_cause():
    from bayes_ab.metric import EffectPrior, LearnedEffectPrior
    from bayes_ab.posterior.fit import TWO_MODES

    users = np.array([[400, 300, 30], [400, 300, 30]])
    stats = conversion_stats(["control", "treatment"], ["a", "b", "c"], users, np.array([[40, 30, 3], [60, 45, 5]]),
                             "converted")
    learned = LearnedEffectPrior("student_t", 0.0, 0.005, 1.5, 30, "p.yaml", "2026-11-30")
    short = replace(SETTINGS, draws=30, tune=30, retry_target_accept=None)      # too few draws to pass
    t_fit = fit(stats, Metric(name="c", family="conversion", column="c", prior=EffectPrior(learned=learned)), short)
    assert not t_fit.diagnostics.passed and t_fit.diagnostics.problems[-1] == TWO_MODES
    plain = fit(stats, Metric(name="c", family="conversion", column="c"), short)
    assert not plain.diagnostics.passed and TWO_MODES not in plain.diagnostics.problems
    assert Diagnostics(1.0, 1000, 1000, 0, 2, 10, cause=TWO_MODES).problems == ()


def test_the_pymc_backend_takes_only_the_data_its_model_declares():
    """A learned Student-t's data include its scale mixture's nodes, which the sampled segment hierarchy does not
    read: PyMC refused the unknown name (KeyError 'prior_mix_nodes') before the fit set only what it declares."""
    from bayes_ab.metric import EffectPrior, LearnedEffectPrior

    users = np.array([[400, 300, 30], [400, 300, 30]])
    stats = conversion_stats(["control", "treatment"], ["a", "b", "c"], users, np.array([[40, 30, 3], [60, 45, 5]]),
                             "converted")
    learned = LearnedEffectPrior("student_t", 0.0, 0.05, 3.0, 30, "p.yaml", "2026-11-30")
    metric = Metric(name="c", family="conversion", column="c", prior=EffectPrior(learned=learned))
    result = fit(stats, metric, replace(SETTINGS, draws=50, tune=50, backend=Backend.PYMC, retry_target_accept=None))
    assert result.backend == Backend.PYMC and result.idata.posterior.sizes["draw"] == 50
