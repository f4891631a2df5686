"""Old import paths of the modules and names that 0.2 moved, kept working for one release with a warning.

0.2 moved modules so that every package is one floor of the architecture (``docs/architecture.md``): the
family-dispatching drivers left ``bayes_ab.data`` and ``bayes_ab.models`` for ``bayes_ab.aggregation`` and
``bayes_ab.posterior``, and leaf helpers went down to the kernel. Code written against 0.1 keeps importing
``bayes_ab.models.fit`` or ``from bayes_ab.data import aggregate`` until 0.3, with a ``DeprecationWarning``
that names the new path.

Why a table and an import hook rather than a re-export in each old place: a re-export in ``bayes_ab.models``
of ``bayes_ab.posterior`` would be an import from a lower floor to a higher one, the very arrow the move
removes. Here the lower packages keep no reference at all; this module, which imports nothing of bayes_ab and
names paths only as text, is the one place that knows both. It is installed by ``bayes_ab/__init__.py``;
deleting both is the whole of the removal in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from typing import Any

REMOVED_IN = "0.3"

MOVED_MODULES: dict[str, str] = {
    "bayes_ab.effects.format": "bayes_ab.format",
    "bayes_ab.report.figures": "bayes_ab.figures",
    "bayes_ab.data.scan": "bayes_ab.aggregation.scan",
    "bayes_ab.data.aggregate": "bayes_ab.aggregation.aggregate",
    "bayes_ab.data.incremental": "bayes_ab.aggregation.incremental",
    "bayes_ab.data.warehouse": "bayes_ab.aggregation.warehouse",
    "bayes_ab.data.moments": "bayes_ab.aggregation.moments",
    "bayes_ab.novelty.panel": "bayes_ab.aggregation.panel",
    "bayes_ab.models.fit": "bayes_ab.posterior.fit",
    "bayes_ab.models.result": "bayes_ab.posterior.result",
}
"""Old module path -> the module that holds it now."""

MOVED_NAMES: dict[str, dict[str, str]] = {
    "bayes_ab.data": {
        "aggregate": "bayes_ab.aggregation", "aggregate_incrementally": "bayes_ab.aggregation",
        "combine": "bayes_ab.aggregation", "segment_weights": "bayes_ab.aggregation",
        "conversion_stats": "bayes_ab.families.conversion", "count_stats": "bayes_ab.families.count",
        "mean_stats": "bayes_ab.families.mean", "retention_stats": "bayes_ab.families.retention",
        "ratio_stats": "bayes_ab.families.ratio",
    },
    "bayes_ab.data.engine": {"resolve_engine": "bayes_ab.data.engines"},
    "bayes_ab.models": {"Fit": "bayes_ab.posterior", "ModelCache": "bayes_ab.posterior", "fit": "bayes_ab.posterior"},
    "bayes_ab.priors.store": {"load_prior": "bayes_ab.learned_prior", "parse_prior": "bayes_ab.learned_prior",
                              "read_prior_document": "bayes_ab.learned_prior"},
    "bayes_ab.priors.learn": {"FORMS": "bayes_ab.learned_prior"},
}
"""Module that stays -> {name that left it -> the module that holds the name now}."""


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new} in bayes-ab 0.2; the old path goes in {REMOVED_IN}", DeprecationWarning,
                  stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old module path as the module that now holds it (the same object, not a copy)."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        _warn(spec.name, self.new)
        module = importlib.import_module(self.new)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        """Nothing to run (the module was executed under its new name); the import system has just set the
        module's ``__spec__`` to the old path's, so its own is put back."""
        module.__spec__ = self.own_spec


class _WithMovedNames(importlib.abc.Loader):
    """Loads a module as its own loader does, then lets it answer for the names that left it."""

    def __init__(self, loader: importlib.abc.Loader, names: dict[str, str]):
        self.loader, self.names = loader, names

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.loader.exec_module(module)
        names, old = self.names, module.__name__

        def moved_attribute(name: str) -> Any:
            if name not in names:
                raise AttributeError(f"module {old!r} has no attribute {name!r}")
            _warn(f"{old}.{name}", f"{names[name]}.{name}")
            value = getattr(importlib.import_module(names[name]), name)
            setattr(module, name, value)        # once: ``from old import a, b`` looks every name up twice
            return value

        module.__getattr__ = moved_attribute


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Answers for the old module paths, and wraps the loaders of the modules that lost names."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in MOVED_MODULES:
            return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED_MODULES[fullname]))
        if fullname in MOVED_NAMES:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                spec.loader = _WithMovedNames(spec.loader, MOVED_NAMES[fullname])
            return spec
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
