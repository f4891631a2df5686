"""The segment hierarchy on Gaussian cells, with everything but its scales integrated out exactly.

Several families observe, per arm x segment cell, a summary that is Gaussian on the link scale around the
model's linear predictor: the ratio family's log-ratio with its delta-method variance, the mean family's
cell mean with variance ``sigma^2 / n``. With a flat prior on each segment's control level ``b[s]`` and the
pooled treatment effects of every family::

    y[a, s] ~ Normal(b[s] + e[a, s], v[a, s])                (e[control, s] = 0)
    e[t, s] ~ Normal(effect_mu[t], effect_sd[t]^2)
    effect_mu[t] ~ Normal(prior location, prior scale^2)     (a Student-t as its scale mixture)

the likelihood given ``effect_sd`` (and whatever sets ``v``) is Gaussian in ``effect_mu``, ``b`` and ``e``.
:func:`pooled_gaussian_cells` adds that marginal likelihood to the model and places ``effect_mu``, ``b`` and
``e`` by their closed-form conditionals from standard normals, so NUTS sees only the scales and independent
standard normals: none of the funnels between a pooling scale and the effects it pools, which diverge when
cells are precise (large experiments) and segments respond alike. The posterior is the hierarchy's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from bayes_ab.metric import EffectPrior
from bayes_ab.models.hierarchy import (PRIOR_EFFECT_DF, PRIOR_EFFECT_MEAN, PRIOR_MIX_LOG_WEIGHTS, PRIOR_MIX_NODES,
                                      coords_for, dimension_length, prior_data, prior_scales, with_control)

if TYPE_CHECKING:     # imported by the functions that build a model: loading a cached model never needs PyMC
    import pymc as pm
    import pytensor.tensor as pt


def _learned_effect_mu_prior(prior: EffectPrior, effect_sd):
    """Prior variance (one per treatment) and mean of ``effect_mu`` under a learned prior: the (mapped)
    location, and for a Student-t its scale mixture: given ``effect_mu_mix ~ InverseGamma(df / 2, df / 2)``
    per treatment the prior is Normal(location, effect_sd * sqrt(mix)), so the integration stays exact and only
    the mixing scale is sampled."""
    import pymc as pm
    import pytensor.tensor as pt

    learned = prior.learned
    variance = effect_sd ** 2 * pt.ones(dimension_length("treatment"))
    data = prior_data(prior)
    location = pm.Data(PRIOR_EFFECT_MEAN, data[PRIOR_EFFECT_MEAN]) * pt.ones(dimension_length("treatment"))
    if learned.df is not None:
        half = pm.Data(PRIOR_EFFECT_DF, data[PRIOR_EFFECT_DF]) / 2.0
        variance = variance * pm.InverseGamma("effect_mu_mix", alpha=half, beta=half, dims="treatment")
    return variance, location


def _normal_effect_mu(prior: EffectPrior, effect_sd, a_matrix, c, mu_z, treatments: int):
    """``effect_mu`` under a normal prior (or a t with its mixing variable sampled, several treatments): the log
    evidence integrating it out adds (the prior's terms, ``-log det / 2 + c' mean / 2``) and a draw of its
    Gaussian conditional from ``mu_z``."""
    import pytensor.tensor as pt
    from pytensor.tensor.slinalg import cholesky, solve_triangular

    if prior.learned is None:
        tau2 = effect_sd ** 2
        precision = a_matrix + pt.eye(dimension_length("treatment")) / tau2
        log_prior_terms = -0.5 * dimension_length("treatment") * pt.log(tau2)
    else:
        prior_var, location = _learned_effect_mu_prior(prior, effect_sd)
        precision = a_matrix + pt.diag(1.0 / prior_var)
        c = c + location / prior_var        # a prior centred away from 0 moves the Gaussian
        log_prior_terms = -0.5 * pt.log(prior_var).sum() - 0.5 * (location ** 2 / prior_var).sum()
    if treatments == 1:
        # two arms, the usual case: the 1 x 1 precision in scalars. The compiled code of PyTensor's Cholesky
        # factor and triangular solve refers to PyTensor and SciPy, so a process loading a cached structure that
        # holds them imports both (seconds); this one loads without them
        precision = precision[0, 0]
        mu_mean = c / precision
        log_det_half = 0.5 * pt.log(precision)
        mu_draw = mu_mean + mu_z / pt.sqrt(precision)
    else:
        chol = cholesky(precision)
        mu_mean = solve_triangular(chol.T, solve_triangular(chol, c, lower=True), lower=False)
        log_det_half = pt.log(pt.diag(chol)).sum()
        mu_draw = mu_mean + solve_triangular(chol.T, mu_z, lower=False)
    return log_prior_terms - log_det_half + 0.5 * pt.dot(c, mu_mean), mu_draw


def _student_t_effect_mu(prior: EffectPrior, effect_sd, a, c, mu_z):
    """One treatment under a learned Student-t prior: ``effect_mu`` integrated over the t's scale mixture on
    its grid of nodes (model data, :func:`~bayes_ab.learned_prior.scale_mixture`) instead of a sampled mixing
    variable. Given node ``j`` the prior is Normal(location, effect_sd^2 lam_j) and everything is Gaussian, so
    the evidence is a sum over nodes; a draw picks its node by inverting the posterior weights at a uniform
    ``effect_mu_u`` (which the density does not depend on) and then draws from that node's Gaussian.

    Why: with a sampled mixing variable, a prior much narrower than the data's error and an estimate far in its
    tail give two modes -- a small ``lam`` holding the effect at the prior's centre, a large one letting the
    data through -- and NUTS stays in one (R-hat 1.036, ESS 63). Summed over, the scales that remain sampled
    see one smooth density, and both modes are in the draws in proportion.

    Returns the log evidence (the prior's and the integration's terms) and the draw of ``effect_mu`` (dim
    treatment, length 1).
    """
    import pymc as pm
    import pytensor.tensor as pt

    data = prior_data(prior)
    nodes = pm.Data(PRIOR_MIX_NODES, data[PRIOR_MIX_NODES])
    log_weights = pm.Data(PRIOR_MIX_LOG_WEIGHTS, data[PRIOR_MIX_LOG_WEIGHTS])
    location = pm.Data(PRIOR_EFFECT_MEAN, data[PRIOR_EFFECT_MEAN])
    prior_var = effect_sd ** 2 * nodes
    precision = a + 1.0 / prior_var
    shifted = c + location / prior_var
    mean = shifted / precision
    log_terms = (log_weights - 0.5 * pt.log(prior_var) - 0.5 * location ** 2 / prior_var - 0.5 * pt.log(precision)
                 + 0.5 * shifted * mean)
    top = pt.max(log_terms)
    log_evidence = top + pt.log(pt.sum(pt.exp(log_terms - top)))
    weights = pt.exp(log_terms - log_evidence)
    u = pm.Uniform("effect_mu_u", 0.0, 1.0)
    node = pt.minimum(pt.sum(pt.lt(pt.cumsum(weights), u)), nodes.shape[0] - 1)
    draw = mean[node] + mu_z[0] / pt.sqrt(precision[node])
    return log_evidence, pt.stack([draw])


def pooled_gaussian_cells(y: "pt.TensorVariable", v: "pt.TensorVariable", prior: EffectPrior, treatments: int,
                          segments: int) -> tuple["pt.TensorVariable", "pt.TensorVariable"]:
    """Add the marginal likelihood of Gaussian cells and the conditional draws of their levels to the current
    model (dims ``treatment`` and ``segment`` declared).

    Parameters
    ----------
    y, v
        Each arm x segment cell's observation on the link scale and its variance (control first); tensors, so
        ``v`` may depend on sampled parameters (a cell's sd). A cell without data: any ``y``, a huge ``v``.
    prior
        The metric's effect prior (its scales and a learned prior's location are model data).
    treatments, segments
        Sizes, for the structure's branches only (:func:`~bayes_ab.models.hierarchy.size_classes`): with one
        segment the effects equal ``effect_mu`` (nothing to pool); the graph reads the dimensions' lengths.

    Returns
    -------
    baseline, effect
        ``b[s]`` (dim segment) and ``e[t, s]`` (deterministic ``effect``, dims treatment x segment).
    """
    import pymc as pm
    import pytensor.tensor as pt

    effect_sd, heterogeneity_sd = prior_scales(prior)
    if segments > 1:
        sd = pm.HalfNormal("effect_sd", sigma=heterogeneity_sd, dims="treatment")[:, None]
    else:
        sd = pt.zeros((dimension_length("treatment"), 1))
    total = pt.concatenate([v[:1], v[1:] + sd ** 2], axis=0)    # variance of y[a, s] around b[s]
    w = 1.0 / total
    weight = w.sum(axis=0)                                      # W[s]
    y_bar = (w * y).sum(axis=0) / weight
    # log-likelihood given effect_mu: K - Q0 / 2 + mu'c - mu'A mu / 2 (b and e integrated out)
    wt = w[1:]
    c = (wt * (y[1:] - y_bar[None, :])).sum(axis=1)
    a_matrix = pt.diag(wt.sum(axis=1)) - pt.dot(wt / weight[None, :], wt.T)
    q0 = ((w * y ** 2).sum(axis=0) - weight * y_bar ** 2).sum()
    k = (-0.5 * pt.log(2 * np.pi * total).sum() + 0.5 * dimension_length("segment") * np.log(2 * np.pi)
         - 0.5 * pt.log(weight).sum())
    mu_z = pm.Normal("effect_mu_z", 0.0, 1.0, dims="treatment")
    if treatments == 1 and prior.learned is not None and prior.learned.df is not None:
        log_evidence, mu_draw = _student_t_effect_mu(prior, effect_sd, a_matrix[0, 0], c[0], mu_z)
    else:
        log_evidence, mu_draw = _normal_effect_mu(prior, effect_sd, a_matrix, c, mu_z, treatments)
    pm.Potential("obs", k - 0.5 * q0 + log_evidence)
    mu = pm.Deterministic("effect_mu", mu_draw, dims="treatment")
    shift = mu[:, None] + pt.zeros((dimension_length("treatment"), dimension_length("segment")))
    centre = y_bar - (wt * shift).sum(axis=0) / weight
    baseline = centre + pm.Normal("baseline_z", 0.0, 1.0, dims="segment") / pt.sqrt(weight)
    # e[t, s] given b[s]: prior Normal(mu, sd^2) times likelihood Normal(y - b, v); e = mu at sd = 0
    gain = sd ** 2 / (sd ** 2 + v[1:])
    effect_mean = shift + gain * (y[1:] - baseline[None, :] - shift)
    effect_scale = sd * pt.sqrt(v[1:] / (sd ** 2 + v[1:]))
    z = pm.Normal("effect_z", 0.0, 1.0, dims=("treatment", "segment"))
    effect = pm.Deterministic("effect", effect_mean + effect_scale * z, dims=("treatment", "segment"))
    return baseline, effect


NORMAL_CELLS = "normal_cells"
"""The variant suffix of a family model whose cells are approximated by normals on the link scale."""
LINK_Y, LINK_V = "link_y", "link_v"
"""Model data of that variant: each cell's observed value on the link scale and its variance."""
EMPTY_CELL_VARIANCE = 1e12
"""The variance an empty cell's observation is given: so large that it carries nothing (every family's)."""


