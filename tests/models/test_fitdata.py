"""The fit container writes what ArviZ reads."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from bayes_ab.models.fitdata import FitData


def groups() -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(2)
    coords = {"chain": np.arange(2), "draw": np.arange(50), "arm": ["control", "push"]}
    return {
        "posterior": xr.Dataset({"mean": (("chain", "draw", "arm"), rng.random((2, 50, 2)))}, coords=coords),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), rng.random((2, 50)) < 0.1),
                                    "depth": (("chain", "draw"), rng.integers(1, 6, (2, 50)).astype(np.uint64))},
                                   coords={"chain": coords["chain"], "draw": coords["draw"]}),
        "constant_data": xr.Dataset({"n": (("arm",), np.array([10, 12]))}, coords={"arm": coords["arm"]},
                                    attrs={"family": "conversion"}),
    }


def test_the_file_reads_back_in_arviz_group_by_group(tmp_path):
    data = FitData(**groups())
    path = data.to_netcdf(tmp_path / "fit.nc")
    read = az.from_netcdf(path)
    assert read.groups() == data.groups() == ["posterior", "sample_stats", "constant_data"]
    for name in data.groups():
        xr.testing.assert_identical(read[name].load(), data.datasets[name])


def test_groups_are_attributes_and_can_be_replaced():
    data = FitData(**{k: v for k, v in groups().items() if k != "constant_data"})
    assert data.posterior is data.datasets["posterior"]
    with pytest.raises(AttributeError, match="constant_data"):
        data.constant_data
    assert not hasattr(data, "constant_data")
    added = data.with_group("constant_data", groups()["constant_data"])
    assert added.groups() == ["posterior", "sample_stats", "constant_data"] and data.groups()[-1] == "sample_stats"
    replaced = added.with_group("posterior", added.posterior * 2)
    np.testing.assert_array_equal(replaced.posterior["mean"].values, 2 * added.posterior["mean"].values)


def test_unknown_or_missing_groups_are_refused():
    with pytest.raises(ValueError, match="posterior"):
        FitData(sample_stats=groups()["sample_stats"])
    with pytest.raises(ValueError, match="unknown group"):
        FitData(posterior=groups()["posterior"], posteriors=groups()["posterior"])
