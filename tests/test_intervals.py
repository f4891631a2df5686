"""The credible intervals every table uses: the equal-tailed interval (default) and ArviZ's highest-density one."""

from __future__ import annotations

import json
import pickle

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayes_ab.analysis import analyze
from bayes_ab.errors import SpecError
from bayes_ab.intervals import CredibleLevel, IntervalKind, credible_interval, eti, hdi, interval_name, kind_of

from conftest import make_spec


@pytest.mark.parametrize("draws", [
    np.random.default_rng(1).normal(0.03, 0.01, 4000),
    np.random.default_rng(2).lognormal(0.0, 1.0, 4001),        # skewed: the HDI is not the central interval
    np.random.default_rng(3).integers(0, 5, 1000).astype(float),  # ties
    np.array([1.0, 2.0]),
])
@pytest.mark.parametrize("prob", [0.5, 0.9, 0.95])
def test_hdi_is_arviz_hdi_and_eti_is_the_central_quantiles(draws, prob):
    assert hdi(draws, prob) == tuple(float(x) for x in az.hdi(draws, hdi_prob=prob))
    # an independent statement of the equal-tailed interval: sorted draws, linear interpolation at (n-1) q
    ordered = np.sort(draws)
    ends = []
    for q in ((1 - prob) / 2, (1 + prob) / 2):
        position = (ordered.size - 1) * q
        below = int(np.floor(position))
        above = min(below + 1, ordered.size - 1)
        ends.append(ordered[below] + (position - below) * (ordered[above] - ordered[below]))
    np.testing.assert_allclose(eti(draws, prob), ends, rtol=1e-12)


def test_non_finite_draws_are_left_out_and_too_few_give_nan():
    draws = np.r_[np.random.default_rng(4).normal(size=500), np.nan, np.inf]
    for interval in (hdi, eti):
        assert interval(draws, 0.9) == interval(draws[np.isfinite(draws)], 0.9)
        assert all(np.isnan(interval(np.array([1.0, np.nan]), 0.9)))
    assert hdi(np.array([3.0, 1.0, 2.0]), 1.0) == (1.0, 3.0) == eti(np.array([3.0, 1.0, 2.0]), 1.0)


def test_the_equal_tailed_interval_maps_through_a_monotone_transform_and_the_hdi_does_not():
    """Why ETI is the default: the relative lift's interval is the log ratio's, mapped (exactly up to the
    interpolation between two draws); the HDI of the relative lift sits towards its mode."""
    log_ratio = np.random.default_rng(5).normal(0.3, 0.25, 40_001)      # odd n: the quantiles are draws
    lift = np.expm1(log_ratio)
    np.testing.assert_allclose(eti(lift, 0.9), np.expm1(eti(log_ratio, 0.9)), rtol=1e-12)
    assert hdi(lift, 0.9)[0] < np.expm1(hdi(log_ratio, 0.9))[0] - 0.01


def test_the_level_carries_its_kind_through_formatting_json_and_pickling():
    level = CredibleLevel(0.9, "hdi")
    assert f"{level:.0%}" == "90%" and level == 0.9 and json.dumps({"i": level}) == '{"i": 0.9}'
    assert kind_of(pickle.loads(pickle.dumps(level))) == IntervalKind.HDI
    assert kind_of(0.9) == IntervalKind.ETI and kind_of(level * 1.0) == IntervalKind.ETI     # arithmetic: a number
    draws = np.random.default_rng(6).lognormal(0, 1, 2001)
    assert credible_interval(draws, level) == hdi(draws, 0.9) != credible_interval(draws, 0.9) == eti(draws, 0.9)


def test_a_table_heading_names_the_interval_by_its_kind():
    assert interval_name(0.9) == "interval" and interval_name(CredibleLevel(0.9, "eti")) == "interval"
    assert interval_name(CredibleLevel(0.9, "hdi")) == "HDI"


def test_spec_interval_kind_reaches_every_row_and_is_checked():
    rng = np.random.default_rng(7)
    n = 3000
    arm = np.repeat(["control", "treatment"], n)
    spend = np.where(rng.random(2 * n) < 0.7, 0.0, rng.lognormal(3.0, 1.2, 2 * n)) * np.where(arm == "control", 1, 1.1)
    frame = pd.DataFrame({"arm": arm, "spend": spend})
    metrics = [{"name": "spend", "family": "mean", "column": "spend"}]
    rows = {kind: analyze(make_spec(metrics, interval_kind=kind), frame).effects["spend"].rows[1]
            for kind in ("eti", "hdi")}
    assert rows["eti"].rel_lift == rows["hdi"].rel_lift
    assert (rows["eti"].rel_low, rows["eti"].rel_high) != (rows["hdi"].rel_low, rows["hdi"].rel_high)
    # the equal-tailed interval against a per-user bootstrap of the ratio of means (percentile interval)
    boot = np.empty(8000)
    control, treated = spend[arm == "control"], spend[arm == "treatment"]
    for b in range(boot.size):
        boot[b] = rng.choice(treated, n).mean() / rng.choice(control, n).mean() - 1
    low, high = np.quantile(boot, [0.05, 0.95])
    width = high - low
    # 3% of the width is 4 bootstrap standard errors of an end; the HDI's lower end sits 4% of it to the left
    assert abs(rows["eti"].rel_low - low) < 0.03 * width and abs(rows["eti"].rel_high - high) < 0.03 * width
    assert rows["hdi"].rel_low < low - 0.03 * width
    with pytest.raises(SpecError, match="interval_kind"):
        make_spec(metrics, interval_kind="central")
