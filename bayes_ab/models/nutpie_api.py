"""NUTS through nutpie's public API: the path fits take when the fast one's internals do not match.

``nutpie.compile_pymc_model`` compiles the PyMC model (through numba, in this process: nothing is cached on
disk), ``with_data`` swaps in a run's data, ``nutpie.sample`` draws. The model, its data, the sampler
(nutpie's NUTS with a diagonal or low-rank mass matrix), the seed and the settings are those of the fast path
(:mod:`bayes_ab.models.nuts`), so the posterior is the same one; the draws differ only by the starting
points' jitter stream. :mod:`bayes_ab.models.compat` decides which path a process takes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from bayes_ab.models.fitdata import FitData, from_inference_data

if TYPE_CHECKING:
    import pymc as pm

    from bayes_ab.models.nuts import NutsSettings


def compile_model(model: "pm.Model") -> Any:
    """nutpie's compiled form of ``model`` (its data stay swappable)."""
    import nutpie

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nutpie.compile_pymc_model(model)


def sample(compiled: Any, data: Mapping[str, np.ndarray], coords: Mapping[str, list],
           settings: "NutsSettings") -> FitData:
    """Posterior draws of ``compiled`` on ``data``, labelled by ``coords`` (as :func:`bayes_ab.models.nuts.sample`
    returns them)."""
    import nutpie

    # nutpie keeps only the data its rewritten graph still reads (a CUPED array of a model without a covariate
    # is folded away), and refuses any other name
    known = getattr(compiled, "shared_data", None)
    data = {name: value for name, value in data.items() if known is None or name in known}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = nutpie.sample(compiled.with_data(**data), draws=settings.draws, tune=settings.tune,
                              chains=settings.chains, cores=settings.cores, seed=settings.seed, progress_bar=False,
                              save_warmup=False, target_accept=settings.target_accept,
                              low_rank_modified_mass_matrix=settings.low_rank)
    return from_inference_data(idata, coords)
