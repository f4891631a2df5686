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

Families that sample their cells' exact likelihood also pool the segments' control levels when there are many
segments (:func:`segment_baselines`): a segment of 30 users says little about its own rate, and an unpooled
baseline per segment gives each one its prior's pull -- over 1,000 such segments the control's overall rate sat
0.5 standard errors above its observed value, and 2,000 weakly identified parameters failed R-hat in 17 fits of 20.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from bayes_ab.learned_prior import scale_mixture
from bayes_ab.metric import EffectPrior

if TYPE_CHECKING:     # imported by the functions that build a model: loading a cached model never needs PyMC
    import pytensor.tensor as pt

PRIOR_EFFECT_SD = "prior_effect_sd"
PRIOR_HETEROGENEITY_SD = "prior_heterogeneity_sd"
PRIOR_EFFECT_MEAN = "prior_effect_mean"
PRIOR_EFFECT_DF = "prior_effect_df"
PRIOR_MIX_NODES = "prior_mix_nodes"
PRIOR_MIX_LOG_WEIGHTS = "prior_mix_log_weights"
"""A Student-t prior's scale mixture on a grid (:func:`~bayes_ab.learned_prior.scale_mixture`): the
models that integrate ``effect_mu`` out given its prior variance sum over these nodes instead of sampling the
mixing variable, whose posterior has two modes when prior and data disagree."""


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
            mixture = scale_mixture(float(learned.df))
            data[PRIOR_EFFECT_DF] = np.asarray(float(learned.df))
            data[PRIOR_MIX_NODES] = mixture.multipliers
            data[PRIOR_MIX_LOG_WEIGHTS] = mixture.log_weights
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


BASELINE_SPREAD_SD = 1.0
"""HalfNormal scale of the between-segment sd of the control's level on the link scale: segments whose rates
differ by a factor of e (on the odds or the mean) are a priori ordinary, 10x rare."""
POOLED_BASELINE_SEGMENTS = 10
"""From this many segments on, the segments' control levels are pooled (:func:`segment_baselines`)."""


def segment_baselines(center: "pt.TensorVariable", location_sd: float, segments: int) -> "pt.TensorVariable":
    """Add the control's level per segment to the current model (dims ``segment``).

    With fewer than :data:`POOLED_BASELINE_SEGMENTS` segments each has its own, ``Normal(center, location_sd)``.
    From that many on they are pooled: ``baseline[s] = baseline_mu + baseline_sd * baseline_z[s]``
    (non-centred), ``baseline_mu ~ Normal(center, location_sd)``, ``baseline_sd ~ HalfNormal(BASELINE_SPREAD_SD)``.

    Why both. A segment's own wide prior pulls its rate a little (the posterior mean of 3 conversions in 30 sits
    above 0.1); over a few segments the pulls are negligible (the e-mail campaign's 9 segments: the control
    within 0.11 standard errors of its observed rate), over 1,000 segments of 30 users they added up to 0.49 SE,
    and 2,000 weakly identified levels failed R-hat in 17 fits of 20 -- pooled, 0.02 SE and clean. But the spread
    of 3 to 9 levels is barely identified, and with cells of a few hundred users its funnel diverges (Group
    Stories' 3 segments at 1% of their traffic: 15 fits of 160 diverged pooled, 1 not), as the pooled form of
    0.1 did (3-24 divergences a fit, 6 segments). Those families sample this exact form only where some cell is
    small (large cells are integrated: :mod:`bayes_ab.models.gaussian_pool`). A per-segment choice of centring
    from a moment estimate of the spread was tried too: on heavy-tailed counts the outliers inflated the
    estimate, the centred segments sat in the funnel of a spread that was in truth 0, and 4 fits of 24 diverged.
    """
    import pymc as pm

    if segments < POOLED_BASELINE_SEGMENTS:
        return pm.Normal("baseline", mu=center, sigma=location_sd, dims="segment")
    mu = pm.Normal("baseline_mu", mu=center, sigma=location_sd)
    sd = pm.HalfNormal("baseline_sd", sigma=BASELINE_SPREAD_SD)
    z = pm.Normal("baseline_z", mu=0.0, sigma=1.0, dims="segment")
    return pm.Deterministic("baseline", mu + sd * z, dims="segment")


