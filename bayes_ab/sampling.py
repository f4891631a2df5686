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
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 4
    target_accept: float = 0.9
    retry_target_accept: float | None = 0.99
    seed: int = 20261122
    backend: Backend = Backend.NUTPIE
