"""Sufficient statistics as ``xarray.Dataset`` objects with named dims ``arm`` x ``segment``: the checks
and operations every family's statistics share (each family builds its own Dataset in its module).

One Dataset per metric. Control is ``arm`` index 0. Every statistic is a sum over users, so
Datasets of the same metric add up (days, partitions, warehouse shards): see :func:`combine`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from bayes_ab.errors import DataError

ALL_USERS = "all users"


def exposed_users(ds: xr.Dataset) -> int:
    """Users (rows) the statistics come from: ``n`` summed, unless the units are clusters or switchback cells, whose
    statistics carry their rows as ``attrs["users"]`` (a ramp's minimum exposure is of users, not of units)."""
    return int(ds.attrs["users"]) if "users" in ds.attrs else int(ds["n"].sum())


def check_arms_have_users(ds: xr.Dataset) -> None:
    """Raise :class:`DataError` when an arm has no users at all, or fewer than two arms exist."""
    if ds.sizes["arm"] < 2:
        raise DataError(f"metric {ds.attrs['metric']!r}: need at least two arms, got {ds.sizes['arm']}")
    totals = ds["n"].sum("segment")
    empty = [str(a) for a, t in zip(ds["arm"].values, totals.values) if t == 0]
    if empty:
        raise DataError(f"metric {ds.attrs['metric']!r}: arm {empty[0]!r} has no users")


def combine(first: xr.Dataset, second: xr.Dataset) -> xr.Dataset:
    """Add two Datasets of the same metric over disjoint sets of users (e.g. users first exposed on
    different days, or two partitions), aligning arms, segments, count values and days.

    A segment (value, day) present in only one of them counts as zero users in the other.
    """
    if first.attrs.get("family") != second.attrs.get("family") or \
            first.attrs.get("metric") != second.attrs.get("metric"):
        raise DataError(
            f"cannot combine statistics of {first.attrs.get('metric')!r} ({first.attrs.get('family')}) "
            f"with {second.attrs.get('metric')!r} ({second.attrs.get('family')})"
        )
    if list(first["arm"].values) != list(second["arm"].values):
        raise DataError(
            f"cannot combine statistics with different arms: {list(first['arm'].values)} "
            f"vs {list(second['arm'].values)}"
        )
    a, b = xr.align(first, second, join="outer", fill_value=0)
    total = a + b
    for name in total.data_vars:
        if first[name].dtype.kind == "i":
            total[name] = total[name].astype("int64")
    total.attrs = dict(first.attrs)
    return total


def segment_weights(ds: xr.Dataset) -> xr.DataArray:
    """Traffic share of each segment (all arms together); sums to one."""
    users = ds["n"].sum("arm").astype(float)
    return users / users.sum()


def as_counts(values: np.ndarray, what: str, metric: str, arms: Sequence[str],
              segments: Sequence[str]) -> np.ndarray:
    """``values`` as whole non-negative counts of shape (arms, segments); :class:`DataError` naming the cell."""
    array = np.asarray(values, dtype=float)
    if array.shape != (len(arms), len(segments)):
        raise DataError(f"metric {metric!r}: {what} must have shape (arms, segments) = "
                        f"{(len(arms), len(segments))}, got {array.shape}")
    for problem, mask in (("is missing (NaN)", ~np.isfinite(array)),
                          ("is negative", np.isfinite(array) & (array < 0)),
                          ("is not a whole number", np.isfinite(array) & (array != np.round(array)))):
        if mask.any():
            i, j = np.argwhere(mask)[0]
            raise DataError(f"metric {metric!r}: {what} {problem} for arm {arms[i]!r}, "
                            f"segment {segments[j]!r} (value {values[i][j]!r})")
    return array.astype("int64")


def cell_sums(n: np.ndarray, sums: dict[str, np.ndarray], names: Sequence[str], metric: str,
              arms: Sequence[str], segments: Sequence[str]) -> dict[str, tuple[tuple[str, str], np.ndarray]]:
    """Users and the named per-cell sums as Dataset variables, checked: every name present, finite, of
    shape (arms, segments); users whole and non-negative."""
    counts = as_counts(n, "users", metric, arms, segments)
    missing = [k for k in names if k not in sums]
    if missing:
        raise DataError(f"metric {metric!r}: missing statistic(s) {', '.join(missing)}")
    data = {"n": (("arm", "segment"), counts)}
    for name in names:
        values = np.asarray(sums[name], dtype=float)
        if values.shape != counts.shape:
            raise DataError(f"metric {metric!r}: statistic {name} must have shape (arms, segments) = {counts.shape}, "
                            f"got {values.shape}")
        if not np.isfinite(values).all():
            i, j = np.argwhere(~np.isfinite(values))[0]
            raise DataError(f"metric {metric!r}: the {SUM_MEANINGS.get(name, name)} is {values[i, j]} in arm "
                            f"{arms[i]!r}, segment {segments[j]!r}: the values are too large for double precision "
                            "(or infinite); rescale the column (e.g. to thousands)")
        data[name] = (("arm", "segment"), values)
    return data


SUM_MEANINGS = {"sum": "sum of the values", "sumsq": "sum of the squared values",
                "sum_x": "sum of the covariate", "sum_x2": "sum of the squared covariate",
                "sum_xy": "sum of the values times the covariate",
                "sum_num": "sum of the numerators", "sum_den": "sum of the denominators",
                "sum_num2": "sum of the squared numerators", "sum_den2": "sum of the squared denominators",
                "sum_num_den": "sum of the numerators times the denominators"}
"""What each per-cell sum of the families' statistics is, in words (messages never show the internal names)."""


def first_cell(mask: xr.DataArray) -> tuple[str, str]:
    """Arm and segment labels of the first true cell of ``mask``."""
    i, j = np.argwhere(mask.values)[0]
    return str(mask["arm"].values[i]), str(mask["segment"].values[j])
