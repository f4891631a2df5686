"""The shared hierarchical piece of every family: treatment effects per segment, partially pooled.

For each treatment arm ``t`` and segment ``s`` (on the family's link scale)::

    effect[t, s] = effect_mu[t] + effect_sd[t] * effect_z[t, s]      (non-centred)
    effect_mu[t] ~ Normal(0, prior.effect_sd)        (or a learned prior: Normal / StudentT(df), located)
    effect_sd[t] ~ HalfNormal(prior.heterogeneity_sd)
    effect_z[t, s] ~ Normal(0, 1)

With a single segment there is nothing to pool and the hierarchy collapses to
``effect[t, 0] = effect_mu[t]`` (the unidentified scale would only slow the sampler down).

The two prior scales are *data* of the model (``pm.Data``), not constants: a compiled model is then one per
family and shape, and a metric with another prior re-uses it (:mod:`bayes_ab.models.compiled`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from bayes_ab.metric import EffectPrior

if TYPE_CHECKING:     # imported by the functions that build a model: loading a cached model never needs PyMC
    import pytensor.tensor as pt

PRIOR_EFFECT_SD = "prior_effect_sd"
PRIOR_HETEROGENEITY_SD = "prior_heterogeneity_sd"
PRIOR_EFFECT_MEAN = "prior_effect_mean"
PRIOR_EFFECT_DF = "prior_effect_df"


def prior_data(prior: EffectPrior, per_relative: float = 1.0) -> dict[str, np.ndarray]:
    """The effect prior as the model data every family's model declares (:func:`prior_scales`).

    A learned prior (a distribution of relative effects) adds its location and, for a Student-t, its degrees
    of freedom; its location and scale are mapped to the link scale by ``per_relative``
    (:meth:`~bayes_ab.families.base.Family.link_per_relative`, which depends on the data, hence data here).
    """
    learned = prior.learned
    data = {PRIOR_EFFECT_SD: np.asarray(float(prior.effect_sd if learned is None else abs(per_relative) * learned.scale)),
            PRIOR_HETEROGENEITY_SD: np.asarray(float(prior.heterogeneity_sd))}
    if learned is not None:
        data[PRIOR_EFFECT_MEAN] = np.asarray(float(per_relative * learned.location))
        if learned.df is not None:
            data[PRIOR_EFFECT_DF] = np.asarray(float(learned.df))
    return data


def mapped_prior_data(family, stats: xr.Dataset, metric) -> dict[str, np.ndarray]:
    """:func:`prior_data` of ``metric`` on these statistics: a learned prior mapped to ``family``'s link scale
    (the one place the analysis and the simulations both take the map from)."""
    learned = metric.prior.learned
    return prior_data(metric.prior, family.link_per_relative(stats, metric) if learned is not None else 1.0)


def prior_scales(prior: EffectPrior) -> tuple["pt.TensorVariable", "pt.TensorVariable"]:
    """Declare the prior's two scales as data of the current model: (effect sd, heterogeneity sd)."""
    import pymc as pm

    data = prior_data(prior)
    return pm.Data(PRIOR_EFFECT_SD, data[PRIOR_EFFECT_SD]), pm.Data(PRIOR_HETEROGENEITY_SD,
                                                                    data[PRIOR_HETEROGENEITY_SD])


def segment_effects(prior: EffectPrior, n_treatments: int, n_segments: int) -> "pt.TensorVariable":
    """Add the pooled treatment effects to the current model; returns ``effect`` (treatment x segment)."""
    import pymc as pm

    effect_sd, heterogeneity_sd = prior_scales(prior)
    data = prior_data(prior)
    if prior.learned is None:
        mu = pm.Normal("effect_mu", mu=0.0, sigma=effect_sd, dims="treatment")
    elif prior.learned.df is None:
        mu = pm.Normal("effect_mu", mu=pm.Data(PRIOR_EFFECT_MEAN, data[PRIOR_EFFECT_MEAN]), sigma=effect_sd,
                       dims="treatment")
    else:      # a fat-tailed learned prior: most effects tiny, a few large
        mu = pm.StudentT("effect_mu", nu=pm.Data(PRIOR_EFFECT_DF, data[PRIOR_EFFECT_DF]),
                         mu=pm.Data(PRIOR_EFFECT_MEAN, data[PRIOR_EFFECT_MEAN]), sigma=effect_sd, dims="treatment")
    if n_segments == 1:
        effect = mu[:, None]
    else:
        sd = pm.HalfNormal("effect_sd", sigma=heterogeneity_sd, dims="treatment")
        z = pm.Normal("effect_z", mu=0.0, sigma=1.0, dims=("treatment", "segment"))
        effect = mu[:, None] + sd[:, None] * z
    return pm.Deterministic("effect", effect, dims=("treatment", "segment"))


def with_control(baseline: "pt.TensorVariable", effect: "pt.TensorVariable") -> "pt.TensorVariable":
    """Linear predictor per arm x segment: control is the baseline, each treatment adds its effect."""
    import pytensor.tensor as pt

    return pt.concatenate([baseline[None, :], baseline[None, :] + effect], axis=0)


def coords_for(stats: xr.Dataset) -> dict[str, list[str]]:
    """Model coordinates of ``stats``; ``treatment`` is every arm but the control (``arm[0]``)."""
    arms = [str(a) for a in stats["arm"].values]
    return {"arm": arms, "segment": [str(s) for s in stats["segment"].values], "treatment": arms[1:]}


def pooled_mean(stats: xr.Dataset, total: str) -> xr.DataArray:
    """Raw per-arm mean ``sum(total) / sum(n)`` over the segments in ``stats`` (no model)."""
    users = stats["n"].sum("segment")
    return stats[total].sum("segment") / users.where(users > 0)
