"""Planning a cluster-randomised experiment: the design effect's closed form, the predicted power against the
real model on simulated clusters, and the clusters needed."""

from __future__ import annotations

import math

import pytest

from bayes_ab.errors import SpecError
from bayes_ab.metric import Baseline, Metric
from bayes_ab.planning.clusters import (cluster_power, design_effect, plan_clusters, posterior_threshold,
                                        simulated_power)

CONVERSION = Metric("conversion", "conversion", column="converted")


def test_design_effect_closed_form():
    assert design_effect(1000, 0.02) == pytest.approx(20.98)
    assert design_effect(1, 0.3) == 1.0                        # one user per cluster: no loss
    assert design_effect(200, 0.05, 0.5) == pytest.approx(1 + (1.25 * 200 - 1) * 0.05)


def test_posterior_threshold_is_the_normal_quantile_with_many_clusters_and_above_it_with_few():
    assert posterior_threshold(5000, 0.99) == pytest.approx(2.3263, abs=2e-3)
    assert posterior_threshold(10, 0.99) > posterior_threshold(30, 0.99) > 2.3263


@pytest.mark.parametrize("clusters, icc, lift, size, cv", [(30, 0.02, 0.3, 500, 0.0), (12, 0.02, 0.5, 500, 0.0),
                                                           (30, 0.05, 0.3, 200, 0.5)])
def test_predicted_power_within_five_points_of_the_real_model_on_simulated_clusters(clusters, icc, lift, size, cv):
    predicted = cluster_power(CONVERSION, Baseline(0.1), lift, clusters, size, icc, 0.99, cv)
    simulated = simulated_power(CONVERSION, 0.1, lift, icc, size, 0.99, clusters, 1500, seed=11, size_cv=cv)
    se = math.sqrt(simulated * (1 - simulated) / 1500)        # <= 1.3 points
    assert abs(predicted - simulated) <= 0.05 + 2 * se, (predicted, simulated)


def test_clusters_needed_is_the_smallest_that_reaches_the_target():
    plan = plan_clusters(CONVERSION, Baseline(0.1), 0.1, 0.02, 500, 0.99, clusters_per_arm=30)
    below = cluster_power(CONVERSION, Baseline(0.1), 0.1, plan.needed_per_arm - 1, 500, 0.02, 0.99)
    at = cluster_power(CONVERSION, Baseline(0.1), 0.1, plan.needed_per_arm, 500, 0.02, 0.99)
    assert below < 0.8 <= at
    assert plan.power < 0.8 and "needed for 80% power" in plan.text()
    # bigger clusters barely help once m x rho >> 1: ten times the users per cluster, far fewer than ten times less
    bigger = plan_clusters(CONVERSION, Baseline(0.1), 0.1, 0.02, 5000, 0.99)
    assert bigger.needed_per_arm > plan.needed_per_arm / 3


def test_few_clusters_are_warned_about_and_bad_inputs_refused():
    assert "fewer than 10 clusters per arm" in plan_clusters(CONVERSION, Baseline(0.1), 0.5, 0.02, 100, 0.99,
                                                             clusters_per_arm=6).text()
    for icc, size, effect in ((1.0, 100, 0.1), (0.02, 0.5, 0.1), (0.02, 100, 0.0)):
        with pytest.raises(SpecError):
            plan_clusters(CONVERSION, Baseline(0.1), effect, icc, size, 0.99)


def test_simulated_clusters_have_the_sizes_rates_and_correlation_asked_for():
    """The simulation that checks the plan is itself checked: gamma sizes of the given mean and CV, arm means
    rate and rate x (1 + lift), and a between-cluster variance of the rates of icc x rate (1 - rate)."""
    import numpy as np

    from bayes_ab.planning.clusters import simulate_clusters

    converted, sizes = simulate_clusters(np.random.default_rng(0), 20_000, 400, 0.1, 0.05, 0.2, size_cv=0.5)
    assert sizes.mean() == pytest.approx(400, rel=0.02) and sizes.std() / sizes.mean() == pytest.approx(0.5, rel=0.05)
    rates = converted / sizes
    control, treated = rates[:20_000], rates[20_000:]
    assert control.mean() == pytest.approx(0.1, rel=0.02) and treated.mean() == pytest.approx(0.12, rel=0.02)
    # the variance of a cluster's observed rate: icc p (1 - p) between clusters + (1 - icc) p (1 - p) / m within
    within = np.mean((1 - 0.05) * 0.1 * 0.9 / sizes[:20_000])
    assert control.var() - within == pytest.approx(0.05 * 0.1 * 0.9, rel=0.08)


def test_the_planned_interval_width_is_the_analysis_width():
    """The plan's 90% half-width of the relative lift against the median half-width of the cluster model's
    intervals on 300 simulated A/A experiments."""
    import numpy as np

    from bayes_ab.families import family_for
    from bayes_ab.families.clustered import clustered_metric
    from bayes_ab.planning.clusters import simulate_clusters

    plan = plan_clusters(CONVERSION, Baseline(0.1), 0.1, 0.02, 300, 0.99, clusters_per_arm=20)
    analysed = clustered_metric(CONVERSION, "city")
    rng = np.random.default_rng(1)
    widths = []
    for _ in range(300):
        converted, sizes = simulate_clusters(rng, 20, 300, 0.1, 0.02, 0.0)
        sums = family_for(analysed).accumulator_type(analysed, ("control", "treatment"), None)
        sums.add(np.repeat([0, 1], 20), np.column_stack([converted, sizes]).astype(float))
        draws = sums.posterior(rng, 4000)
        with np.errstate(invalid="ignore"):     # a Student-t draw of a small cell can be negative: no log
            low, high = np.nanquantile(np.log(draws[:, 1] / draws[:, 0]), [0.05, 0.95])
        widths.append((high - low) / 2)
    assert math.log1p(plan.interval_half_width) == pytest.approx(np.median(widths), rel=0.08)
