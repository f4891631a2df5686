"""How posteriors are computed: the backend and the MCMC settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Backend(StrEnum):
    """How posteriors are computed."""

    NUTPIE = "nutpie"
    PYMC = "pymc"
    CONJUGATE = "conjugate"


class MassMatrix(StrEnum):
    """How NUTS adapts its metric during tuning: per-parameter scales (``diag``), or those and the few
    directions of largest and smallest posterior variance (``low_rank``: nutpie's low-rank modified mass matrix,
    Seyboldt 2024), which follows a ridge such as a pooling scale moving against the 1,000 standardised
    effects it scales; slower per draw."""

    DIAG = "diag"
    LOW_RANK = "low_rank"


@dataclass(frozen=True)
class SamplerSettings:
    """Posterior sampling settings.

    ``backend``: ``nutpie`` (default; hierarchical model compiled once per structure), ``pymc``
    (the same model through ``pm.sample``), or ``conjugate`` (exact unpooled Beta posteriors with a
    flat prior, no MCMC). A fit that fails its diagnostics is repeated (``retry_target_accept = None`` disables
    retries): with divergent transitions, at ``target_accept = retry_target_accept`` (smaller steps); without,
    failing R-hat or ESS, with the ``low_rank`` mass matrix (``mass_matrix``) and twice the draws (nutpie only:
    PyMC's NUTS adapts a diagonal one). A run still failing after the smaller steps gets the second remedy too;
    each is taken once.

    ``exact``: on the ``nutpie`` and ``pymc`` backends, a model small enough to integrate numerically (a
    one-segment conversion metric: :mod:`bayes_ab.models.quadrature`) is not sampled but integrated, and
    ``exact_draws`` independent draws of the same posterior are taken (split over ``chains``). Why: MCMC's
    ~1,200 effective draws leave P(beat control) with a Monte Carlo error of ~0.005 near a threshold; 100,000
    independent draws bring it under 0.0016, with no compilation. ``False`` always samples.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    retry_target_accept: float | None = 0.99
    seed: int = 20261122
    backend: Backend = Backend.NUTPIE
    mass_matrix: MassMatrix = MassMatrix.DIAG
    exact: bool = True
    exact_draws: int = 100_000


EXACT = "exact"
"""What a fit computed by numerical integration records as its backend (not a backend one chooses)."""
