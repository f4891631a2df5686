"""Per-user rows holding every metric family, for comparing engines and incremental aggregation,
and the comparison itself.

Mean and covariate values are multiples of 1/4 and small, so every partial sum is exact in
floating point: engines and summation orders must then agree to the last bit.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import xarray as xr

from conftest import make_spec

FAMILY_METRICS = [
    {"name": "converted", "family": "conversion", "column": "converted", "covariates": ["pre_revenue", "pre_trades"]},
    {"name": "trades", "family": "count", "column": "trades", "cap": 6, "covariates": ["pre_trades"]},
    {"name": "revenue", "family": "mean", "column": "revenue", "covariate": "pre_revenue"},
    {"name": "retained", "family": "retention", "column": "churn_day", "observed_column": "days_observed",
     "max_day": 7, "covariates": ["pre_trades"]},
    {"name": "latency_p90", "family": "quantile", "column": "latency", "quantile": 0.9, "direction": "decrease"},
]
FIRST_DAY = date(2026, 3, 1)


def family_rows(n: int = 4000, seed: int = 0, days: int = 5, first_id: int = 0) -> pd.DataFrame:
    """``n`` users exposed over ``days`` days, with NULL segment values and an integer segment."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["control", "treatment"], n)
    exposed = rng.integers(0, days, n)
    churned = rng.random(n) < 0.4
    observed = rng.integers(3, 10, n)
    churn_day = np.minimum(rng.integers(1, 10, n), observed).astype(float)
    return pd.DataFrame({
        "user_id": np.arange(first_id, first_id + n),
        "arm": arm,
        "country": pd.Series(rng.choice(["US", "DE", "BR"], n), dtype=object).where(rng.random(n) > 0.05, None),
        "tier": rng.integers(1, 3, n),
        "converted": (rng.random(n) < np.where(arm == "control", 0.10, 0.12)).astype(int),
        "trades": rng.poisson(1.5, n),
        "revenue": rng.integers(0, 200, n) / 4,
        "pre_revenue": rng.integers(0, 200, n) / 4,
        "churn_day": np.where(churned, churn_day, np.nan),
        "days_observed": observed,
        "latency": np.round(rng.lognormal(5.0, 0.7, n), 3),
        "exposure_day": [FIRST_DAY + timedelta(days=int(d)) for d in exposed],
        "pre_trades": rng.poisson(1.5, n),
    })


def family_spec(**extra):
    """Spec over :func:`family_rows`: every family but ratio, two segment columns, unit ids, exposure day."""
    return make_spec(FAMILY_METRICS, segments=("country", "tier"), unit_column="user_id",
                     day_column="exposure_day", **extra)


def write_days(frame: pd.DataFrame, folder) -> list[str]:
    """One Parquet file per exposure day under ``folder`` (``YYYY-MM-DD.parquet``); the day labels."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for day, rows in frame.groupby("exposure_day"):
        rows.to_parquet(folder / f"{day.isoformat()}.parquet", index=False)
        labels.append(day.isoformat())
    return labels


def assert_same(first: dict[str, xr.Dataset], second: dict[str, xr.Dataset]) -> None:
    """The two sets of statistics are identical: same metrics, values, coordinates and attributes."""
    assert first.keys() == second.keys()
    for name in first:
        xr.testing.assert_identical(first[name], second[name])
