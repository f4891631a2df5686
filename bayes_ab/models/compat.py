"""Whether the fast sampler path can be trusted with the libraries installed, checked before it is used.

The fast path (:mod:`bayes_ab.models.compiled`, :mod:`bayes_ab.models.native`, :mod:`bayes_ab.models.nuts`,
:mod:`bayes_ab.models.special`) is built on parts of nutpie, numba and PyTensor that are not their public API:
nutpie's compiled extension and its constructors, numba's environment rebuilding, PyTensor's numba dispatch
registry. None of them is promised from one release to the next. So the versions it was built and tested
against are pinned exactly (``constraints.txt``, installed by ``make``), and before the first fit of a
process this module checks the installed versions and the shapes of those internals. When anything differs,
fits go through nutpie's public API instead (``nutpie.compile_pymc_model``, ``with_data``, ``nutpie.sample``):
the same model and sampler, slower to start (every process compiles its models again) but correct, and one
line on stderr says so.

``BAYES_AB_SAMPLER`` overrides the choice: ``public`` always takes the public path (to test it), ``native``
takes the fast path on untested versions as long as the internals it calls are there (what ``make canary``
tries after installing the newest releases).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import Literal

PINNED: dict[str, str] = {
    "nutpie": "0.16.8",
    "pymc": "5.28.5",
    "pytensor": "2.38.3",
    "numba": "0.65.1",
    "llvmlite": "0.47.0",
}
"""The releases the fast path was built and tested against; ``constraints.txt`` pins the same (a test checks)."""

CHOICE_ENV = "BAYES_AB_SAMPLER"
Path_ = Literal["native", "public"]

NUTPIE_SIGNATURES: dict[str, str] = {
    "LogpFunc": "(ptr, user_data_ptr, keep_alive)",
    "ExpandFunc": "(dim, expanded_dim, ptr, user_data_ptr, keep_alive)",
    "PyMcModel": "(density, expand, variables, dim, dim_sizes, coords, init_func, transform_adapter)",
    "PySampler.from_pymc": "(settings, cores, model, progress_type, store)",
    "PyNutsSettings.Diag": "(seed=None)",
    "PyVariable.new_variables": "($cls, names, item_types, shapes, dim_sizes, dims)",
}
"""The constructors :mod:`bayes_ab.models.nuts` calls in nutpie's extension, with the signatures it passes."""
NUTPIE_NAMES = ("ProgressType.none", "PyStorage.arrow")


class NativeUnavailable(RuntimeError):
    """The fast path cannot compile a structure with the installed libraries (the message says what differs)."""


def check_compile() -> None:
    """Refuse to compile a structure natively when PyTensor's or PyMC's internals it uses have changed.

    Raises
    ------
    NativeUnavailable
        Naming every difference; the caller compiles through nutpie's public API instead.
    """
    problems = compile_mismatches()
    if problems:
        raise NativeUnavailable("; ".join(problems))


@dataclass(frozen=True)
class SamplerPath:
    """Which path fits take, and why."""

    path: Path_
    reason: str

    @property
    def native(self) -> bool:
        return self.path == "native"


def installed_versions() -> dict[str, str | None]:
    """The installed release of every pinned package (``None``: not installed)."""
    found = {}
    for name in PINNED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def version_mismatches() -> list[str]:
    """``name installed (tested pinned)`` for every pinned package at another release."""
    return [f"{name} {have or 'missing'} (tested {PINNED[name]})"
            for name, have in installed_versions().items() if have != PINNED[name]]


def runtime_mismatches() -> list[str]:
    """What the fast path calls on every fit (nutpie's extension, numba's environments) that is missing or
    has another signature in the installed libraries. Cheap: both are loaded by a fit anyway."""
    problems = []
    try:
        from bayes_ab.models.nuts import library

        lib = library()
    except ImportError as exc:
        return [f"nutpie's extension: {exc}"]
    for dotted, expected in NUTPIE_SIGNATURES.items():
        found = _attribute(lib, dotted)
        signature = getattr(found, "__text_signature__", None)
        if found is None:
            problems.append(f"nutpie._lib.{dotted} is missing")
        elif signature != expected:
            problems.append(f"nutpie._lib.{dotted}{signature or '(?)'} is not {dotted}{expected}")
    problems += [f"nutpie._lib.{dotted} is missing" for dotted in NUTPIE_NAMES if _attribute(lib, dotted) is None]
    return problems + _python_mismatches(RUNTIME_INTERNALS)


