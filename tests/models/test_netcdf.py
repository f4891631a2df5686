"""The direct netCDF-4 writer makes the file xarray's own writer makes: read back by xarray, h5netcdf and ArviZ."""

from __future__ import annotations

import arviz as az
import h5netcdf
import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_ab.models.netcdf import write_groups, write_with_xarray


def fit_groups() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(5)
    coords = {"chain": np.arange(2), "draw": np.arange(30), "arm": ["control", "push"], "segment": ["eu", "üs"]}
    posterior = xr.Dataset({"mean": (("chain", "draw", "arm", "segment"), rng.random((2, 30, 2, 2))),
                            "effect_sd": (("chain", "draw"), rng.random((2, 30)).astype(np.float32))},
                           coords=coords)
    stats = xr.Dataset({"diverging": (("chain", "draw"), rng.random((2, 30)) < 0.2),
                        "depth": (("chain", "draw"), rng.integers(1, 6, (2, 30)).astype(np.uint64)),
                        "energy": (("chain", "draw"), np.where(rng.random((2, 30)) < 0.1, np.nan, 1.0))},
                       coords={"chain": coords["chain"], "draw": coords["draw"]})
    constant = xr.Dataset({"n": (("arm", "segment"), np.array([[10, 12], [9, 0]])),
                           "users": (("arm", "segment", "value"), rng.integers(0, 5, (2, 2, 4))),
                           "sum": (("arm", "segment"), np.array([[1.5, np.nan], [2.0, 0.0]]), {"units": "EUR"})},
                          coords={"arm": coords["arm"], "segment": coords["segment"]},
                          attrs={"family": "count", "metric": "trades", "horizon": 7, "margin": 0.01})
    return {"posterior": posterior, "sample_stats": stats, "constant_data": constant}


def read(path, group: str) -> xr.Dataset:
    with xr.open_dataset(path, group=group, engine="h5netcdf") as dataset:
        return dataset.load()


def test_the_file_reads_back_as_xarrays_own_file_does(tmp_path):
    groups = fit_groups()
    ours = write_groups(tmp_path / "ours.nc", groups)
    theirs = write_with_xarray(tmp_path / "theirs.nc", groups)
    with h5py.File(ours, "r") as file:
        assert b"bayes_ab" in file.attrs["_NCProperties"].tobytes()      # written directly, not by xarray
    for name, dataset in groups.items():
        xr.testing.assert_identical(read(ours, name), dataset)
        xr.testing.assert_identical(read(ours, name), read(theirs, name))
        for variable in dataset.variables:
            assert read(ours, name)[variable].dtype == read(theirs, name)[variable].dtype, variable
    idata = az.from_netcdf(ours)
    assert idata.groups() == list(groups)
    assert bool(idata.sample_stats["diverging"].dtype == bool)


def test_h5netcdf_sees_the_same_dimensions_variables_and_attributes(tmp_path):
    groups = fit_groups()
    ours, theirs = write_groups(tmp_path / "ours.nc", groups), write_with_xarray(tmp_path / "theirs.nc", groups)
    with h5netcdf.File(ours, "r") as a, h5netcdf.File(theirs, "r") as b:
        assert list(a.groups) == list(b.groups) == list(groups)
        for name in groups:
            ga, gb = a.groups[name], b.groups[name]
            assert {d: len(v) for d, v in ga.dimensions.items()} == {d: len(v) for d, v in gb.dimensions.items()}
            assert set(ga.variables) == set(gb.variables)          # "value" has no coordinate: no variable either
            for variable in gb.variables:
                assert ga.variables[variable].dimensions == gb.variables[variable].dimensions
                assert ga.variables[variable].attrs.keys() == gb.variables[variable].attrs.keys(), variable
            assert dict(ga.attrs) == dict(gb.attrs)


def test_dimension_ids_are_unique_in_the_file_and_every_variable_names_its_dimensions(tmp_path):
    groups = fit_groups()
    path = write_groups(tmp_path / "fit.nc", groups)
    with h5py.File(path, "r") as file:
        assert b"version=2" in file.attrs["_NCProperties"].tobytes()
        ids = {}
        for name in groups:
            for dim in groups[name].dims:
                scale = file[name][dim]
                assert h5py.h5ds.is_scale(scale.id)
                ids[(name, dim)] = int(scale.attrs["_Netcdf4Dimid"])
            for variable, values in groups[name].data_vars.items():
                coordinates = file[name][variable].attrs["_Netcdf4Coordinates"]
                assert [ids[(name, d)] for d in values.dims] == list(coordinates)
        assert sorted(ids.values()) == list(range(len(ids)))


@pytest.mark.parametrize("change", ["non-index coordinate", "datetime", "compression", "object values",
                                    "attribute list", "integer fill value", "float fill value", "encoding dtype",
                                    "scale factor beside harmless keys", "fill value attribute"])
def test_what_it_does_not_encode_is_written_by_xarray(tmp_path, change):
    groups = fit_groups()
    posterior = groups["posterior"]
    if change == "non-index coordinate":
        posterior = posterior.assign_coords(label=("arm", ["c", "t"]))
    elif change == "datetime":
        posterior["when"] = ("arm", pd.to_datetime(["2026-12-01", "2026-12-02"]).values)
    elif change == "compression":
        posterior["mean"].encoding["zlib"] = True
    elif change == "object values":
        posterior["label"] = ("arm", np.array(["a", None], dtype=object))
    elif change == "attribute list":
        posterior.attrs["draws"] = [1, 2]
    elif change == "integer fill value":
        posterior["count"] = ("arm", np.array([1, 2]))
        posterior["count"].encoding["_FillValue"] = -1
    elif change == "float fill value":
        posterior["mean"].encoding["_FillValue"] = -999.0
    elif change == "encoding dtype":
        posterior["mean"].encoding["dtype"] = "float32"            # xarray would write it in single precision
    elif change == "scale factor beside harmless keys":
        posterior["mean"].encoding.update({"dtype": np.dtype("float64"), "source": "x.nc", "scale_factor": 0.5})
    else:
        posterior["count"] = ("arm", np.array([1, 2]), {"_FillValue": -1})
    groups["posterior"] = posterior
    path = write_groups(tmp_path / "fit.nc", groups)
    with h5py.File(path, "r") as file:
        assert b"h5netcdf" in file.attrs["_NCProperties"].tobytes()        # xarray's writer made it
    back = read(path, "posterior")
    assert set(back.variables) == set(posterior.variables)


def test_a_dataset_read_from_a_file_is_written_directly_and_unchanged(tmp_path):
    groups = fit_groups()
    first = write_with_xarray(tmp_path / "first.nc", groups)
    again = {name: read(first, name) for name in groups}          # carries the file's encodings
    path = write_groups(tmp_path / "again.nc", again)
    with h5py.File(path, "r") as file:
        assert b"bayes_ab" in file.attrs["_NCProperties"].tobytes()
    for name, dataset in groups.items():
        xr.testing.assert_identical(read(path, name), dataset)
