"""Hierarchical conversion model: binomial likelihood on (users, converted) per arm x segment.

``logit p[arm, s] = baseline[s] + effect[arm, s]`` with ``effect[control] = 0``. Segment baselines
get independent weakly-informative priors (``Normal(0, 2.5)`` on the logit scale); they are well
identified at any realistic traffic, and pooling them gave the sampler funnels without changing
the answer. Treatment effects are partially pooled across segments (:mod:`bayes_ab.models.hierarchy`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import xarray as xr

from bayes_ab.models.hierarchy import coords_for, pooled_mean, segment_effects, with_control
from bayes_ab.spec import Metric

BASELINE_LOGIT_SD = 2.5
DATA_NAMES = ("n", "successes")


def model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """The arrays the model reads through ``pm.Data``, by name."""
    return {name: stats[name].values.astype("int64") for name in DATA_NAMES}


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """Conversion has a single likelihood."""
    return "binomial"


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """The likelihood in one line."""
    return "binomial likelihood, logit link"


def observed_mean(stats: xr.Dataset, metric: Metric) -> xr.DataArray:
    """Raw conversion rate per arm over all segments in ``stats`` (no model, no prior)."""
    return pooled_mean(stats, "successes")


def build_model(stats: xr.Dataset, metric: Metric) -> pm.Model:
    """Build the PyMC model for one conversion metric's statistics."""
    coords = coords_for(stats)
    arms, segments = coords["arm"], coords["segment"]
    data = model_data(stats)
    with pm.Model(coords=coords) as model:
        n = pm.Data("n", data["n"], dims=("arm", "segment"))
        successes = pm.Data("successes", data["successes"], dims=("arm", "segment"))
        baseline = pm.Normal("baseline", mu=0.0, sigma=BASELINE_LOGIT_SD, dims="segment")
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        logit_p = with_control(baseline, effect)
        pm.Binomial("obs", n=n, logit_p=logit_p, observed=successes, dims=("arm", "segment"))
        pm.Deterministic("mean", pm.math.sigmoid(logit_p), dims=("arm", "segment"))
    return model
