"""A family's model compiled once per structure *and machine*: the sampler's native code is cached on disk.

Check-ins run as separate processes (cron, notebook, CI), so an in-process cache alone leaves every command
paying the model's compilation (≈ 15–25 s per model with numba). Here a model structure — family, likelihood
variant, arm/segment/day sizes, the data arrays' names, types and ranks, and the exact code and library
versions that produce its graph — is hashed into a key. The first process to meet a key builds the PyMC
graph, compiles it to numba through PyTensor and writes:

- ``<cache>/<key>/callbacks.py``: the generated C callbacks (:mod:`bayes_ab.models.native`), whose machine
  code numba caches beside it;
- ``<cache>/<key>/layout.json``: what the sampler needs besides the code (traced names, shapes, dims and the
  data arrays' order).

Any later process with the same key loads both in well under a second, without building the PyMC graph. Data
(including the effect priors, which are data of the model rather than part of its identity) reach the code
through addresses in ``user_data``, so new data of any size never recompile, and a changed model can never be
served stale: its source, and therefore its key, differ. The starting point is compiled too and computed from
each run's data: it depends on the priors, so a value stored by the compiling run would make the draws for one
seed depend on which run compiled the structure first. ``BAYES_AB_CACHE_DIR`` chooses the cache directory
(default ``$XDG_CACHE_HOME/bayes-ab`` or ``~/.cache/bayes-ab``); deleting it is always safe.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import math
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

import numpy as np

from bayes_ab.files import unwritable_reason, write_atomically

if TYPE_CHECKING:
    import pymc as pm

CACHE_ENV = "BAYES_AB_CACHE_DIR"
LAYOUT_FILE = "layout.json"
CALLBACKS_FILE = "callbacks.py"
_LIBRARIES = ("numba", "pytensor", "pymc", "nutpie", "numpy", "llvmlite")


def cache_root() -> Path:
    """Where compiled structures live: ``$BAYES_AB_CACHE_DIR``, else the user's cache directory."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayes-ab" / "models"


ABOVE_THE_MODELS = ("aggregation", "posterior", "novelty", "compliance", "targeting", "effects", "decision", "checkins",
                    "stopping", "priors", "planning", "report", "spec.py", "analysis.py", "console.py", "notify.py", "cli.py")
"""The parts of the package above the families (``docs/architecture.md``): a model's graph is built by its family
from the floors below, so editing these never changes compiled code and never invalidates the cache. Named by
exclusion on purpose: a new module anywhere else counts until it is listed here."""


@lru_cache(maxsize=1)
def _code_version() -> str:
    """Digest of the sources a model's code can depend on and the versions of the libraries that compile it."""
    return source_digest(Path(__file__).resolve().parents[1])


