"""How posteriors are computed: the backend and the MCMC settings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Backend(StrEnum):
    """How posteriors are computed."""

    NUTPIE = "nutpie"
    PYMC = "pymc"
    CONJUGATE = "conjugate"


@dataclass(frozen=True)
class SamplerSettings:
    """Posterior sampling settings.

    ``backend``: ``nutpie`` (default; hierarchical model compiled once per structure), ``pymc``
    (the same model through ``pm.sample``), or ``conjugate`` (exact unpooled Beta posteriors with a
    flat prior, no MCMC). A fit with divergent transitions is repeated once with
    ``target_accept = retry_target_accept`` (smaller steps); ``None`` disables the retry.

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
    exact: bool = True
    exact_draws: int = 100_000


EXACT = "exact"
"""What a fit computed by numerical integration records as its backend (not a backend one chooses)."""
