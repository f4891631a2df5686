"""Special functions for the numba backend that numba can cache on disk.

PyTensor's numba backend calls ``gammaln``, ``psi`` (digamma), ``erf`` and ``erfc`` through function
pointers into SciPy's Cython module. Numba refuses to cache a function that holds such a pointer (a "dynamic
global"), so every model using one — the negative binomial's ``gammaln(y + alpha)`` and its gradient's
``psi`` — was compiled again in every process, although the rest of its sampler came from the disk cache.
Registering native implementations for these four scalar operations makes those models cacheable like the
others. ``gammaln``, ``erf`` and ``erfc`` are the C library's (``math``); digamma is computed here (recurrence
up to x >= 10, then the asymptotic series), within a few 1e-15 of SciPy's.

:func:`register` is called before a model structure is compiled (:mod:`bayes_ab.models.compiled`); it is
idempotent and only changes how PyTensor lowers these operations to numba in this process.
"""

from __future__ import annotations

import math

_REGISTERED = False
_CACHE_KEY_VERSION = "bayes-ab-special-1"

# Bernoulli-number coefficients of digamma's asymptotic series: B_2k / (2k) for k = 1..7
_DIGAMMA_SERIES = (1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132, -691.0 / 32760, 1.0 / 12)


def digamma(x: float) -> float:
    """psi(x) = d/dx log Gamma(x), for any real x that is not 0 or a negative integer (NaN there)."""
    if math.isnan(x):
        return x
    shift = 0.0
    if x <= 0.0:
        if x == math.floor(x):
            return math.nan
        # reflection: psi(x) = psi(1 - x) - pi / tan(pi x) (no recursion: numba compiles this function alone)
        shift = -math.pi / math.tan(math.pi * x)
        x = 1.0 - x
    while x < 10.0:
        shift -= 1.0 / x
        x += 1.0
    inverse_square = 1.0 / (x * x)
    series = 0.0
    power = inverse_square
    for coefficient in _DIGAMMA_SERIES:
        series += coefficient * power
        power *= inverse_square
    return shift + math.log(x) - 0.5 / x - series


def register() -> None:
    """Make PyTensor lower GammaLn, Psi, Erf and Erfc to native numba code (cacheable)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_and_cache_key
    from pytensor.link.numba.dispatch.scalar import numba_funcify_ScalarOp
    from pytensor.scalar.math import Erf, Erfc, GammaLn, Psi

    native_digamma = numba_njit(digamma)

    def gammaln(x):
        return math.lgamma(float(x))

    def erf(x):
        return math.erf(float(x))

    def erfc(x):
        return math.erfc(float(x))

    def psi(x):
        return native_digamma(float(x))

    implementations = {GammaLn: gammaln, Erf: erf, Erfc: erfc, Psi: psi}
    for op_type, function in implementations.items():
        native = numba_njit(function)

        def lower(op, node, _native=native, _name=op_type.__name__, **kwargs):
            inputs_ok = all(str(v.type.dtype) == "float64" or str(v.type.dtype).startswith(("int", "uint"))
                            for v in node.inputs)
            if not inputs_ok or any(str(v.type.dtype) != "float64" for v in node.outputs):
                return numba_funcify_ScalarOp(op, node, **kwargs)       # PyTensor's own (SciPy) version
            return _native, f"{_CACHE_KEY_VERSION}-{_name}"

        register_funcify_and_cache_key(op_type)(lower)
    _REGISTERED = True
