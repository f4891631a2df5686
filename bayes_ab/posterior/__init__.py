"""Statistics -> posterior: fit a family's model (compiled once per structure, re-fitted with new data).

:func:`fit` dispatches to the metric's family (:mod:`bayes_ab.families`) and samples or integrates its model
with the machinery of :mod:`bayes_ab.models`; :class:`Fit` holds the draws, their diagnostics and the
statistics they came from.
"""

from bayes_ab.posterior.fit import DEFAULT_CACHE, ModelCache, fit, prepare
from bayes_ab.posterior.result import Fit, attach_stats

__all__ = ["DEFAULT_CACHE", "Fit", "ModelCache", "attach_stats", "fit", "prepare"]
