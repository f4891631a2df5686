"""Rows of a cluster-randomised and of a switchback experiment, and their specs, for the engines' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_ab.planning.clusters import simulate_clusters
from bayes_ab.planning.switchback import schedule

from conftest import make_spec

CLUSTER_METRICS = [{"name": "conversion", "family": "conversion", "column": "converted"},
                   {"name": "spend", "family": "mean", "column": "spend", "cap": 50},
                   {"name": "per_view", "family": "ratio", "numerator": "clicks", "denominator": "views"}]
SWITCHBACK_METRICS = [{"name": "latency", "family": "mean", "column": "latency_ms", "direction": "decrease"},
                      {"name": "failed", "family": "conversion", "column": "failed", "direction": "decrease"}]


def cluster_spec():
    return make_spec(CLUSTER_METRICS, segments=["region"], cluster_column="city", unit_column="user_id")


def cluster_rows(clusters_per_arm: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    converted, sizes = simulate_clusters(rng, clusters_per_arm, 40, 0.2, 0.05, 0.0, size_cv=0.4)
    city = np.repeat(np.arange(2 * clusters_per_arm), sizes)
    ones = np.concatenate([rng.permutation(np.r_[np.ones(c), np.zeros(s - c)]) for c, s in zip(converted, sizes)])
    views = rng.poisson(5, city.size) + 1
    return pd.DataFrame({"user_id": np.arange(city.size), "city": [f"c{c:02d}" for c in city],
                         "region": np.where(city % 3 == 0, "north", "south"),
                         "arm": np.where(city >= clusters_per_arm, "treatment", "control"),
                         "converted": ones.astype(np.int64), "spend": rng.gamma(1.0, 20.0, city.size).round(2),
                         "clicks": rng.poisson(0.4 * views), "views": views})


def switchback_spec(period: str | None = "1h"):
    design = {"unit": "region", "time": "ts" if period else "hour", "washout": 1}
    return make_spec(SWITCHBACK_METRICS, switchback=design | ({"period": period} if period else {}))


def switchback_rows(periods: int = 24, per_cell: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = schedule(["eu", "us", "ap", "sa"], periods, seed=seed)
    rows = plan.loc[plan.index.repeat(per_cell)].reset_index(drop=True)
    ts = pd.Timestamp("2026-11-02") + pd.to_timedelta(rows["period"] * 3600 + rng.integers(0, 3600, len(rows)),
                                                      unit="s")
    return pd.DataFrame({"region": rows["unit"], "ts": ts, "hour": rows["period"].astype(np.int64),
                         "arm": rows["arm"], "latency_ms": rng.gamma(4.0, 50.0, len(rows)).round(1),
                         "failed": (rng.random(len(rows)) < 0.05).astype(np.int64)})