def with_control(baseline: "pt.TensorVariable", effect: "pt.TensorVariable") -> "pt.TensorVariable":
    """Linear predictor per arm x segment: control is the baseline, each treatment adds its effect."""
    import pytensor.tensor as pt

    return pt.concatenate([baseline[None, :], baseline[None, :] + effect], axis=0)


SIZE_FREE_DIMENSIONS = ("day",)
"""Dimensions no model builder branches on: any length is one structure."""


def size_classes(sizes: dict[str, int], pooled_baselines: bool = True) -> dict[str, str]:
    """The sizes as far as a model's *structure* depends on them: what the builders branch on in Python.

    A size-free structure (``bayes-ab warmup`` compiles them) reads every dimension's length as data
    (:mod:`bayes_ab.models.compiled`), so it serves every size of a class: two arms or more (one treatment's
    integration is written in scalars, :mod:`bayes_ab.models.gaussian_pool`); one segment (nothing to pool,
    :func:`segment_effects`) or more -- for a model with ``pooled_baselines`` (:func:`segment_baselines`: the
    exact binomial and count hierarchies), a few or :data:`POOLED_BASELINE_SEGMENTS` and more; any number of
    days.
    A dimension not named here keeps its exact length (a new one is never assumed free). A builder that branches
    on a size must say so here: ``tests/models/test_size_free.py`` compiles every family's structures at one size
    and checks them at others against PyMC's own model.
    """
    classes = {}
    for dim, n in sizes.items():
        if dim == "arm":
            classes[dim] = "two" if n == 2 else "three or more"
        elif dim == "segment" and not pooled_baselines:
            classes[dim] = "one" if n == 1 else "two or more"
        elif dim == "segment":
            classes[dim] = ("one" if n == 1 else f"2 to {POOLED_BASELINE_SEGMENTS - 1}"
                            if n < POOLED_BASELINE_SEGMENTS else f"{POOLED_BASELINE_SEGMENTS} or more")
        elif dim in SIZE_FREE_DIMENSIONS:
            classes[dim] = "any"
        else:
            classes[dim] = str(n)
    return classes


CLASS_REPRESENTATIVES = {"arm": (2, 3), "segment": (1, 3, POOLED_BASELINE_SEGMENTS + 2)}
"""One size of each class :func:`size_classes` names, per dimension: compiling a family's structures at each
combination (``bayes-ab warmup --all``) covers every arm and segment count (days are of any length)."""


def fixed_lengths(sizes: dict[str, int]) -> dict[str, int]:
    """The dimension lengths a class of sizes fixes (:func:`size_classes`): two arms have one treatment; one
    segment is one. They are constants of the compiled code -- numba compiles code whose shapes it knows in
    less than half the time -- and every other length is data."""
    fixed = {}
    if sizes.get("arm") == 2:
        fixed.update(arm=2, treatment=1)
    if sizes.get("segment") == 1:
        fixed["segment"] = 1
    return fixed


def dimension_length(dim: str) -> "pt.TensorVariable":
    """The current model's length of ``dim`` as a tensor, never a Python number: the compiled structure reads it as
    data, or as a constant where the class of sizes fixes it (:func:`fixed_lengths`)."""
    import pymc as pm

    return pm.modelcontext(None).dim_lengths[dim]


def model_coords(stats: xr.Dataset) -> dict[str, list]:
    """The labels of every dimension a model of ``stats`` may have: :func:`coords_for` and the statistics' other
    dimensions (a life table's days) but the count histogram's values, which are data."""
    coords = coords_for(stats)
    for dim in stats.dims:
        if dim not in coords and dim != "value":
            coords[dim] = [value.item() if isinstance(value, np.generic) else value for value in stats[dim].values]
    return coords


def coords_for(stats: xr.Dataset) -> dict[str, list[str]]:
    """Model coordinates of ``stats``; ``treatment`` is every arm but the control (``arm[0]``)."""
    arms = [str(a) for a in stats["arm"].values]
    return {"arm": arms, "segment": [str(s) for s in stats["segment"].values], "treatment": arms[1:]}


def pooled_mean(stats: xr.Dataset, total: str) -> xr.DataArray:
    """Raw per-arm mean ``sum(total) / sum(n)`` over the segments in ``stats`` (no model)."""
    users = stats["n"].sum("segment")
    return stats[total].sum("segment") / users.where(users > 0)
