"""Simulated traffic: the accumulated statistics carry the truth they were generated from."""

from __future__ import annotations

import numpy as np

from bayes_ab.spec import Baseline
from bayes_ab.stopping.generate import accumulator, factors_for, truth

from conftest import make_spec

ARMS = ("control", "treatment")


def grown(metric_raw: dict, baseline: Baseline, lift: float, days: int = 10, per_day: int = 20_000, seed: int = 0):
    metric = make_spec(metrics=[{"name": "m", "column": "m", "role": "primary", **metric_raw}]).metrics[0]
    world = truth(metric, baseline, factors_for(metric, lift, len(ARMS)))
    acc = accumulator(metric, ARMS)
    rng = np.random.default_rng(seed)
    for _ in range(days):
        arms = np.repeat([0, 1], per_day)
        acc.add(arms, world.draw(rng, arms))
    return acc.stats()


def test_conversion_rates_and_direction():
    stats = grown({"family": "conversion", "direction": "decrease"}, Baseline(0.1), 0.2)
    rate = (stats["successes"] / stats["n"]).values[:, 0]
    se = np.sqrt(rate * (1 - rate) / stats["n"].values[:, 0])
    assert np.all(np.abs(rate - [0.10, 0.08]) < 4 * se)


def test_mean_sufficient_statistics_are_exact_for_normal_data():
    stats = grown({"family": "mean"}, Baseline(4.0, 20.0), 0.1)
    n, total, sumsq = (stats[v].values[:, 0] for v in ("n", "sum", "sumsq"))
    mean = total / n
    sd = np.sqrt((sumsq - total ** 2 / n) / (n - 1))
    assert np.all(np.abs(mean - [4.0, 4.4]) < 4 * 20 / np.sqrt(n))
    assert np.all(np.abs(sd - 20) < 4 * 20 / np.sqrt(2 * n))


def test_counts_are_overdispersed_as_planned():
    stats = grown({"family": "count"}, Baseline(2.0, 0.8), 0.05)
    n, total, sumsq = (stats[v].values[:, 0] for v in ("n", "sum", "sumsq"))
    mean = total / n
    variance = (sumsq - total ** 2 / n) / (n - 1)
    expected = np.array([2.0, 2.1])
    assert np.all(np.abs(mean - expected) < 5 * np.sqrt(expected * (1 + expected / 0.8) / n))
    assert np.all(np.abs(variance / (expected + expected ** 2 / 0.8) - 1) < 0.05)


def test_retention_life_table_recovers_the_planned_d7_with_censoring():
    stats = grown({"family": "retention", "observed_column": "o", "horizon": 7, "max_day": 14},
                  Baseline(0.45), 0.1, days=21, per_day=5_000)
    hazard = stats["lost"] / stats["at_risk"]
    d7 = (1 - hazard.isel(day=slice(0, 7))).prod("day").values[:, 0]
    assert np.all(np.abs(d7 - [0.45, 0.495]) < 0.01)
    # the last cohorts are censored: fewer users at risk on day 14 than ever exposed
    assert np.all(stats["at_risk"].isel(day=13).values < stats["n"].values)


def test_a_prefix_of_the_day_is_a_random_sample_of_it():
    """Rules at different stages see the first users of the same day: the stage's share of them, in the
    planned split, with the same truth (common random numbers)."""
    metric = make_spec(metrics=[{"name": "m", "column": "m", "family": "conversion"}]).metrics[0]
    world = truth(metric, Baseline(0.2), factors_for(metric, 0.5, 2))
    rng = np.random.default_rng(5)
    arms = rng.choice(2, size=200_000, p=[0.5, 0.5])
    values = world.draw(rng, arms)
    small, full = accumulator(metric, ARMS), accumulator(metric, ARMS)
    small.add(arms[:20_000], values[:20_000])
    full.add(arms, values)
    assert small.users().sum() == 20_000 and abs(small.users()[0] / 20_000 - 0.5) < 4 * np.sqrt(0.25 / 20_000)
    rate, variance = small.estimate()
    assert np.all(np.abs(rate - [0.2, 0.3]) < 4 * np.sqrt(variance))
    assert np.all(full.estimate()[0] - rate < 4 * np.sqrt(variance))


def test_classical_estimates_match_the_statistics():
    """The reference rules' estimates: Kaplan-Meier retention equals the life table's product; means
    and their variances equal the textbook formulas."""
    stats = grown({"family": "mean"}, Baseline(4.0, 20.0), 0.1, days=2)
    metric = make_spec(metrics=[{"name": "m", "column": "m", "family": "mean"}]).metrics[0]
    acc = accumulator(metric, ARMS, stats)
    n, total, sumsq = (stats[v].values[:, 0] for v in ("n", "sum", "sumsq"))
    mean, variance = acc.estimate()
    np.testing.assert_allclose(mean, total / n)
    np.testing.assert_allclose(variance, (sumsq - total ** 2 / n) / (n - 1) / n)
    life = grown({"family": "retention", "observed_column": "o", "horizon": 7, "max_day": 14},
                 Baseline(0.45), 0.0, days=10, per_day=2_000)
    retention = make_spec(metrics=[{"name": "m", "column": "m", "family": "retention", "observed_column": "o",
                                    "horizon": 7, "max_day": 14}]).metrics[0]
    km, greenwood = accumulator(retention, ARMS, life).estimate()
    hazard = (life["lost"] / life["at_risk"]).isel(day=slice(0, 7)).values[:, 0, :]
    np.testing.assert_allclose(km, np.prod(1 - hazard, axis=1))
    # Greenwood's formula: Var S(t) = S(t)^2 * sum over days of d / (n (n - d))
    lost = life["lost"].isel(day=slice(0, 7)).values[:, 0, :]
    at_risk = life["at_risk"].isel(day=slice(0, 7)).values[:, 0, :]
    np.testing.assert_allclose(greenwood, km ** 2 * np.sum(lost / (at_risk * (at_risk - lost)), axis=1), rtol=1e-12)
    assert np.all(greenwood > 0) and np.all(np.abs(km - 0.45) < 5 * np.sqrt(greenwood))