def source_digest(package: Path) -> str:
    """:func:`_code_version` of the package at ``package``: every source file below the spec, and the libraries."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] in ABOVE_THE_MODELS:
            continue
        digest.update(str(relative).encode())
        digest.update(path.read_bytes())
    for name in _LIBRARIES:
        try:
            digest.update(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{name}=absent".encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def structure_key(family: str, variant: str, sizes: Mapping[str, int], data: Mapping[str, np.ndarray]) -> str:
    """The identity of a compiled model: what its code depends on, and nothing its data can change.

    ``sizes`` are the dimensions the model's parameters are indexed by (arm, segment, day); data arrays enter
    by name, type and rank only (their sizes and values are read at run time).
    """
    parts = {
        "family": family,
        "variant": variant,
        "sizes": sorted((str(k), int(v)) for k, v in sizes.items()),
        "data": sorted((name, np.asarray(v).dtype.str, np.ndim(v)) for name, v in data.items()),
        "code": _code_version(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Layout:
    """Everything the sampler needs about a compiled structure besides its code (stored as JSON)."""

    key: str
    n_dim: int
    names: tuple[str, ...]
    """Traced arrays in expansion order: the unconstrained parameters first, then every other quantity."""
    shapes: tuple[tuple[int, ...], ...]
    n_unconstrained: int
    """How many of ``names`` are unconstrained parameters."""
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, list[Any]]
    data: tuple[tuple[str, str, int], ...]
    """The data arrays in call order: name, dtype, rank."""
    parameters: tuple[str, ...]
    """The free random variables (their R-hat is part of the diagnostics)."""

    @property
    def n_expanded(self) -> int:
        return sum(math.prod(shape) for shape in self.shapes)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Layout":
        raw = json.loads(text)
        return cls(key=raw["key"], n_dim=raw["n_dim"], names=tuple(raw["names"]),
                   shapes=tuple(tuple(s) for s in raw["shapes"]), n_unconstrained=raw["n_unconstrained"],
                   dims={k: tuple(v) for k, v in raw["dims"].items()}, coords=raw["coords"],
                   data=tuple((n, d, int(r)) for n, d, r in raw["data"]), parameters=tuple(raw["parameters"]))


@dataclass(frozen=True)
class ModelData:
    """A run's data arrays in the layout's order, and the ``user_data`` words the callbacks read them through.

    ``user_data`` holds, per array, its address and then its sizes; the arrays are kept here (read-only) so
    the addresses stay valid for as long as this object lives.
    """

    arrays: dict[str, np.ndarray]
    user_data: np.ndarray

    @classmethod
    def pack(cls, layout: Layout, data: Mapping[str, np.ndarray]) -> "ModelData":
        """``data`` checked against the layout (every array present, of the compiled rank) and laid out."""
        arrays, words = {}, []
        for name, dtype, ndim in layout.data:
            if name not in data:
                raise KeyError(f"model data {name!r} missing")
            array = np.array(data[name], dtype=dtype, order="C", copy=True)
            if array.ndim != ndim:
                raise ValueError(f"model data {name!r} has rank {array.ndim}, the compiled model expects {ndim}")
            array.flags.writeable = False
            arrays[name] = array
            words += [array.ctypes.data, *array.shape]
        return cls(arrays, np.array(words or [0], dtype=np.uint64))

    @property
    def address(self) -> int:
        return self.user_data.ctypes.data


@dataclass(frozen=True)
class NativeModel:
    """A loaded structure: its layout and its three C callbacks (kept alive here)."""

    layout: Layout
    logp_callback: Any
    expand_callback: Any
    initial_callback: Any
    compiled: bool
    """True when this process compiled it (a cache miss)."""

    @property
    def parameters(self) -> list[str]:
        return list(self.layout.parameters)

    def support_point(self, data: ModelData) -> np.ndarray:
        """PyMC's starting point for this data: each free variable's support point, unconstrained, unjittered."""
        out = np.empty(self.layout.n_dim)
        pointer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        status = self.initial_callback.ctypes(self.layout.n_dim, pointer, data.address)
        if status != 0:
            raise RuntimeError(f"the model's starting point could not be computed (status {status})")
        return out


def native_model(key: str, build: Callable[[], "pm.Model"]) -> NativeModel:
    """The compiled structure ``key``: loaded from the cache, or built with ``build()`` and cached.

    A damaged or partial cache entry (a killed process, a full disk) is rebuilt, never trusted.
    """
    directory = cache_root() / key
    layout_path = directory / LAYOUT_FILE
    if layout_path.exists():
        try:
            layout = Layout.from_json(layout_path.read_text())
            module = _import_callbacks(key, directory / CALLBACKS_FILE)
            native = _callbacks(layout, module, compiled=False)
        except Exception:   # noqa: BLE001 -- any failure to load means: compile afresh below
            pass
        else:
            _touch(layout_path)
            return native
    model = build()
    writable = _writable(directory)
    native = _compile(key, model, directory if writable else _process_directory(key))
    if writable:
        _prune(cache_root(), keep=key)
    return native


STALE_DAYS = 30
"""Entries unused for this long are deleted when a new structure is compiled (old code versions' entries)."""


def _writable(directory: Path) -> bool:
    reason = unwritable_reason(directory)
    if reason is not None:
        print(f"bayes-ab: note: the model cache {directory} {reason}; compiled models last for this process "
              f"only (set {CACHE_ENV} to a writable folder)", file=sys.stderr)
    return reason is None


def _process_directory(key: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="bayes-ab-models-")) / key
    directory.mkdir()
    return directory


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(root: Path, keep: str) -> None:
    """Delete entries whose layout was not used for :data:`STALE_DAYS` (best effort)."""
    import shutil
    import time

    limit = time.time() - STALE_DAYS * 86_400
    for entry in root.iterdir():
        layout = entry / LAYOUT_FILE
        try:
            if entry.name != keep and entry.is_dir() and layout.stat().st_mtime < limit:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _whole_second_mtime(path: Path) -> None:
    """Set ``path``'s modification time to a whole second, before numba caches the code compiled from it.

    numba's cache index keeps the source's (mtime, size) and misses when either changed. A container image's layers
    (tar archives) and many copy tools keep whole seconds only: a cache built in ``docker build`` then missed in
    every container, and each one compiled the model again (about 35 s). Whole seconds survive them.
    """
    stamp = int(path.stat().st_mtime)
    os.utime(path, (stamp, stamp))


