"""Inference machinery, family-agnostic: model-building helpers (:mod:`~bayes_ab.models.hierarchy`), conjugate
closed forms, exact integration (:mod:`~bayes_ab.models.quadrature`), the compiled-model cache and the NUTS
driver, and convergence diagnostics.

Nothing here knows a metric family or a spec: the families build their models from these pieces, and
:mod:`bayes_ab.posterior` drives them (fits a family's model to statistics).
"""

from bayes_ab.models.diagnostics import Diagnostics

__all__ = ["Diagnostics"]
