"""Hierarchical discrete-time survival model of retention, on life tables with censoring.

``lost[arm, s, d] ~ Binomial(at_risk[arm, s, d], h[arm, s, d])`` with
``logit h[arm, s, d] = day[d] + segment[s] + effect[arm, s]`` (proportional odds of churning;
segment offsets sum to zero). Users exposed too recently to be observed on day d are not in ``at_risk`` on
that day, so a mid-test analysis is unbiased. Retention to day D is ``prod_{d <= D} (1 - h)``;
``mean`` is retention at the metric's ``horizon`` and ``survival`` the whole curve.
A negative ``effect`` lowers the churn hazard, i.e. improves retention.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from bayes_ab.models.hierarchy import coords_for, segment_effects
from bayes_ab.spec import Metric

DAY_MU, DAY_SD = -2.0, 2.5
SEGMENT_SD = 1.5


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """Retention has one likelihood; the horizon is part of the structure."""
    return f"horizon {metric.horizon}"


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Curve length and how many users are still censored before the horizon."""
    users = float(stats["n"].sum())
    observed = float(stats["at_risk"].sel(day=metric.horizon).sum() + stats["lost"].sel(
        day=slice(1, metric.horizon)).sum())
    censored = max(users - observed, 0.0) / users if users else 0.0
    return (f"discrete-time survival to day {stats.sizes['day']}; headline D{metric.horizon} retention; "
            f"{censored:.0%} of users censored (not yet observable) before day {metric.horizon}")


def model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Users at risk and lost per arm x segment x day."""
    return {"at_risk": stats["at_risk"].values.astype("int64"), "lost": stats["lost"].values.astype("int64")}


def kaplan_meier(at_risk: np.ndarray, lost: np.ndarray) -> np.ndarray:
    """Kaplan-Meier retention curve from a life table (last axis is the day)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, lost / np.where(at_risk > 0, at_risk, 1), 0.0)
    return np.cumprod(1.0 - hazard, axis=-1)


def observed_mean(stats: xr.Dataset, metric: Metric) -> xr.DataArray:
    """Kaplan-Meier retention at the horizon per arm, pooling the segments in ``stats``."""
    day = metric.horizon
    curve = kaplan_meier(stats["at_risk"].sum("segment").values, stats["lost"].sum("segment").values)
    return xr.DataArray(curve[:, day - 1], dims="arm", coords={"arm": stats["arm"].values})


def build_model(stats: xr.Dataset, metric: Metric) -> pm.Model:
    """Build the PyMC model for one retention metric's life table."""
    coords = {**coords_for(stats), "day": [int(d) for d in stats["day"].values]}
    arms, segments = coords["arm"], coords["segment"]
    dims = ("arm", "segment", "day")
    data = model_data(stats)
    with pm.Model(coords=coords) as model:
        at_risk = pm.Data("at_risk", data["at_risk"], dims=dims)
        lost = pm.Data("lost", data["lost"], dims=dims)
        day = pm.Normal("day_logit", mu=DAY_MU, sigma=DAY_SD, dims="day")
        # zero-sum segment offsets: identified against the day baselines without a reference segment
        segment = (pm.ZeroSumNormal("segment_logit", sigma=SEGMENT_SD, dims="segment")
                   if len(segments) > 1 else pt.zeros(1))
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        arm_segment = pt.concatenate([pt.zeros((1, len(segments))), effect], axis=0) + segment[None, :]
        logit_h = day[None, None, :] + arm_segment[:, :, None]
        pm.Binomial("obs", n=at_risk, logit_p=logit_h, observed=lost, dims=dims)
        survival = pm.Deterministic("survival", pt.cumprod(1 - pm.math.sigmoid(logit_h), axis=2), dims=dims)
        pm.Deterministic("mean", survival[:, :, metric.horizon - 1], dims=("arm", "segment"))
    return model
