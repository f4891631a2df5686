"""Hierarchical PyMC models on sufficient statistics, and conjugate closed forms."""

from bayes_ab.models.diagnostics import Diagnostics
from bayes_ab.models.fit import ModelCache, fit
from bayes_ab.models.result import Fit

__all__ = ["Diagnostics", "Fit", "ModelCache", "fit"]
