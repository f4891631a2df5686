"""A fit's groups written as one netCDF-4 file with h5py directly, in the layout xarray's ``h5netcdf`` writer makes.

Why: a check-in writes every metric's posterior, and xarray's writer spent ~0.13 s on each (Group Stories: 1 s of
a 6 s warm run) in h5netcdf's per-variable bookkeeping -- thousands of HDF5 name lookups while it attaches
dimension scales -- against ~0.01 s for the same arrays written here. The file is what ``arviz.from_netcdf``,
``xarray.open_dataset(..., group=...)`` and netCDF-C read: one HDF5 group per Dataset, each dimension a dimension
scale (a coordinate variable itself, or a hidden placeholder for a dimension without one) attached to every
variable over it, netCDF-4's ``_Netcdf4Dimid`` / ``_Netcdf4Coordinates`` attributes, creation order tracked, and
xarray's CF encoding of the value types a fit holds (floats with a NaN ``_FillValue``, booleans as int8 marked
``dtype: bool``, strings as variable-length UTF-8).

Anything else -- another value type, a coordinate that is not a dimension's, an encoding a Dataset carries from a
file it was read from, an attribute that is not a string or number -- is written by xarray's own writer
(:func:`write_with_xarray`), so no Dataset is ever written differently from how xarray would write it.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import xarray as xr

NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable."
"""The scale name netCDF-4 gives a dimension that has no coordinate variable (followed by its length)."""
HARMLESS_ENCODING = frozenset({"source", "original_shape", "contiguous", "chunksizes", "preferred_chunks",
                               "_FillValue", "dtype"})
"""Encoding keys a Dataset read from a netCDF file carries that change no value written here (a ``dtype`` only
when it is the variable's own, a ``_FillValue`` only when NaN on floats: checked)."""
FILTERS = frozenset({"zlib", "complevel", "compression", "compression_opts", "shuffle", "fletcher32", "szip",
                     "bzip2", "blosc", "zstd"})
"""Compression encodings: harmless when off (as read from an uncompressed file); a Dataset that asks for one is
written by xarray."""


def write_groups(path: str | os.PathLike, datasets: Mapping[str, xr.Dataset]) -> str:
    """Write each Dataset of ``datasets`` as the netCDF-4 group of its name, in order, to a new file at ``path``.

    Parameters
    ----------
    path
        The file to create (replaced if it exists).
    datasets
        Group name -> Dataset (ArviZ's group names and order, for an ``InferenceData`` layout).

    Returns
    -------
    str
        ``path``.
    """
    if not all(_writable(dataset) for dataset in datasets.values()):
        return write_with_xarray(path, datasets)
    import h5py

    with h5py.File(path, "w", track_order=True) as file:
        properties = f"version=2,bayes_ab=1,hdf5={h5py.version.hdf5_version},h5py={h5py.__version__}"
        file.attrs["_NCProperties"] = np.array(properties, dtype=h5py.string_dtype("ascii", len(properties)))
        next_id = 0
        for name, dataset in datasets.items():
            next_id = _write_group(file.create_group(name, track_order=True), dataset, next_id)
    return str(path)


def write_with_xarray(path: str | os.PathLike, datasets: Mapping[str, xr.Dataset]) -> str:
    """xarray's writer, one group after another (what :func:`write_groups` falls back to)."""
    mode = "w"
    for name, dataset in datasets.items():
        # uncompressed: MCMC draws are close to incompressible (zlib saved 8% of a posterior's size and cost a
        # fifth more time to write)
        dataset.to_netcdf(str(path), mode=mode, group=name, engine="h5netcdf")
        mode = "a"
    return str(path)


def _write_group(group, dataset: xr.Dataset, next_id: int) -> int:
    """Dimension scales first (ids from ``next_id``, unique in the file as netCDF-4 numbers them), then the data
    variables; the next free id."""
    ids, scales = {}, {}
    for dim, size in dataset.sizes.items():
        ids[dim] = next_id
        next_id += 1
        if dim in dataset.coords and dataset[dim].dims == (dim,):
            scale = _create(group, dim, dataset[dim].variable)
            scale.make_scale(dim)
        else:
            scale = group.create_dataset(dim, shape=(size,), dtype=">f4", track_order=True)
            scale.make_scale(NOT_A_VARIABLE + b"%10d" % size)
        scale.attrs["_Netcdf4Dimid"] = np.int32(ids[dim])
        scale.attrs["_Netcdf4Coordinates"] = np.array([ids[dim]], dtype=np.int32)
        scales[dim] = scale
    for name, variable in dataset.data_vars.items():
        written = _create(group, str(name), variable.variable)
        written.attrs["_Netcdf4Coordinates"] = np.array([ids[d] for d in variable.dims], dtype=np.int32)
        for axis, dim in enumerate(variable.dims):
            written.dims[axis].attach_scale(scales[dim])
    for key, value in dataset.attrs.items():
        group.attrs[key] = value
    return next_id


def _create(group, name: str, variable: xr.Variable):
    """One variable as xarray encodes it (see the module's docstring), its attributes copied."""
    import h5py

    values = variable.values
    attrs = dict(variable.attrs)
    if values.dtype.kind == "b":
        values, attrs["dtype"] = values.astype(np.int8), "bool"
    if values.dtype.kind in "OU":
        written = group.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype("utf-8"),
                                       track_order=True)
    elif values.dtype.kind == "f":
        written = group.create_dataset(name, data=values, fillvalue=np.nan, track_order=True)
        attrs["_FillValue"] = np.array([np.nan], dtype=values.dtype)
    else:
        written = group.create_dataset(name, data=values, track_order=True)
    for key, value in attrs.items():
        written.attrs[key] = value
    return written


def _writable(dataset: xr.Dataset) -> bool:
    """Whether every variable, coordinate and attribute is of a kind :func:`write_groups` encodes as xarray
    does."""
    if any(name not in dataset.dims or dataset[name].dims != (name,) for name in dataset.coords):
        return False            # a coordinate that is not a dimension's: xarray writes a ``coordinates`` attribute
    if not all(_plain_attribute(value) for value in dataset.attrs.values()):
        return False
    return all(_plain_variable(variable) for variable in dataset.variables.values())


def _plain_variable(variable: xr.Variable) -> bool:
    kind = variable.dtype.kind
    if kind not in "biufOU" or variable.dtype.itemsize > 8 and kind != "U":
        return False            # datetimes, complex numbers, long doubles: xarray's encoding
    if kind == "O" and not all(isinstance(value, str) for value in variable.values.ravel()):
        return False
    encoding = variable.encoding
    if any(key not in HARMLESS_ENCODING and not (key in FILTERS and not encoding[key]) for key in encoding):
        return False
    if "dtype" in encoding and np.dtype(encoding["dtype"]) != variable.dtype and kind not in "OUb":
        return False
    fill = encoding.get("_FillValue")
    if fill is not None and not (kind == "f" and np.isnan(fill)):
        return False
    if "_FillValue" in variable.attrs or "dtype" in variable.attrs:
        return False
    return all(_plain_attribute(value) for value in variable.attrs.values())


def _plain_attribute(value: object) -> bool:
    return isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool)
