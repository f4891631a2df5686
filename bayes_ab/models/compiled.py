"""A family's model compiled once per structure *and machine*: the sampler's native code is cached on disk.

Check-ins run as separate processes (cron, notebook, CI), so an in-process cache alone leaves every command
paying the model's compilation (≈ 15–25 s per model with numba). Here a model structure — family, likelihood
variant, the classes of its arm/segment/day sizes (what its builder branches on), the data arrays' names, types
and ranks, and the exact code and library versions that produce its graph — is hashed into a key. The first
process to meet a key builds the PyMC graph, compiles it to numba through PyTensor and writes:

- ``<cache>/<key>/callbacks.py``: the generated C callbacks (:mod:`bayes_ab.models.native`), whose machine
  code numba caches beside it;
- ``<cache>/<key>/layout.json``: what the sampler needs besides the code (traced names, shapes, dims and the
  data arrays' order).

Any later process with the same key loads both in well under a second, without building the PyMC graph. Data
(including the effect priors, which are data of the model rather than part of its identity) reach the code
through addresses in ``user_data``, so new data of any size never recompile, and a changed model can never be
served stale: its source, and therefore its key, differ. A structure compiled *size-free* (``bayes-ab warmup``)
reads the lengths of the model's dimensions as data too, so a new experiment with other arm, segment or day
counts of the same class loads it; whether a model is size-free is found out at compile time (:func:`_axes`),
and one that is not is compiled for its sizes (:func:`sized_key`), as an analysis compiles a missing structure.
The starting point is compiled too and computed from each run's data: it depends on the priors, so a value stored
by the compiling run would make the draws for one seed depend on which run compiled the structure first.
``BAYES_AB_CACHE_DIR`` chooses the cache directory (default ``$XDG_CACHE_HOME/bayes-ab`` or
``~/.cache/bayes-ab``); deleting it is always safe.
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


def structure_key(family: str, variant: str, sizes: Mapping[str, int | str], data: Mapping[str, np.ndarray]) -> str:
    """The identity of a compiled model: what its code depends on, and nothing its data can change.

    ``sizes`` are what the model's builder branches on of the dimensions its parameters are indexed by (arm,
    segment, day): their classes (``bayes_ab.models.hierarchy.size_classes``) -- lengths themselves are data of
    a size-free structure, and part of the entry of one that is not (:func:`native_model`). Data arrays enter
    by name, type and rank only (their sizes and values are read at run time).
    """
    parts = {
        "family": family,
        "variant": variant,
        "sizes": sorted((str(k), str(v)) for k, v in sizes.items()),
        "data": sorted((name, np.asarray(v).dtype.str, np.ndim(v)) for name, v in data.items()),
        "code": _code_version(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


Axis = int | tuple[str, int]
"""One axis of a traced quantity's shape: a fixed length, or ``(dimension, offset)`` -- the dimension's length
in the run plus a fixed offset (a zero-sum variable's unconstrained form has one element fewer)."""
DIMENSION_PREFIX = "dimension:"
"""Model data holding a dimension's length (a rank-0 int64 array per dimension the structure is sized by)."""


@dataclass(frozen=True)
class Layout:
    """Everything the sampler needs about a compiled structure besides its code (stored as JSON).

    A structure is *size-free* (``fixed_sizes`` is ``None``) when every traced quantity's shape is written in its
    model's dimensions: one compilation then serves every arm, segment and day count, the lengths reaching the
    code as data (:data:`DIMENSION_PREFIX`). A model with a quantity sized otherwise is compiled for its sizes
    only, which ``fixed_sizes`` records and :meth:`ModelData.pack` holds every run to.
    """

    key: str
    names: tuple[str, ...]
    """Traced arrays in expansion order: the unconstrained parameters first, then every other quantity."""
    axes: tuple[tuple[Any, ...], ...]
    """Each traced array's shape, axis by axis (:data:`Axis`)."""
    n_unconstrained: int
    """How many of ``names`` are unconstrained parameters."""
    dims: dict[str, tuple[str, ...]]
    coords: dict[str, list[Any]]
    """The compiling run's labels: the default of a dimension a run does not label."""
    data: tuple[tuple[str, str, int], ...]
    """The data arrays in call order: name, dtype, rank (the dimensions' lengths among them)."""
    parameters: tuple[str, ...]
    """The free random variables (their R-hat is part of the diagnostics)."""
    fixed_sizes: dict[str, int] | None = None
    """The only dimension lengths this structure serves; ``None``: any."""

    def lengths(self, coords: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Each dimension's length for a run labelled ``coords`` (the compiling run's labels where it has none)."""
        return {dim: len(labels) for dim, labels in {**self.coords, **dict(coords or {})}.items()
                if dim in self.coords}

    def shapes_for(self, lengths: Mapping[str, int]) -> tuple[tuple[int, ...], ...]:
        """Every traced array's shape at these dimension lengths."""
        return tuple(tuple(axis if isinstance(axis, int) else lengths[axis[0]] + axis[1] for axis in shape)
                     for shape in self.axes)

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shapes of the compiling run."""
        return self.shapes_for(self.lengths())

    def counts(self, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
        """How many unconstrained parameters and traced values the arrays of ``shapes`` (:meth:`shapes_for`) hold."""
        return (sum(math.prod(shape) for shape in shapes[:self.n_unconstrained]),
                sum(math.prod(shape) for shape in shapes))

    @property
    def n_dim(self) -> int:
        return self.counts(self.shapes)[0]

    @property
    def n_expanded(self) -> int:
        return self.counts(self.shapes)[1]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Layout":
        raw = json.loads(text)
        return cls(key=raw["key"], names=tuple(raw["names"]),
                   axes=tuple(tuple(a if isinstance(a, int) else (str(a[0]), int(a[1])) for a in shape)
                              for shape in raw["axes"]),
                   n_unconstrained=raw["n_unconstrained"],
                   dims={k: tuple(v) for k, v in raw["dims"].items()}, coords=raw["coords"],
                   data=tuple((n, d, int(r)) for n, d, r in raw["data"]), parameters=tuple(raw["parameters"]),
                   fixed_sizes=raw["fixed_sizes"])


@dataclass(frozen=True)
class ModelData:
    """A run's data arrays in the layout's order, and the ``user_data`` words the callbacks read them through.

    ``user_data`` holds, per array, its address and then its sizes, and last the run's number of unconstrained
    parameters and of traced values; the arrays are kept here (read-only) so the addresses stay valid for as
    long as this object lives.
    """

    arrays: dict[str, np.ndarray]
    user_data: np.ndarray
    shapes: tuple[tuple[int, ...], ...]
    """The traced arrays' shapes for this run."""
    n_dim: int
    n_expanded: int

    @classmethod
    def pack(cls, layout: Layout, data: Mapping[str, np.ndarray],
             coords: Mapping[str, Any] | None = None) -> "ModelData":
        """``data`` checked against the layout (every array present, of the compiled rank) and laid out, with the
        dimensions' lengths of a run labelled ``coords`` (the compiling run's where a dimension has none).

        Raises
        ------
        KeyError, ValueError
            An array is missing or of another rank; a structure compiled for fixed sizes meets others.
        """
        lengths = layout.lengths(coords)
        if layout.fixed_sizes is not None and any(lengths.get(d) != n for d, n in layout.fixed_sizes.items()):
            raise ValueError(f"structure {layout.key} was compiled for the sizes {layout.fixed_sizes}, not {lengths}")
        given = {**data, **{f"{DIMENSION_PREFIX}{dim}": np.asarray(n, dtype="int64") for dim, n in lengths.items()}}
        arrays, words = {}, []
        for name, dtype, ndim in layout.data:
            if name not in given:
                raise KeyError(f"model data {name!r} missing")
            array = np.array(given[name], dtype=dtype, order="C", copy=True)
            if array.ndim != ndim:
                raise ValueError(f"model data {name!r} has rank {array.ndim}, the compiled model expects {ndim}")
            array.flags.writeable = False
            arrays[name] = array
            words += [array.ctypes.data, *array.shape]
        shapes = layout.shapes_for(lengths)
        n_dim, n_expanded = layout.counts(shapes)
        return cls(arrays, np.array(words + [n_dim, n_expanded], dtype=np.uint64), shapes, n_dim, n_expanded)

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

    def log_density(self, data: ModelData, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The log density and its gradient at the unconstrained point ``x``, as the sampler gets them (NaN where
        the callback reports a failure other than a non-finite value)."""
        x = np.ascontiguousarray(x, dtype=float)
        gradient, value = np.full(data.n_dim, np.nan), np.full(1, np.nan)
        double = ctypes.POINTER(ctypes.c_double)
        status = self.logp_callback.ctypes(data.n_dim, x.ctypes.data_as(double), gradient.ctypes.data_as(double),
                                           value.ctypes.data_as(double), data.address)
        if status not in (0, 3, 4):
            return math.nan, np.full(data.n_dim, np.nan)
        return float(value[0]), gradient

    def support_point(self, data: ModelData) -> np.ndarray:
        """PyMC's starting point for this data: each free variable's support point, unconstrained, unjittered."""
        out = np.empty(data.n_dim)
        pointer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        status = self.initial_callback.ctypes(data.n_dim, pointer, data.address)
        if status != 0:
            raise RuntimeError(f"the model's starting point could not be computed (status {status})")
        return out


def native_model(key: str, build: Callable[[], "pm.Model"], sizes: Mapping[str, int] | None = None,
                 static: Mapping[str, int] | None = None, size_free: bool = False) -> NativeModel:
    """The compiled structure ``key``: loaded from the cache, or built with ``build()``, compiled and cached.

    ``key`` names the structure whatever its sizes (:func:`structure_key` of the sizes' classes); ``sizes`` are
    the run's dimension lengths. A size-free entry, stored under ``key``, serves every size and is used wherever
    it exists; else the entry compiled for these sizes (:func:`sized_key`). What a miss compiles:

    - ``size_free=False`` (an analysis): the model at these sizes, every dimension's length a constant. Why not
      size-free: numba compiles code whose shapes it knows faster, and an analysis waits for it (Group Stories'
      first run, 8 metrics: 58.9 s compiled size-free against 29.9 s).
    - ``size_free=True`` (``bayes-ab warmup``, which an image build or a scheduler pays once): the lengths are
      data -- but those in ``static``, which the class itself fixes (one treatment beside one control: with every
      length symbolic the mean family's structure took 28-34 s against 12-15 s) -- so the entry serves every
      later experiment of the class. A model that turns out not to be size-free (:func:`_axes`) is compiled for
      its sizes instead. This lookup ignores entries compiled for one size: warming up replaces them.

    A damaged or partial cache entry (a killed process, a full disk) is rebuilt, never trusted.
    """
    sizes = dict(sizes or {})
    for entry in (key,) if size_free else dict.fromkeys((key, sized_key(key, sizes))):
        native = _load(entry)
        if native is not None and (native.layout.fixed_sizes is None or native.layout.fixed_sizes == sizes):
            return native
    return _compile(key, sizes, build(), static or {}, size_free)


def has_entry(key: str, sizes: Mapping[str, int]) -> bool:
    """Whether the disk cache holds an entry :func:`native_model` would try for structure ``key`` at ``sizes``
    (size-free, or compiled for these sizes), without loading it: a complete entry has its layout file."""
    return any((cache_root() / entry / LAYOUT_FILE).exists() for entry in (key, sized_key(key, sizes)))


def sized_key(key: str, sizes: Mapping[str, int]) -> str:
    """The entry of structure ``key`` compiled for exactly ``sizes`` (a model that is not size-free); a structure
    without dimensions has one size, and its entry is ``key``."""
    if not sizes:
        return key
    digest = hashlib.sha256(json.dumps(sorted(sizes.items())).encode()).hexdigest()[:8]
    return f"{key}-{digest}"


def _load(entry: str) -> NativeModel | None:
    """The cached entry ``entry``, or ``None`` when it is absent or damaged."""
    layout_path = cache_root() / entry / LAYOUT_FILE
    if not layout_path.exists():
        return None
    try:
        layout = Layout.from_json(layout_path.read_text())
        module = _import_callbacks(entry, cache_root() / entry / CALLBACKS_FILE)
        native = _callbacks(layout, module, compiled=False)
    except Exception:   # noqa: BLE001 -- any failure to load means: compile afresh
        return None
    _touch(layout_path)
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


def _compile(key: str, sizes: Mapping[str, int], model: "pm.Model", static: Mapping[str, int],
             size_free: bool) -> NativeModel:
    """Compile ``model`` and cache it: size-free under ``key`` when asked and it is (:func:`_axes`; ``static``:
    lengths that are constants in any case), else for ``sizes``, every dimension's length a constant."""
    import pytensor
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_expression
    from pytensor.compile.mode import get_mode
    from pytensor.compile.sharedvalue import SharedVariable

    from bayes_ab.models import special

    special.register()
    value_vars = list(model.value_vars)
    # PyMC's default start (as pm.sample and nutpie use it), kept as a graph of the data: priors are data
    starts = make_initial_point_expression(free_rvs=model.free_RVs, rvs_to_transforms=model.rvs_to_transforms,
                                           initval_strategies=model.rvs_to_initial_values, jitter_rvs=set(),
                                           return_transformed=True)
    start = dict(zip((v.name for v in value_vars),
                     pytensor.function([], starts, mode=_python_mode(), on_unused_input="ignore")()))
    starts = _without_draws(starts)
    shared = sorted((v for v in model.named_vars.values() if isinstance(v, SharedVariable)), key=lambda v: v.name)
    dimensions = {name: var for name, var in sorted(model.dim_lengths.items()) if isinstance(var, SharedVariable)}
    values = {v.name: np.asarray(v.get_value()) for v in shared}
    names_unconstrained = {v.name for v in value_vars}
    others = [v for v in model.unobserved_value_vars if v.name not in names_unconstrained]
    axes = None
    if size_free:
        inputs, by_name, arrays, replace_inputs, starts_out = _inputs(shared, dimensions, static, values, starts)
        axes = _axes(model, inputs, arrays, starts_out, value_vars, others, replace_inputs)
    fixed = axes is None
    if fixed:       # every length a constant: shapes as the compiling run has them, for these sizes only
        constants = {name: int(var.get_value()) for name, var in dimensions.items()}
        inputs, by_name, arrays, replace_inputs, starts_out = _inputs(shared, dimensions, constants, values, starts)
        shape_fn = pytensor.function(value_vars, [v.shape for v in others], mode=_python_mode(),
                                     on_unused_input="ignore")
        other_shapes = [tuple(int(x) for x in shape) for shape in shape_fn(*[start[v.name] for v in value_vars])]
        axes = [tuple(int(x) for x in np.shape(start[v.name])) for v in value_vars] + other_shapes
    entry = sized_key(key, sizes) if fixed else key
    directory = cache_root() / entry
    writable = _writable(directory)
    if not writable:
        directory = _process_directory(entry)

    logp = pytensor.graph.rewrite_graph(model.logp(), include=("canonicalize", "stabilize"))
    gradient = pt.concatenate([g.ravel() for g in pytensor.grad(logp, value_vars)])
    point = pt.TensorType("float64", shape=(None,))("unconstrained_point")
    replace, offset = dict(replace_inputs), 0
    for var, shape in zip(value_vars, axes):
        symbolic = [axis if isinstance(axis, int) else by_name[f"{DIMENSION_PREFIX}{axis[0]}"] + axis[1]
                    for axis in shape]
        size = pt.prod(pt.stack(symbolic)) if symbolic else 1
        replace[var] = point[offset:offset + size].reshape(symbolic, ndim=len(symbolic)).astype(var.dtype)
        offset = offset + size
    logp_out, gradient_out, *others_out = pytensor.clone_replace([logp, gradient, *others], replace)
    expanded = pt.concatenate([point, *[pt.as_tensor(v).ravel() for v in others_out]])
    initial = pt.concatenate([pt.as_tensor(v).ravel().astype("float64") for v in starts_out])
    start_point = np.concatenate([np.ravel(start[v.name]) for v in value_vars])
    layout = Layout(
        key=entry,
        names=tuple([v.name for v in value_vars] + [v.name for v in others]),
        axes=tuple(tuple(shape) for shape in axes), n_unconstrained=len(value_vars),
        dims={name: tuple(d) for name, d in model.named_vars_to_dims.items() if d},
        coords={name: [_plain(x) for x in values_] for name, values_ in model.coords.items()
                if values_ is not None},
        data=tuple((v.name, arrays[v.name].dtype.name, v.type.ndim) for v in inputs),
        parameters=tuple(rv.name for rv in model.free_RVs),
        fixed_sizes=dict(sizes) if fixed else None,
    )
    points, expected = _reference(point, inputs, [logp_out, gradient_out], start_point, arrays)
    tried = []
    for label, excluded in CHECK_MODES:
        mode = get_mode("NUMBA").excluding(*excluded)
        functions = [pytensor.function(arguments, outputs, mode=mode, on_unused_input="ignore")
                     for arguments, outputs in (([point, *inputs], [logp_out, gradient_out]),
                                                ([point, *inputs], [expanded]), (inputs, [initial]))]
        native = _compiled_callbacks(entry, directory, layout, label, functions)
        if _agrees(native, arrays, points, expected):
            break
        tried.append(label)
    else:
        raise RuntimeError(f"structure {entry}: the compiled log density differs from PyTensor's reference "
                           f"evaluation ({', '.join(tried)})")
    _check_start(native, arrays, start_point)
    write_atomically(directory / LAYOUT_FILE, lambda tmp: tmp.write_text(layout.to_json()))    # last: a layout marks a complete entry
    if writable:
        _prune(cache_root(), keep=entry)
    return native


def _inputs(shared: list, dimensions: Mapping, static: Mapping[str, int], values: Mapping,
            starts: list) -> tuple[list, dict, dict, dict, list]:
    """The compiled functions' inputs -- the data arrays (``values`` by name), then the lengths of the dimensions
    not in ``static`` -- and by name, with the arrays they take on the compiling run; what replaces the model's
    shared variables (a length in ``static`` by its constant); and the starting point's graph in them."""
    import pytensor
    import pytensor.tensor as pt

    lengths = {name: var for name, var in dimensions.items() if name not in static}
    inputs = ([pt.TensorType(v.type.dtype, shape=(None,) * v.type.ndim)(v.name) for v in shared]
              + [pt.scalar(f"{DIMENSION_PREFIX}{name}", dtype="int64") for name in lengths])
    by_name = {variable.name: variable for variable in inputs}
    arrays = {**{v.name: values[v.name] for v in shared},
              **{f"{DIMENSION_PREFIX}{name}": np.asarray(var.get_value(), dtype="int64")
                 for name, var in lengths.items()}}
    # each dimension once: an input, or the class's constant; the model's graphs and the start's copies share them
    dimension = {name: (pt.constant(np.int64(static[name]), name=name) if name in static
                        else by_name[f"{DIMENSION_PREFIX}{name}"]) for name in dimensions}
    replace = {**dict(zip(shared, inputs)), **{var: dimension[name] for name, var in dimensions.items()}}
    starts_out = pytensor.clone_replace(starts, _start_inputs(starts, by_name, dimension))
    return inputs, by_name, arrays, replace, starts_out


PERTURBATIONS = (2, 3, 5, 7, 11, 13, 17, 19)
"""How much :func:`_axes` lengthens each dimension (one prime each, so an axis's change names its dimension)."""
TIED_DIMENSIONS = (("arm", "treatment"),)
"""Dimensions whose lengths move together: a model's treatments are its arms but the control. :func:`_axes`
lengthens them by one step (data shaped by one and parameters by the other must still broadcast), and an axis
that moves with them is written in the first."""


def _axes(model: "pm.Model", inputs: list, values: Mapping[str, np.ndarray], starts: list, value_vars: list,
          others: list, replace_inputs: Mapping) -> list[tuple[Axis, ...]] | None:
    """Every traced quantity's shape written in the model's dimensions, or ``None`` when one is not.

    Why by evaluation rather than by reading the graph: a shape is whatever the graph computes, and a model may
    size a quantity by a data array or a Python number as well as by a dimension. The shapes are computed (with
    PyTensor's shape rewrites, so no value is) three times: for the compiling run's data; with every dimension
    lengthened by its own prime (arrays declared with dims resized to match); and with every other data array one
    element longer on each axis. An axis that does not move is fixed; one that moves with exactly one dimension
    is that dimension plus an offset; anything else -- a quantity sized by a data array's length, a product of
    two dimensions, a shape that cannot be computed apart from the data -- makes the model not size-free, and it
    is compiled for its sizes only. Never guessed: a wrong axis would serve draws of the wrong length.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    dims_of = model.named_vars_to_dims
    lengths = {name[len(DIMENSION_PREFIX):]: int(v) for name, v in values.items() if name.startswith(DIMENSION_PREFIX)}
    mode = Mode(linker="py", optimizer="fast_run").excluding("BlasOpt")
    try:
        start_shapes = [pt.as_tensor(s).shape for s in starts]
        values_in = [pt.TensorType(v.dtype, shape=(None,) * v.ndim)(v.name) for v in value_vars]
        others_out = pytensor.clone_replace(others, {**replace_inputs, **dict(zip(value_vars, values_in))})
        start_fn = pytensor.function(inputs, start_shapes, mode=mode, on_unused_input="ignore")
        other_fn = pytensor.function([*inputs, *values_in], [pt.as_tensor(v).shape for v in others_out], mode=mode,
                                     on_unused_input="ignore")

        def shapes(arrays: dict) -> list[tuple[int, ...]]:
            start_shape = [tuple(int(x) for x in s) for s in start_fn(*[arrays[v.name] for v in inputs])]
            zeros = [np.zeros(s, dtype=v.dtype) for s, v in zip(start_shape, value_vars)]
            return start_shape + [tuple(int(x) for x in s)
                                  for s in other_fn(*[arrays[v.name] for v in inputs], *zeros)]

        groups = [tuple(d for d in tied if d in lengths) for tied in TIED_DIMENSIONS]
        groups = [g for g in groups if g] + [(d,) for d in lengths if not any(d in tied for tied in TIED_DIMENSIONS)]
        if len(groups) > len(PERTURBATIONS):
            return None
        delta = {d: step for group, step in zip(groups, PERTURBATIONS) for d in group}
        longer_dims = {}
        for name, array in values.items():
            if name.startswith(DIMENSION_PREFIX):
                longer_dims[name] = np.asarray(int(array) + delta[name[len(DIMENSION_PREFIX):]], dtype="int64")
            elif dims_of.get(name) and len(dims_of[name]) == np.ndim(array):
                longer_dims[name] = np.zeros([n + delta.get(d, 0) for n, d in zip(np.shape(array), dims_of[name])],
                                             dtype=array.dtype)
            else:
                longer_dims[name] = array
        longer_data = {name: (array if name.startswith(DIMENSION_PREFIX) or dims_of.get(name)
                              else np.zeros([n + 1 for n in np.shape(array)], dtype=array.dtype))
                       for name, array in values.items()}
        base, moved, other = shapes(dict(values)), shapes(longer_dims), shapes(longer_data)
    except Exception:   # noqa: BLE001 -- shapes that cannot be computed apart from the data: not size-free
        return None
    axes = []
    for shape_base, shape_moved, shape_other in zip(base, moved, other):
        if not len(shape_base) == len(shape_moved) == len(shape_other):
            return None
        entry = []
        for n, m, o in zip(shape_base, shape_moved, shape_other):
            if o != n:
                return None
            if m == n:
                entry.append(n)
                continue
            group = [g for g, step in zip(groups, PERTURBATIONS) if m - n == step]
            if len(group) != 1:
                return None
            entry.append((group[0][0], n - lengths[group[0][0]]))
        axes.append(tuple(entry))
    return axes


CHECK_POINTS = 3
"""Points at which a compiled log density and gradient are checked against PyTensor's reference evaluation:
the starting point and jittered copies of it."""
CHECK_MODES = (("numba", ()), ("numba without fusion", ("fusion",)))
"""PyTensor's numba modes a structure is compiled in, in order, until its log density agrees with the reference
(by label, and the rewrites the mode leaves out)."""


def _python_mode():
    """PyTensor's reference evaluation, for the values a compilation needs once (the starting point, shapes, the
    check of the compiled density): each op's Python implementation after PyTensor's light ``fast_compile``
    rewrites. Its default (``FAST_COMPILE``) runs C implementations where a C compiler is found: it compiles
    and loads a C module per op type, 0.3 s to evaluate a 3-arm mean's density on a warm PyTensor cache, and
    on an empty one (an image build) compiles them first."""
    from pytensor.compile.mode import Mode

    return Mode(linker="py", optimizer="fast_compile")


def _reference(point, inputs: list, outputs: list, start: np.ndarray,
               arrays: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[list]]:
    """The :data:`CHECK_POINTS` points and the log density and gradient PyTensor's reference (Python)
    evaluation gives at each, on the compiling run's data."""
    import pytensor

    rng = np.random.default_rng(0)
    points = [start] + [start + rng.normal(0.0, 0.3, start.shape) for _ in range(CHECK_POINTS - 1)]
    reference = pytensor.function([point, *inputs], outputs, mode=_python_mode(), on_unused_input="ignore")
    return points, [reference(x, *[arrays[v.name] for v in inputs]) for x in points]


def _compiled_callbacks(entry: str, directory: Path, layout: "Layout", mode: str, functions: list) -> "NativeModel":
    """The structure's C callbacks compiled (and cached by numba) around ``functions``, PyTensor's log density
    with gradient, expansion and starting point compiled in ``mode``.

    A wrong compiled density gives no error, only a wrong posterior: the first form of the mean family's
    marginalised hierarchy (0.2) wrote an empty cell's variance as ``(1 - present) * 1e12``, PyTensor's numba
    rewrites expanded it into a difference of 1e12-sized terms, and the density came out -inf or off by about
    1 (a control mean of 0.09 sampled where the data said 0.65) while PyTensor's own evaluation was right.
    So the callbacks returned are checked (:func:`_agrees`) before the entry is marked complete, and compiled
    again in the next of :data:`CHECK_MODES` (without fusion, which avoided that case) before it is refused.
    The check runs the callbacks themselves: the code the sampler will run, compiled once.
    """
    from bayes_ab.models.native import wrapper_source

    source = wrapper_source(entry, list(layout.data), mode)
    callbacks_path = directory / CALLBACKS_FILE
    if not callbacks_path.exists() or callbacks_path.read_text() != source:
        write_atomically(callbacks_path, lambda tmp: tmp.write_text(source))
    _whole_second_mtime(callbacks_path)
    sys.modules.pop(f"bayes_ab_native_{entry}", None)
    module = _import_callbacks(entry, callbacks_path)
    module.logp_inner, module.expand_inner, module.initial_inner = (inlined(f.vm.jit_fn) for f in functions)
    return _callbacks(layout, module, compiled=True)


def inlined(dispatcher):
    """PyTensor's compiled function as a numba function inlined into its caller, so that the callbacks are the only
    function numba compiles the model's code in (:mod:`bayes_ab.models.native`).

    With numba's cache on, PyTensor wraps the function it generates from a graph in another,
    ``def fgraph(*args): return jitable_func(*args)``, and compiles both; each is optimised by LLVM and turned into
    machine code, and again inside each caller (3-arm mean: 51 s of LLVM, 17 s when inlined). The generated
    function (``jitable_func``, its parameters named) is what is inlined. Built on that wrapper's layout in the
    pinned PyTensor; where a release lays it out otherwise -- no ``jitable_func``, or a ``*args`` function left --
    the dispatcher is returned as it is: the same code, compiled the slower way.
    """
    import inspect

    import numba

    def takes_star_args(f) -> bool:
        return bool(f.__code__.co_flags & inspect.CO_VARARGS)

    function = getattr(dispatcher, "py_func", None)
    inner = None if function is None else function.__globals__.get("jitable_func")
    if inner is not None and getattr(inner, "py_func", None) is not None and takes_star_args(function):
        function, dispatcher = inner.py_func, inner
    if function is None or takes_star_args(function):
        return dispatcher       # numba cannot inline a ``*args`` function
    options = {k: v for k, v in getattr(dispatcher, "targetoptions", {}).items() if k in ("fastmath", "boundscheck")}
    return numba.njit(function, inline="always", no_cpython_wrapper=True, no_cfunc_wrapper=True, **options)


def _agrees(native: "NativeModel", values: Mapping[str, np.ndarray], points: list[np.ndarray],
            expected: list[list]) -> bool:
    """Whether the compiled log density and gradient equal the reference's at every point (to rounding)."""
    data = ModelData.pack(native.layout, values)
    return all(_agree(native.log_density(data, x), want) for x, want in zip(points, expected))


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
    callback cannot be given. The draw's shape is rewritten in terms of what sizes it (a dimension's length)
    where PyTensor's shape rewrites can, else taken as the compiling run's constant (the structure is then not
    size-free: :func:`_axes` sees a start that does not follow its dimension); :func:`_check_start` then confirms
    that the compiled start equals PyMC's, which a value that did depend on a draw would not.
    """
    import pytensor
    import pytensor.tensor as pt
    from pymc.distributions.distribution import SymbolicRandomVariable
    from pytensor.graph.traversal import graph_inputs, io_toposort
    from pytensor.tensor.random.op import RandomVariable
    from pytensor.tensor.random.type import RandomType
    from pytensor.tensor.type import TensorType

    draws = [output for node in io_toposort(list(graph_inputs(starts)), starts)
             if isinstance(node.op, (RandomVariable, SymbolicRandomVariable))
             for output in node.outputs if isinstance(output.type, TensorType)]
    if not draws:
        return starts
    replace = {}
    for draw in draws:
        shape = pytensor.graph.rewrite_graph(draw.shape, include=("canonicalize", "ShapeOpt"))
        if any(isinstance(v.type, RandomType) for v in graph_inputs([shape])):
            shape = pt.as_tensor(pytensor.function([], draw.shape, mode=_python_mode())())
        replace[draw] = pt.zeros(shape, dtype=draw.dtype)
    return pytensor.clone_replace(starts, replace)


def _check_start(native: NativeModel, values: Mapping[str, np.ndarray], expected: np.ndarray) -> None:
    """Refuse a compiled starting point that differs from PyMC's on the compiling run's data."""
    computed = native.support_point(ModelData.pack(native.layout, values))
    if not np.allclose(computed, expected, rtol=1e-10, atol=1e-12):
        raise RuntimeError(f"structure {native.layout.key}: the compiled starting point {computed.tolist()} "
                           f"differs from PyMC's {expected.tolist()}")


def _start_inputs(starts: list, by_name: Mapping[str, Any], dimension: Mapping[str, Any]) -> dict:
    """What replaces the shared variables of PyMC's starting-point graph (which holds copies of the model's,
    so they are matched by name): a dimension's length its input or constant (``dimension``, by dimension), a data
    array the compiled function's input of that name (``by_name``)."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import graph_inputs

    replace = {}
    for variable in graph_inputs(starts):
        if not isinstance(variable, SharedVariable):
            continue
        if variable.name in dimension:
            replace[variable] = dimension[variable.name]
        elif variable.name in by_name:
            replace[variable] = by_name[variable.name]
        else:
            raise RuntimeError(f"the starting point depends on {variable.name!r}, neither data nor a dimension")
    return replace


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