def compile_mismatches() -> list[str]:
    """What compiling a new structure calls in PyTensor and PyMC that is missing or has other parameters.
    Checked only when a structure is compiled: PyTensor is imported then anyway, and a cached load never
    imports it."""
    return _python_mismatches(COMPILE_INTERNALS)


RUNTIME_INTERNALS = (
    ("numba.core.environment", "_rebuild_env", ["modname", "consts", "env_name"]),
    ("numba.core.environment", "lookup_environment", None),
    ("numba.core.environment", "Environment._memo", None),
)
"""Loading a cached structure rebuilds numba environments through these (:mod:`bayes_ab.models.compiled`)."""

COMPILE_INTERNALS = (
    ("pytensor.link.numba.dispatch.basic", "register_funcify_and_cache_key", ["op_type"]),
    ("pytensor.link.numba.dispatch.basic", "numba_njit", None),
    ("pytensor.link.numba.dispatch.scalar", "numba_funcify_ScalarOp", ["op", "node", "kwargs"]),
    ("pymc.initial_point", "make_initial_point_expression",
     ["free_rvs", "rvs_to_transforms", "initval_strategies", "jitter_rvs", "default_strategy",
      "return_transformed"]),
    ("pymc.distributions.distribution", "SymbolicRandomVariable", None),
    ("pytensor.graph.traversal", "graph_inputs", None),
    ("pytensor.graph.traversal", "io_toposort", None),
)
"""Compiling a structure uses these (:mod:`bayes_ab.models.compiled`, :mod:`bayes_ab.models.special`)."""


def _python_mismatches(wanted: tuple) -> list[str]:
    problems = []
    for module_name, dotted, parameters in wanted:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            problems.append(f"{module_name} is missing")
            continue
        found = _attribute(module, dotted)
        if found is None:
            problems.append(f"{module_name}.{dotted} is missing")
        elif parameters is not None and list(inspect.signature(found).parameters) != parameters:
            problems.append(f"{module_name}.{dotted}{inspect.signature(found)} takes other parameters")
    return problems


def _attribute(owner: object, dotted: str) -> object | None:
    for part in dotted.split("."):
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner


@lru_cache(maxsize=1)
def sampler_path() -> SamplerPath:
    """The path this process's fits take (decided once, with a one-line notice when it is the public one)."""
    choice = os.environ.get(CHOICE_ENV, "").strip().lower()
    if choice not in ("", "native", "public"):
        _notice(f"{CHOICE_ENV}={choice!r} is not 'native' or 'public'; ignored")
        choice = ""
    if choice == "public":
        return _public(f"{CHOICE_ENV}=public")
    missing = runtime_mismatches()
    if missing:
        return _public("; ".join(missing))
    versions = version_mismatches()
    if versions and choice != "native":
        return _public("untested releases: " + ", ".join(versions))
    return SamplerPath("native", f"{CHOICE_ENV}=native on untested releases: {', '.join(versions)}" if versions
                       else "the tested releases")


def _public(reason: str) -> SamplerPath:
    public_notice(reason)
    return SamplerPath("public", reason)


def public_notice(reason: str) -> None:
    """The one line that says fits take the public path, and why (once per reason and process)."""
    if reason in _NOTICED:
        return
    _NOTICED.add(reason)
    _notice(f"sampling through nutpie's public API ({reason}); every process compiles its models again, "
            "so fits start slower -- `make` installs the tested releases")


_NOTICED: set[str] = set()


def _notice(text: str) -> None:
    print(f"bayes-ab: note: {text}", file=sys.stderr)