NORMAL_CELLS_FAMILY = "gaussian_cells"
"""The family name in the compiled structure's key: the normal-cells model does not depend on the family (its
inverse link is applied to the draws afterwards), so conversion and counts share one compiled structure."""


def is_normal_cells(variant: str) -> bool:
    """Whether a family's variant is the normal-cells model."""
    return variant.endswith(NORMAL_CELLS)


def normal_cells_model(stats, metric, data: dict) -> "pm.Model":
    """The family's segment hierarchy with each arm x segment cell's likelihood replaced by a normal on the link
    scale (the observed value, and its variance from the cell's information: a nested Laplace approximation),
    so that the baselines and segment effects integrate out exactly (:func:`pooled_gaussian_cells`).

    A family uses it only where every cell is large (its ``normal_cells`` check): there the approximation's
    error is far below the posterior's width, and there the exact likelihood's hierarchy funnels -- precise
    cells and segments that respond alike (3 engagement segments of 20,000 users each diverged in 1 fit of 10).
    Small cells keep the exact likelihood, whose non-centred hierarchy suits them. ``data`` holds
    :data:`LINK_Y` and :data:`LINK_V`. The model's per-cell quantity is the linear predictor ``linear``; the
    fit maps it to ``mean`` with the family's inverse link (:func:`with_mean`), so that one compiled structure
    serves every family.
    """
    import pymc as pm

    coords = coords_for(stats)
    cells = ("arm", "segment")
    with pm.Model(coords=coords) as model:
        y = pm.Data(LINK_Y, data[LINK_Y], dims=cells)
        v = pm.Data(LINK_V, data[LINK_V], dims=cells)
        baseline, effect = pooled_gaussian_cells(y, v, metric.prior, len(coords["arm"]) - 1, len(coords["segment"]))
        pm.Deterministic("linear", with_control(baseline, effect), dims=cells)
    return model


def with_mean(idata, inverse_link):
    """``idata`` with the posterior's ``mean`` = ``inverse_link(linear)`` (draws of the normal-cells model)."""
    posterior = idata.posterior
    linear = posterior["linear"]
    return idata.with_group("posterior", posterior.assign(mean=linear.copy(data=inverse_link(linear.values))))