def _import_callbacks(key: str, path: Path):
    name = f"bayes_ab_native_{key}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _callbacks(layout: Layout, module, compiled: bool) -> NativeModel:
    """The C callbacks of ``module`` with numba's on-disk cache (a load when the cache holds them)."""
    import numba

    from bayes_ab.models.native import EXPAND_SIGNATURE, INITIAL_SIGNATURE, LOGP_SIGNATURE

    with _environments_without_imports():
        logp = numba.cfunc(LOGP_SIGNATURE, cache=True)(module.logp)
        expand = numba.cfunc(EXPAND_SIGNATURE, cache=True)(module.expand)
        initial = numba.cfunc(INITIAL_SIGNATURE, cache=True)(module.initial)
    return NativeModel(layout, logp, expand, initial, compiled)


@contextmanager
def _environments_without_imports() -> Iterator[None]:
    """Load cached machine code without importing the modules its functions were written in.

    Numba stores with each cached function an *environment* per inlined function: the globals of the module
    that defined it (for object mode, which a ``cfunc`` never uses) and its constants. Reloading one imports
    that module to read its globals. A model's code comes from PyTensor's numba dispatchers, so loading a
    cached model imported PyTensor (and through it scipy.signal and scipy.stats): about 0.5 s of a check-in,
    for dictionaries no nopython code reads. Here an environment whose module is not imported yet gets its
    stored constants and an empty globals dictionary; everything else is numba's own behaviour. Environments
    are looked up by a name unique to the compiled function, so a later compilation in this process builds
    its own. Outside a load, numba is untouched.
    """
    from numba.core import environment

    original = environment._rebuild_env

    def rebuild(modname: str, consts: list, env_name: str):
        if modname in sys.modules:
            return original(modname, consts, env_name)
        found = environment.lookup_environment(env_name)
        if found is not None:
            return found
        env = environment.Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env

    environment._rebuild_env = rebuild
    try:
        yield
    finally:
        environment._rebuild_env = original


