"""Hierarchical model of a continuous per-user mean, exact normal likelihood on (n, sum, sum of squares).

``y ~ Normal(mu[arm, s] + theta * (x - x_bar), sigma[arm, s])`` with ``mu[arm, s] = baseline[s] +
effect[arm, s]`` (identity link). Without a covariate ``theta = 0``. With a pre-period covariate
x (CUPED) the regression adjustment is part of the model: ``theta`` is estimated jointly from the
within-cell sums of x, x^2 and x*y, so its uncertainty is carried into the effect.

The likelihood only needs, per cell, n, the mean of y, and the within-cell centred sums
``Syy``, ``Sxx``, ``Sxy`` (numerically stable). Priors are on the data's scale: ``scale`` is the
pooled within-cell standard deviation of y, and the treatment-effect prior is in units of it.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from bayes_ab.models.hierarchy import coords_for, pooled_mean, segment_effects, with_control
from bayes_ab.spec import Metric

BASELINE_SD = 10.0      # in units of the pooled sd, around the pooled mean
LOG_SIGMA_SD = 1.0
THETA_SD = 5.0          # standardised slope


def centred_sums(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Per cell: n, mean of y, within-cell centred Syy and, with a covariate centred on its overall
    mean, the cell mean of x and the within-cell centred Sxx and Sxy (zeros without one)."""
    n = stats["n"].values.astype(float)
    safe = np.where(n > 0, n, 1.0)
    sy, syy = stats["sum"].values, stats["sumsq"].values
    out = {"n": n, "ybar": sy / safe, "syy": np.maximum(syy - sy ** 2 / safe, 0.0)}
    if "sum_x" in stats:
        x_bar = stats["sum_x"].values.sum() / n.sum()
        sc = stats["sum_x"].values - n * x_bar
        scc = stats["sum_x2"].values - 2 * x_bar * stats["sum_x"].values + n * x_bar ** 2
        scy = stats["sum_xy"].values - x_bar * sy
        out.update(cbar=sc / safe, scc=np.maximum(scc - sc ** 2 / safe, 0.0), scy=scy - sc * sy / safe)
    else:
        zeros = np.zeros_like(n)
        out.update(cbar=zeros, scc=zeros, scy=zeros)
    return out


def covariate_fit(stats: xr.Dataset) -> tuple[float, float]:
    """Pooled within-cell correlation of y and x, and the implied variance reduction ``rho^2``."""
    c = centred_sums(stats)
    if "sum_x" not in stats or c["scc"].sum() <= 0 or c["syy"].sum() <= 0:
        return 0.0, 0.0
    rho = c["scy"].sum() / np.sqrt(c["scc"].sum() * c["syy"].sum())
    return float(rho), float(rho ** 2)


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """``cuped`` when the statistics carry a covariate, else ``plain``."""
    return "cuped" if "sum_x" in stats else "plain"


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Likelihood and, with CUPED, the variance reduction."""
    capped = "" if metric.cap is None else f"; values capped at {metric.cap:g}"
    if variant(stats, metric) == "plain":
        return "normal likelihood on per-cell n, mean and variance (no covariate)" + capped
    rho, reduction = covariate_fit(stats)
    return (f"normal likelihood with CUPED on covariate {metric.covariate!r}: within-cell correlation "
            f"{rho:.2f}, variance reduced by {reduction:.0%} (interval width x{np.sqrt(1 - reduction):.2f})"
            + capped)


def model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-cell centred sums plus the pooled location and scale that set the priors."""
    c = centred_sums(stats)
    n = c["n"]
    dof = max(n.sum() - np.count_nonzero(n), 1.0)
    scale = np.sqrt(c["syy"].sum() / dof)
    x_scale = np.sqrt(c["scc"].sum() / dof) if c["scc"].sum() > 0 else 1.0
    return {**c, "center": np.array((c["ybar"] * n).sum() / n.sum()),
            "scale": np.array(scale if scale > 0 else 1.0), "x_scale": np.array(x_scale)}


def observed_mean(stats: xr.Dataset, metric: Metric) -> xr.DataArray:
    """Raw mean per user, per arm, over all segments in ``stats`` (no covariate adjustment)."""
    return pooled_mean(stats, "sum")


def build_model(stats: xr.Dataset, metric: Metric) -> pm.Model:
    """Build the PyMC model for one mean metric's statistics."""
    coords = coords_for(stats)
    arms, segments = coords["arm"], coords["segment"]
    data = model_data(stats)
    cells = ("arm", "segment")
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, values, dims=cells if np.ndim(values) == 2 else None)
             for name, values in data.items()}
        baseline_z = pm.Normal("baseline_z", mu=0.0, sigma=BASELINE_SD, dims="segment")
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        mu = pm.Deterministic("mean", d["center"] + d["scale"] * with_control(baseline_z, effect), dims=cells)
        log_sigma = pm.Normal("log_sigma_z", mu=0.0, sigma=LOG_SIGMA_SD, dims=cells)
        sigma = d["scale"] * pt.exp(log_sigma)
        if variant(stats, metric) == "cuped":
            theta = pm.Normal("theta_z", mu=0.0, sigma=THETA_SD) * d["scale"] / d["x_scale"]
        else:
            theta = 0.0
        squares = (d["syy"] - 2 * theta * d["scy"] + theta ** 2 * d["scc"]
                   + d["n"] * (d["ybar"] - mu - theta * d["cbar"]) ** 2)
        pm.Potential("obs", (-d["n"] * (pt.log(sigma) + 0.5 * np.log(2 * np.pi))
                             - squares / (2 * sigma ** 2)).sum())
    return model
