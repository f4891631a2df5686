"""What every family shares (bayes_ab.families.base), by its definitions: planning variances, the control's
spread, baselines and their checks, segment weights, warnings and the display of absolute differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayes_ab.errors import SpecError
from bayes_ab.families import registry
from bayes_ab.families.base import empty_cell_warnings, finite, mean_baseline, moments_spread
from bayes_ab.families.conversion import conversion_stats
from bayes_ab.families.mean import mean_stats
from bayes_ab.metric import Baseline, Metric

CONVERSION, MEAN = registry()["conversion"], registry()["mean"]
RATE = Metric(name="m", family="conversion", column="m")
AMOUNT = Metric(name="m", family="mean", column="m")


def test_a_rates_planning_variances_are_the_binomial_ones():
    assert CONVERSION.unit_variance(RATE, Baseline(0.2), 0.3) == pytest.approx(0.21)
    null, alternative = CONVERSION.fixed_horizon_sds(RATE, Baseline(0.2), 0.2, 0.25, 2.0)
    pooled = (0.2 + 2.0 * 0.25) / 3.0                  # the rate under no effect, users weighted by the split
    assert null == pytest.approx(math.sqrt(pooled * (1 - pooled) * (1 + 1 / 2.0)))
    assert alternative == pytest.approx(math.sqrt(0.2 * 0.8 + 0.25 * 0.75 / 2.0))
    with pytest.raises(SpecError, match=r"a \+400.0% change of the rate 0.2 leaves \(0, 1\)"):
        CONVERSION.fixed_horizon_sds(RATE, Baseline(0.2), 0.2, 1.0, 1.0)


def test_a_means_planning_variance_is_its_sd_squared_unpooled():
    assert MEAN.unit_variance(AMOUNT, Baseline(10.0, 3.0), 12.0) == 9.0
    null, alternative = MEAN.fixed_horizon_sds(AMOUNT, Baseline(10.0, 3.0), 10.0, 11.0, 0.5)
    assert null == alternative == pytest.approx(math.sqrt(9.0 + 9.0 / 0.5))


def test_the_controls_spread_is_the_sample_variance_over_its_segments():
    rng = np.random.default_rng(1)
    values = {(a, s): rng.normal(5 + a, 2, 50 + 10 * s) for a in range(2) for s in range(3)}
    n = np.array([[values[a, s].size for s in range(3)] for a in range(2)])
    sums = {"sum": np.array([[values[a, s].sum() for s in range(3)] for a in range(2)]),
            "sumsq": np.array([[(values[a, s] ** 2).sum() for s in range(3)] for a in range(2)])}
    stats = mean_stats(["control", "t"], ["s0", "s1", "s2"], n, sums, "m")
    control = np.concatenate([values[0, s] for s in range(3)])
    mean, variance = moments_spread(stats)
    assert mean == pytest.approx(control.mean()) and variance == pytest.approx(control.var(ddof=1))
    one = mean_stats(["control", "t"], ["s"], np.array([[1], [1]]), {"sum": np.array([[4.0], [1.0]]),
                                                                         "sumsq": np.array([[16.0], [1.0]])}, "m")
    assert moments_spread(one) == (4.0, 0.0)           # one user: no spread, and no division by zero
    assert MEAN.spread(AMOUNT, stats) == pytest.approx(control.std(ddof=1))


def test_baselines_are_checked_and_written_back_in_their_spec_form():
    assert CONVERSION.parse_baseline(0.2, "w") == Baseline(0.2)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(SpecError, match=f"w: the baseline rate must be in \\(0, 1\\), got {bad}"):
            CONVERSION.parse_baseline(bad, "w")
    assert CONVERSION.baseline_raw(Baseline(0.2)) == 0.2
    assert MEAN.baseline_raw(Baseline(10.0, 3.0)) == {"mean": 10.0, "sd": 3.0}
    assert MEAN.baseline_raw(Baseline(10.0)) == {"mean": 10.0}
    assert mean_baseline({"mean": 3, "sd": 1}, "w", "sd") == (3.0, 1)
    with pytest.raises(SpecError, match="w: must be a mapping with 'mean' and 'sd'"):
        mean_baseline({"sd": 1}, "w", "sd")
    with pytest.raises(SpecError, match="w: unknown field 'shape' \\(expected mean, sd\\)"):
        mean_baseline({"mean": 1, "shape": 2}, "w", "sd")
    assert finite(3, "x", "w") == 3.0 and isinstance(finite(3, "x", "w"), float)
    for bad in (True, "3", float("inf"), float("nan")):
        with pytest.raises(SpecError, match="w: x must be a finite number"):
            finite(bad, "x", "w")


def test_a_rate_change_must_stay_below_one():
    CONVERSION.check_change(RATE, Baseline(0.5), 0.99, "w")
    with pytest.raises(SpecError, match="w: a 100% change of the rate 0.5 exceeds 1"):
        CONVERSION.check_change(RATE, Baseline(0.5), 1.0, "w")
    MEAN.check_change(AMOUNT, Baseline(0.5), 5.0, "w")            # a mean has no ceiling


def test_segments_weigh_by_their_users_in_all_arms_and_empty_cells_are_named():
    stats = conversion_stats(["control", "t"], ["a", "b", "c", "d", "e", "f"],
                             np.array([[10, 0, 30, 0, 0, 0], [30, 5, 0, 0, 0, 8]]),
                             np.array([[1, 0, 3, 0, 0, 0], [3, 1, 0, 0, 0, 1]]), "m")
    np.testing.assert_allclose(CONVERSION.segment_weights(stats), [40 / 83, 5 / 83, 30 / 83, 0, 0, 8 / 83])
    warnings = empty_cell_warnings(stats)
    assert warnings == ("arm 'control' has no users in segment(s) 'b', 'd', 'e' and 1 more: its effect there is "
                        "the prior's and the other segments', not measured",
                        "arm 't' has no users in segment(s) 'c', 'd', 'e': its effect there is the prior's and the "
                        "other segments', not measured")


@pytest.mark.parametrize("value, signed, shown", [(0.0042, True, "+0.42 percentage points"),
                                                  (0.0042, False, "0.42 percentage points"),
                                                  (0.00042, True, "+0.042 percentage points"),
                                                  (0.0, True, "+0.00 percentage points"),
                                                  (-0.0000123, True, "-0.0012 percentage points")])
def test_absolute_differences_keep_two_significant_digits_in_the_familys_unit(value, signed, shown):
    assert CONVERSION.format_absolute(value, signed) == shown
    assert MEAN.format_absolute(1.234) == "1.23 per user" and MEAN.format_absolute(0.01234) == "0.012 per user"


def test_only_families_that_draw_from_means_say_so():
    assert {name for name, family in registry().items() if family.draws_from_means} == {"conversion", "count"}
    rng = np.random.default_rng(0)
    assert MEAN.draw_from_means(rng, np.ones(3)) is None
    draws = CONVERSION.draw_from_means(rng, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(draws, [0.0, 1.0, 1.0])          # rates beyond 1 convert for certain


def test_a_rates_mean_is_bounded_by_one_and_a_fall_to_zero_leaves_the_rates():
    assert CONVERSION.max_mean == 1.0 and MEAN.max_mean is None
    with pytest.raises(SpecError, match="leaves \\(0, 1\\)"):
        CONVERSION.fixed_horizon_sds(RATE, Baseline(0.2), 0.2, 0.0, 1.0)


@pytest.mark.parametrize("values", [[1.0, 3.0], [1.0, 2.0, 6.0]])
def test_the_spread_of_two_or_three_users_is_their_sample_variance(values):
    x = np.array(values)
    stats = mean_stats(["control", "t"], ["s"], np.array([[x.size], [1]]),
                       {"sum": np.array([[x.sum()], [1.0]]), "sumsq": np.array([[(x ** 2).sum()], [1.0]])}, "m")
    assert moments_spread(stats) == pytest.approx((x.mean(), x.var(ddof=1)))
