"""Sufficient statistics as ``xarray.Dataset`` objects with named dims ``arm`` x ``segment``.

One Dataset per metric. Control is ``arm`` index 0. Every statistic is a sum over users, so
Datasets of the same metric add up (days, partitions, warehouse shards): see :func:`combine`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from bayes_ab.errors import DataError

ALL_USERS = "all users"


def conversion_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    users: np.ndarray,
    successes: np.ndarray,
    metric: str,
) -> xr.Dataset:
    """Build and validate the conversion statistics of one metric.

    Parameters
    ----------
    arms, segments
        Labels; ``arms[0]`` is the control.
    users, successes
        Arrays of shape ``(len(arms), len(segments))``: users exposed and users converted.
    metric
        Metric name, kept in ``attrs`` and used in error messages.
    """
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), _as_counts(users, "users", metric, arms, segments)),
            "successes": (("arm", "segment"), _as_counts(successes, "successes", metric, arms, segments)),
        },
        coords={"arm": list(arms), "segment": list(segments)},
        attrs={"family": "conversion", "metric": metric},
    )
    over = ds["successes"] > ds["n"]
    if bool(over.any()):
        arm, seg = _first_cell(over)
        raise DataError(
            f"metric {metric!r}: successes ({int(ds['successes'].sel(arm=arm, segment=seg))}) exceed "
            f"users ({int(ds['n'].sel(arm=arm, segment=seg))}) for arm {arm!r}, segment {seg!r}"
        )
    check_arms_have_users(ds)
    return ds


def count_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    values: Sequence[int],
    histogram: np.ndarray,
    metric: str,
) -> xr.Dataset:
    """Exact statistics of a count metric: how many users had each count value.

    Parameters
    ----------
    values
        The distinct count values (non-negative integers), dim ``value``.
    histogram
        Users per arm x segment x value, shape ``(arms, segments, values)``.
    """
    values = np.asarray(values)
    if values.ndim != 1 or len(np.unique(values)) != len(values):
        raise DataError(f"metric {metric!r}: count values must be a list of distinct integers")
    bad = ~np.isfinite(values.astype(float)) | (values.astype(float) < 0) | (values != np.round(values))
    if bad.any():
        raise DataError(f"metric {metric!r}: count value {values[bad][0]!r} is not a non-negative integer")
    hist = np.asarray(histogram, dtype=float)
    if hist.shape != (len(arms), len(segments), len(values)):
        raise DataError(f"metric {metric!r}: histogram must have shape (arms, segments, values) = "
                        f"{(len(arms), len(segments), len(values))}, got {hist.shape}")
    users = hist.sum(axis=2)
    _as_counts(users, "users", metric, arms, segments)
    for k in range(len(values)):
        _as_counts(hist[:, :, k], f"users with count {values[k]}", metric, arms, segments)
    v = values.astype("int64")
    order = np.argsort(v)
    hist = hist[:, :, order].astype("int64")
    v = v[order]
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), hist.sum(axis=2)),
            "users": (("arm", "segment", "value"), hist),
            "sum": (("arm", "segment"), (hist * v).sum(axis=2).astype(float)),
            "sumsq": (("arm", "segment"), (hist * v.astype(float) ** 2).sum(axis=2)),
        },
        coords={"arm": list(arms), "segment": list(segments), "value": v},
        attrs={"family": "count", "metric": metric},
    )
    check_arms_have_users(ds)
    return ds


def retention_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    at_risk: np.ndarray,
    lost: np.ndarray,
    metric: str,
    users: np.ndarray | None = None,
) -> xr.Dataset:
    """Life table of a retention metric: per arm x segment x day, users at risk and users lost.

    Day ``d`` (1, 2, ...) counts users still retained at the start of day ``d`` and observable on it
    (``at_risk``) and those of them first not retained on day ``d`` (``lost``). Users exposed too
    recently to be observed on day ``d`` are censored: they leave the risk set without counting as
    lost. ``users`` (exposed users per arm x segment) defaults to ``at_risk`` on day 1.
    """
    risk = np.asarray(at_risk, dtype=float)
    gone = np.asarray(lost, dtype=float)
    if risk.ndim != 3 or risk.shape != gone.shape or risk.shape[:2] != (len(arms), len(segments)):
        raise DataError(f"metric {metric!r}: at_risk and lost must both have shape (arms, segments, days)")
    days = np.arange(1, risk.shape[2] + 1)
    for d in range(risk.shape[2]):
        _as_counts(risk[:, :, d], f"at risk on day {d + 1}", metric, arms, segments)
        _as_counts(gone[:, :, d], f"lost on day {d + 1}", metric, arms, segments)
    over = gone > risk
    if over.any():
        i, j, d = np.argwhere(over)[0]
        raise DataError(f"metric {metric!r}: lost ({int(gone[i, j, d])}) exceed users at risk "
                        f"({int(risk[i, j, d])}) on day {d + 1} for arm {arms[i]!r}, segment {segments[j]!r}")
    later = risk[:, :, 1:] > risk[:, :, :-1] - gone[:, :, :-1]
    if later.any():
        i, j, d = np.argwhere(later)[0]
        raise DataError(f"metric {metric!r}: users at risk on day {d + 2} exceed those still retained "
                        f"after day {d + 1} for arm {arms[i]!r}, segment {segments[j]!r}")
    n = risk[:, :, 0] if users is None else _as_counts(users, "users", metric, arms, segments)
    ds = xr.Dataset(
        {
            "n": (("arm", "segment"), np.asarray(n).astype("int64")),
            "at_risk": (("arm", "segment", "day"), risk.astype("int64")),
            "lost": (("arm", "segment", "day"), gone.astype("int64")),
        },
        coords={"arm": list(arms), "segment": list(segments), "day": days},
        attrs={"family": "retention", "metric": metric},
    )
    check_arms_have_users(ds)
    return ds


MEAN_SUMS = ("sum", "sumsq")
COVARIATE_SUMS = ("sum_x", "sum_x2", "sum_xy")


def mean_stats(
    arms: Sequence[str],
    segments: Sequence[str],
    n: np.ndarray,
    sums: dict[str, np.ndarray],
    metric: str,
) -> xr.Dataset:
    """Statistics of a continuous metric: ``n``, ``sum``, ``sumsq`` per arm x segment, and with a
    pre-period covariate x also ``sum_x``, ``sum_x2``, ``sum_xy`` (for CUPED).
    """
    counts = _as_counts(n, "users", metric, arms, segments)
    names = MEAN_SUMS + (COVARIATE_SUMS if "sum_x" in sums else ())
    missing = [k for k in names if k not in sums]
    if missing:
        raise DataError(f"metric {metric!r}: missing statistic(s) {', '.join(missing)}")
    data = {"n": (("arm", "segment"), counts)}
    for name in names:
        values = np.asarray(sums[name], dtype=float)
        if values.shape != counts.shape or not np.isfinite(values).all():
            raise DataError(f"metric {metric!r}: {name} must be finite with shape (arms, segments)")
        data[name] = (("arm", "segment"), values)
    ds = xr.Dataset(data, coords={"arm": list(arms), "segment": list(segments)},
                    attrs={"family": "mean", "metric": metric})
    variance = ds["sumsq"] - ds["sum"] ** 2 / ds["n"].where(ds["n"] > 0)
    if bool((variance < -1e-6 * (1 + abs(ds["sumsq"]))).any()):
        raise DataError(f"metric {metric!r}: sumsq is smaller than sum^2 / n (not a sum of squares)")
    check_arms_have_users(ds)
    return ds


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


def _as_counts(values: np.ndarray, what: str, metric: str, arms: Sequence[str],
               segments: Sequence[str]) -> np.ndarray:
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


def _first_cell(mask: xr.DataArray) -> tuple[str, str]:
    i, j = np.argwhere(mask.values)[0]
    return str(mask["arm"].values[i]), str(mask["segment"].values[j])
