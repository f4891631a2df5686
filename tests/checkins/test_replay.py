"""Replaying a real ASOS experiment: one look per checkpoint, in order, stable when run twice."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from bayes_ab.aggregation.moments import moments_stats
from bayes_ab.errors import DataError

from conftest import FAST, example_module


def example():
    return example_module("asos_replay/replay.py")


def test_moments_give_the_exact_sufficient_statistics():
    rng = np.random.default_rng(0)
    values = [rng.exponential(3.0, 500), rng.exponential(3.3, 700)]
    stats = moments_stats(["c", "t"], [len(v) for v in values], [v.mean() for v in values],
                          [v.var(ddof=1) for v in values], "m")
    assert np.allclose(stats["sum"].values[:, 0], [v.sum() for v in values])
    assert np.allclose(stats["sumsq"].values[:, 0], [np.square(v).sum() for v in values])
    with pytest.raises(DataError, match="variance of arm 't' is missing"):
        moments_stats(["c", "t"], [10, 10], [1.0, 1.0], [1.0, float("nan")], "m")


@pytest.mark.slow
def test_replay_has_one_look_per_checkpoint_in_order_and_is_stable(tmp_path):
    replay = example()
    frame = pd.read_csv(replay.DATA)
    expected = sorted(frame.query("experiment_id == '591c2c' and metric_id == 1")["time_since_start"].unique())
    first = replay.run("591c2c", 1, tmp_path / "one", sampler=FAST)
    second = replay.run("591c2c", 1, tmp_path / "two", sampler=FAST)
    assert [c.record.payload["days"] for c in first.looks] == expected
    assert [c.record.look for c in first.looks] == list(range(1, len(expected) + 1))
    assert [c.record.as_of for c in first.looks] == sorted(c.record.as_of for c in first.looks)
    for a, b in zip(first.looks, second.looks):
        assert a.record.fingerprint == b.record.fingerprint
        assert a.recommendation.action == b.recommendation.action
        row_a = a.analysis.effects["metric"].overall("variant_1")
        row_b = b.analysis.effects["metric"].overall("variant_1")
        assert row_a.p_beat_control == pytest.approx(row_b.p_beat_control, abs=1e-12)
    # the last look agrees with the flat-prior normal answer computed from the published summary
    last = frame.query("experiment_id == '591c2c' and metric_id == 1").sort_values("time_since_start").iloc[-1]
    z = (last.mean_t - last.mean_c) / np.sqrt(last.variance_t / last.count_t + last.variance_c / last.count_c)
    p_exact = st.norm.cdf(z)
    p = first.looks[-1].analysis.effects["metric"].overall("variant_1").p_beat_control
    assert abs(p - p_exact) < 0.03
