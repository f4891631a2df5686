"""A switchback's rows as cells: the cell totals against pandas, the period from a timestamp or a period number,
and the refusals (a cell on both arms, a time column of the wrong kind, a spec the design cannot carry)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ab.aggregation import aggregate
from bayes_ab.errors import DataError, SpecError
from bayes_ab.planning.switchback import schedule

from conftest import make_spec

METRICS = [{"name": "latency", "family": "mean", "column": "latency_ms", "direction": "decrease"},
           {"name": "failed", "family": "conversion", "column": "failed", "role": "guardrail",
            "direction": "decrease"}]
START = pd.Timestamp("2026-11-02")


def spec(period="1h", washout=1, metrics=METRICS, **extra):
    design = {"unit": "region", "time": "ts", "washout": washout} | ({"period": period} if period else {})
    return make_spec(metrics, switchback=design, **extra)


def requests(periods=30, per_cell=20, seed=0):
    rng = np.random.default_rng(seed)
    plan = schedule(["eu", "us", "ap", "sa"], periods, seed=seed)
    rows = plan.loc[plan.index.repeat(per_cell)].reset_index(drop=True)
    ts = START + pd.to_timedelta(rows["period"] * 3600 + rng.integers(0, 3600, len(rows)), unit="s")
    return pd.DataFrame({"region": rows["unit"], "ts": ts, "hour": rows["period"], "arm": rows["arm"],
                         "latency_ms": rng.gamma(4.0, 50.0, len(rows)).round(1),
                         "failed": (rng.random(len(rows)) < 0.05).astype(int)})


def test_cells_equal_pandas_and_count_rows():
    frame = requests()
    stats = aggregate(spec(), frame)
    for name, column in (("latency", "latency_ms"), ("failed", "failed")):
        got = stats[name]
        expected = frame.groupby(["region", "hour"]).agg(total=(column, "sum"), rows=(column, "size"))
        units = list(got["unit"].values)
        found = pd.DataFrame({"region": [units[u] for u in got["cell_unit"].values],
                              "hour": got["cell_period"].values - got["cell_period"].values.min(),
                              "total": got["cell_total"].values, "rows": got["cell_weight"].values})
        found = found.set_index(["region", "hour"]).sort_index()
        assert np.allclose(found["total"], expected["total"].sort_index()), name
        assert np.allclose(found["rows"], expected["rows"].sort_index())
        assert got.attrs["users"] == len(frame) and int(got["n"].sum()) == 4 * 30


def test_a_period_number_column_serves_as_the_time():
    frame = requests()
    by_number = aggregate(make_spec(METRICS, switchback={"unit": "region", "time": "hour"}), frame)
    by_time = aggregate(spec(washout=0), frame)
    assert np.allclose(np.sort(by_number["latency"]["cell_total"].values), np.sort(by_time["latency"]["cell_total"].values))


@pytest.mark.parametrize("change, kwargs, message", [
    (lambda f: f.assign(arm=np.where(f.index == 0, "treatment" if f.arm[0] == "control" else "control", f.arm)), {},
     "1 switchback cell(s) hold rows of both arms, e.g. unit 'eu' in period"),
    (lambda f: f.assign(ts=f["latency_ms"]), {}, "column 'ts' (switchback time) holds float values"),
    (lambda f: f, {"period": None}, "column 'ts' (switchback time) holds timestamp values; give switchback.period"),
    (lambda f: f.assign(region=np.where(f.index == 4, None, f.region)), {},
     "column 'region' (switchback) has missing values in 1 row(s)"),
    (lambda f: f.assign(ts=f["ts"].where(f.index % 50 != 1)), {},
     "column 'ts' (switchback) has missing values in 48 row(s)"),
    (lambda f: f.assign(failed=np.where(f.index == 2, 3, f.failed)), {}, "column 'failed' (metric 'failed') is not binary"),
])
def test_broken_switchbacks_are_refused(change, kwargs, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        aggregate(spec(**kwargs), change(requests()))


@pytest.mark.parametrize("kwargs, message", [
    ({"segments": ["region2"]}, "segments: are not available with switchback"),
    ({"arms": ("control", "a", "b")}, "arms: a switchback compares two arms"),
    ({"cluster_column": "city"}, "switchback: cannot be combined with cluster_column"),
    ({"period": "90s"}, "switchback.period: must be a length such as 30m, 1h or 1d"),
    ({"metrics": [{"name": "p95", "family": "quantile", "column": "latency_ms", "quantile": 0.95}]},
     "is a quantile metric, whose values do not add up"),
])
def test_spec_refuses_what_a_switchback_cannot_carry(kwargs, message):
    with pytest.raises(SpecError, match=message):
        spec(**kwargs)


def test_schedule_is_balanced_in_every_period_and_seeded():
    plan = schedule(list("abcdefgh"), 48, seed=3)
    per_period = (plan["arm"] == "treatment").groupby(plan["period"]).sum()
    assert (per_period == 4).all()
    assert plan.equals(schedule(list("abcdefgh"), 48, seed=3)) and not plan.equals(schedule(list("abcdefgh"), 48, seed=4))
    treated = (plan.pivot(index="period", columns="unit", values="arm") == "treatment").to_numpy()
    share = (treated[1:] != treated[:-1]).mean()
    assert treated.shape == (48, 8) and 0.4 < share < 0.6     # a unit switches about every other period