def _compile(key: str, model: "pm.Model", directory: Path) -> NativeModel:
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_expression
    from pytensor.compile.sharedvalue import SharedVariable

    from bayes_ab.models import special
    from bayes_ab.models.native import wrapper_source

    special.register()
    value_vars = list(model.value_vars)
    # PyMC's default start (as pm.sample and nutpie use it), kept as a graph of the data: priors are data
    starts = make_initial_point_expression(free_rvs=model.free_RVs, rvs_to_transforms=model.rvs_to_transforms,
                                           initval_strategies=model.rvs_to_initial_values, jitter_rvs=set(),
                                           return_transformed=True)
    start = dict(zip((v.name for v in value_vars),
                     pytensor.function([], starts, mode="FAST_COMPILE", on_unused_input="ignore")()))
    shapes = [tuple(int(s) for s in np.shape(start[v.name])) for v in value_vars]
    sizes = [math.prod(s) for s in shapes]
    n_dim = sum(sizes)

    logp = pytensor.graph.rewrite_graph(model.logp(), include=("canonicalize", "stabilize"))
    gradient = pt.concatenate([g.ravel() for g in pytensor.grad(logp, value_vars)])
    point = pt.TensorType("float64", shape=(n_dim,))("unconstrained_point")
    replace, offset = {}, 0
    for var, shape, size in zip(value_vars, shapes, sizes):
        replace[var] = point[offset:offset + size].reshape(shape).astype(var.dtype)
        offset += size
    shared = sorted((v for v in model.named_vars.values() if isinstance(v, SharedVariable)), key=lambda v: v.name)
    inputs = [pt.TensorType(v.type.dtype, shape=(None,) * v.type.ndim)(v.name) for v in shared]
    replace.update(zip(shared, inputs))

    names_unconstrained = {v.name for v in value_vars}
    others = [v for v in model.unobserved_value_vars if v.name not in names_unconstrained]
    logp_out, gradient_out, *others_out = pytensor.clone_replace([logp, gradient, *others], replace)
    expanded = pt.concatenate([point, *[pt.as_tensor(v).ravel() for v in others_out]])
    starts = _without_draws(starts)
    starts_out = pytensor.clone_replace(starts, _start_inputs(model, starts, inputs))
    initial = pt.concatenate([pt.as_tensor(v).ravel().astype("float64") for v in starts_out])
    values = {v.name: np.asarray(v.get_value()) for v in shared}
    start_point = np.concatenate([np.ravel(start[v.name]) for v in value_vars])
    arrays = [values[v.name] for v in shared]
    mode, logp_fn = _numba_mode_checked(key, [point, *inputs], [logp_out, gradient_out], start_point, arrays)
    expand_fn = pytensor.function([point, *inputs], [expanded], mode=mode, on_unused_input="ignore")
    initial_fn = pytensor.function(inputs, [initial], mode=mode, on_unused_input="ignore")
    shape_fn = pytensor.function(value_vars, [v.shape for v in others], mode="FAST_COMPILE",
                                 on_unused_input="ignore")
    other_shapes = [tuple(int(x) for x in shape) for shape in shape_fn(*[start[v.name] for v in value_vars])]

    layout = Layout(
        key=key, n_dim=n_dim,
        names=tuple([v.name for v in value_vars] + [v.name for v in others]),
        shapes=tuple(shapes + other_shapes), n_unconstrained=len(value_vars),
        dims={name: tuple(d) for name, d in model.named_vars_to_dims.items() if d},
        coords={name: [_plain(x) for x in values_] for name, values_ in model.coords.items()
                if values_ is not None},
        data=tuple((v.name, values[v.name].dtype.name, v.type.ndim) for v in shared),
        parameters=tuple(rv.name for rv in model.free_RVs),
    )
    source = wrapper_source(key, n_dim, layout.n_expanded, list(layout.data))
    callbacks_path = directory / CALLBACKS_FILE
    if not callbacks_path.exists() or callbacks_path.read_text() != source:
        write_atomically(callbacks_path, lambda tmp: tmp.write_text(source))
    _whole_second_mtime(callbacks_path)
    sys.modules.pop(f"bayes_ab_native_{key}", None)
    module = _import_callbacks(key, callbacks_path)
    module.logp_inner = logp_fn.vm.jit_fn
    module.expand_inner = expand_fn.vm.jit_fn
    module.initial_inner = initial_fn.vm.jit_fn
    native = _callbacks(layout, module, compiled=True)
    _check_start(native, values, np.concatenate([np.ravel(start[v.name]) for v in value_vars]))
    write_atomically(directory / LAYOUT_FILE, lambda tmp: tmp.write_text(layout.to_json()))    # last: a layout marks a complete entry
    return native


CHECK_POINTS = 3
"""Points at which a compiled log density and gradient are checked against PyTensor's reference evaluation:
the starting point and jittered copies of it."""


