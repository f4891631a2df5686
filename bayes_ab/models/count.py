"""Hierarchical count model: negative binomial (or Poisson) with log link, on exact histograms.

``log mu[arm, s] = baseline[s] + effect[arm, s]``; the likelihood is the exact weighted sum
``sum_v users[arm, s, v] * log NB(v | mu[arm, s], alpha[arm, s])`` over the distinct count values
``v``, so heavy tails cost one term per distinct value, not one per user. ``count_model: auto``
uses Poisson only when the data show no overdispersion (pooled dispersion test, p >= 0.05).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import xarray as xr
from scipy import stats as st

from bayes_ab.models.hierarchy import coords_for, pooled_mean, segment_effects, with_control
from bayes_ab.spec import Metric

BASELINE_LOG_SD = 4.0
LOG_ALPHA_SD = 2.5
DISPERSION_P = 0.05


def dispersion_test(stats: xr.Dataset) -> tuple[float, float]:
    """Pooled variance/mean ratio and the p-value of the Poisson dispersion test.

    Under a Poisson model ``sum (x - mean)^2 / mean`` over each arm x segment is chi-square with
    ``n - 1`` degrees of freedom; the statistics and degrees of freedom are summed over cells.
    """
    n = stats["n"].values.astype(float)
    total, squares = stats["sum"].values, stats["sumsq"].values
    usable = (n > 1) & (total > 0)
    if not usable.any():
        return float("nan"), 1.0
    mean = total[usable] / n[usable]
    statistic = ((squares[usable] - total[usable] ** 2 / n[usable]) / mean).sum()
    df = (n[usable] - 1).sum()
    return float(statistic / df), float(st.chi2.sf(statistic, df))


def variant(stats: xr.Dataset, metric: Metric) -> str:
    """``negative_binomial`` or ``poisson``: the spec's choice, or the data's under ``auto``."""
    if metric.count_model != "auto":
        return metric.count_model
    return "negative_binomial" if dispersion_test(stats)[1] < DISPERSION_P else "poisson"


def top_user_influence(stats: xr.Dataset) -> tuple[str, int, float, float]:
    """The arm whose single largest user moves its mean the most, in standard errors.

    Returns ``(arm, value, shift, shift / standard_error)`` where ``shift`` is how much that one user
    raises the arm's mean and the standard error is the mean's, computed without that user. The
    negative binomial mean is the sample mean, so such a user moves the estimate by ``shift`` while the
    fitted dispersion, driven by everyone else, does not widen the interval for it.
    """
    worst = ("", 0, 0.0, 0.0)
    for arm in stats["arm"].values:
        hist = stats["users"].sel(arm=arm).sum("segment").values
        values = stats["value"].values
        present = np.flatnonzero(hist)
        n = hist.sum()
        if n < 3 or present.size == 0:
            continue
        top = int(values[present[-1]])
        rest = hist.astype(float).copy()
        rest[present[-1]] -= 1
        mean_rest = (rest * values).sum() / (n - 1)
        var_rest = (rest * (values - mean_rest) ** 2).sum() / (n - 2)
        shift = (top - mean_rest) / n
        se = np.sqrt(var_rest / (n - 1)) if var_rest > 0 else np.inf
        if shift / se > worst[3]:
            worst = (str(arm), top, float(shift), float(shift / se))
    return worst


INFLUENCE_WARNING = 1.0   # standard errors


def describe(stats: xr.Dataset, metric: Metric) -> str:
    """Which likelihood was used and why; a warning when one user drives an arm's mean."""
    ratio, p = dispersion_test(stats)
    chosen = variant(stats, metric).replace("_", " ")
    why = "set in the spec" if metric.count_model != "auto" else (
        "overdispersed" if chosen == "negative binomial" else "no overdispersion detected")
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    note = (f"{chosen} likelihood ({why}: variance/mean {ratio:.2f}, Poisson dispersion test {p_text}); "
            f"{stats.sizes['value']} distinct count values")
    if metric.cap is not None:
        note += f"; values capped at {metric.cap:g}"
    arm, top, shift, in_se = top_user_influence(stats)
    if in_se > INFLUENCE_WARNING:
        note += (f". WARNING: one user of arm {arm!r} with {top:,} alone raises that arm's mean by "
                 f"{shift:.3g} ({in_se:.1f} standard errors): the result hinges on the tail; check "
                 f"the data or set 'cap'")
    return note


def model_data(stats: xr.Dataset) -> dict[str, np.ndarray]:
    """Count values and users per arm x segment x value."""
    return {"values": stats["value"].values.astype("int64"), "users": stats["users"].values.astype("float64")}


def observed_mean(stats: xr.Dataset, metric: Metric) -> xr.DataArray:
    """Raw mean count per user, per arm, over all segments in ``stats``."""
    return pooled_mean(stats, "sum")


def build_model(stats: xr.Dataset, metric: Metric) -> pm.Model:
    """Build the PyMC model for one count metric's statistics."""
    coords = coords_for(stats)
    arms, segments = coords["arm"], coords["segment"]
    data = model_data(stats)
    with pm.Model(coords=coords) as model:
        # no dims on the histogram: new data may bring new count values without recompiling
        values = pm.Data("values", data["values"])
        users = pm.Data("users", data["users"])
        baseline = pm.Normal("baseline", mu=0.0, sigma=BASELINE_LOG_SD, dims="segment")
        effect = segment_effects(metric.prior, len(arms) - 1, len(segments))
        log_mu = with_control(baseline, effect)
        mu = pm.Deterministic("mean", pm.math.exp(log_mu), dims=("arm", "segment"))
        if variant(stats, metric) == "poisson":
            dist = pm.Poisson.dist(mu=mu[:, :, None])
        else:
            log_alpha = pm.Normal("log_alpha", mu=0.0, sigma=LOG_ALPHA_SD, dims=("arm", "segment"))
            dist = pm.NegativeBinomial.dist(mu=mu[:, :, None], alpha=pm.math.exp(log_alpha)[:, :, None])
        pm.Potential("obs", (users * pm.logp(dist, values[None, None, :])).sum())
    return model