def _numba_mode_checked(key: str, inputs: list, outputs: list, start: np.ndarray, arrays: list) -> tuple[Any, Any]:
    """The numba compilation mode whose log density and gradient agree with PyTensor's reference (Python/C)
    evaluation on the compiling run's data -- the default, else the default without elementwise fusion -- and
    the log density compiled in it.

    A wrong compiled density gives no error, only a wrong posterior: the first form of the mean family's
    marginalised hierarchy (0.2) wrote an empty cell's variance as ``(1 - present) * 1e12``, PyTensor's numba
    rewrites expanded it into a difference of 1e12-sized terms, and the density came out -inf or off by about
    1 (a control mean of 0.09 sampled where the data said 0.65) while PyTensor's own evaluation was right.
    So every structure is checked once, when it is compiled, and compiled again without fusion (which avoided
    that case) before it is refused.

    Raises
    ------
    RuntimeError
        Neither mode agrees with the reference (the structure is not cached; the fit fails with the reason).
    """
    import pytensor
    from pytensor.compile.mode import get_mode

    rng = np.random.default_rng(0)
    points = [start] + [start + rng.normal(0.0, 0.3, start.shape) for _ in range(CHECK_POINTS - 1)]
    reference = pytensor.function(inputs, outputs, mode="FAST_COMPILE", on_unused_input="ignore")
    expected = [reference(x, *arrays) for x in points]
    tried = []
    for label, mode in (("numba", get_mode("NUMBA")), ("numba without fusion", get_mode("NUMBA").excluding("fusion"))):
        compiled = pytensor.function(inputs, outputs, mode=mode, on_unused_input="ignore")
        if all(_agree(compiled(x, *arrays), want) for x, want in zip(points, expected)):
            return mode, compiled
        tried.append(label)
    raise RuntimeError(f"structure {key}: the compiled log density differs from PyTensor's reference evaluation "
                       f"({', '.join(tried)})")


def _agree(got: list, want: list) -> bool:
    """Equal log density and gradient, to rounding (equal where not finite)."""
    for a, b in zip(got, want):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        finite = np.isfinite(b)
        if not np.array_equal(np.isfinite(a), finite) or not np.allclose(a[finite], b[finite], rtol=1e-7, atol=1e-9):
            return False
    return True


def _without_draws(starts: list) -> list:
    """PyMC's starting-point graph with each random draw in it replaced by zeros of the draw's shape.

    A support point may be written in terms of its variable's draw for the shape alone: ZeroSumNormal's is
    ``zeros_like(draw)``. Compiled as it is, the graph would take a random generator as an input, which a C
    callback cannot be given. The shapes are the structure's (part of its key), so they are constants here;
    :func:`_check_start` then confirms that the compiled start equals PyMC's, which a value that did depend
    on a draw would not.
    """
    import pytensor
    import pytensor.tensor as pt
    from pymc.distributions.distribution import SymbolicRandomVariable
    from pytensor.graph.traversal import graph_inputs, io_toposort
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.type import TensorType

    draws = [output for node in io_toposort(list(graph_inputs(starts)), starts)
             if isinstance(node.op, (RandomVariable, SymbolicRandomVariable))
             for output in node.outputs if isinstance(output.type, TensorType)]
    if not draws:
        return starts
    shapes = pytensor.function([], [draw.shape for draw in draws], mode="FAST_COMPILE")()
    return pytensor.clone_replace(starts, {draw: pt.zeros(tuple(int(n) for n in shape), dtype=draw.dtype)
                                           for draw, shape in zip(draws, shapes)})


def _check_start(native: NativeModel, values: Mapping[str, np.ndarray], expected: np.ndarray) -> None:
    """Refuse a compiled starting point that differs from PyMC's on the compiling run's data."""
    computed = native.support_point(ModelData.pack(native.layout, values))
    if not np.allclose(computed, expected, rtol=1e-10, atol=1e-12):
        raise RuntimeError(f"structure {native.layout.key}: the compiled starting point {computed.tolist()} "
                           f"differs from PyMC's {expected.tolist()}")


def _start_inputs(model: "pm.Model", starts: list, inputs: list) -> dict:
    """What replaces the shared variables of PyMC's starting-point graph (which holds copies of the model's,
    so they are matched by name).

    A data array becomes the compiled function's input of the same name (``inputs``); a dimension's length
    becomes a constant, since the structure's sizes are part of its key.
    """
    import pytensor.tensor as pt
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    by_name = {variable.name: variable for variable in inputs}
    replace = {}
    for variable in graph_inputs(starts):
        if not isinstance(variable, SharedVariable):
            continue
        if variable.name in by_name:
            replace[variable] = by_name[variable.name]
        elif variable.name in model.dim_lengths:
            replace[variable] = pt.constant(variable.get_value(), name=variable.name)
        else:
            raise RuntimeError(f"the starting point depends on {variable.name!r}, neither data nor a dimension")
    return replace


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
