"""Per-user rows or pre-aggregated tables -> sufficient statistics, in one grouped DuckDB query.

Data checks (missing values, non-binary conversions, negative or fractional counts) are folded
into the same grouped query as extra counters, so a clean input is scanned once for the
statistics (plus once for duplicated unit ids when the spec names a unit column); only a
failing input pays for a second query that fetches example values for the error message.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.data.source import VIEW, OpenedSource, Source, open_source
from bayes_ab.data.sql import quote_ident
from bayes_ab.data.stats import ALL_USERS, conversion_stats
from bayes_ab.errors import DataError
from bayes_ab.spec import ExperimentSpec

MISSING_SEGMENT = "(missing)"
SEGMENT_SEPARATOR = " / "


@dataclass(frozen=True)
class _Check:
    """One data check folded into the grouped query: count rows where ``condition`` holds."""

    alias: str
    condition: str
    problem: str
    column: str
    metric: str | None


def aggregate(
    spec: ExperimentSpec,
    source: Source,
    *,
    aggregated: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> dict[str, xr.Dataset]:
    """Compute the sufficient statistics of every metric of ``spec``.

    Parameters
    ----------
    spec
        The experiment spec: arm column, segment columns, metric columns.
    source
        Parquet/CSV path or pandas DataFrame.
    aggregated
        False: one row per user; a conversion metric's column holds 0/1 (or booleans).
        True: rows are already aggregates; ``spec.users_column`` holds users and each conversion
        metric's column holds converted users. Rows of the same arm and segment are summed.

    Returns
    -------
    dict
        Metric name -> ``xarray.Dataset`` with dims ``arm`` x ``segment`` (control first).
    """
    opened = open_source(source, connection)
    wanted = {spec.arm_column: "arm"}
    wanted.update({col: "segment" for col in spec.segment_columns})
    wanted.update({m.column: f"metric {m.name!r}" for m in spec.metrics})
    if aggregated:
        wanted[spec.users_column] = "users"
    elif spec.unit_column:
        wanted[spec.unit_column] = "unit id"
    opened.require_columns(wanted)

    checks = _checks(spec, aggregated)
    grouped = _grouped_query(opened, spec, aggregated, checks)
    _raise_failed_checks(opened, spec, grouped, checks)
    _check_arms(opened, spec, grouped)
    if not aggregated and spec.unit_column:
        _check_unique_units(opened, spec)
    return _to_stats(spec, grouped)


def _value(column: str) -> str:
    return f"TRY_CAST({quote_ident(column)} AS DOUBLE)"


def _checks(spec: ExperimentSpec, aggregated: bool) -> list[_Check]:
    checks = []
    columns = [(spec.users_column, None)] if aggregated else []
    columns += [(m.column, m.name) for m in spec.metrics]
    for i, (column, metric) in enumerate(columns):
        raw, value = quote_ident(column), _value(column)
        missing = f"({raw} IS NULL OR COALESCE(isnan({value}), FALSE))"
        checks.append(_Check(f"chk{i}_missing", missing, "has missing values (NULL/NaN)", column, metric))
        if aggregated:
            checks += [
                _Check(f"chk{i}_nonnumeric", f"(NOT {missing} AND {value} IS NULL)",
                       "has non-numeric values", column, metric),
                _Check(f"chk{i}_negative", f"({value} < 0)", "has negative counts", column, metric),
                _Check(f"chk{i}_fractional", f"(NOT isnan({value}) AND {value} <> floor({value}))",
                       "has non-integer counts", column, metric),
            ]
        else:
            checks.append(_Check(
                f"chk{i}_nonbinary", f"(NOT {missing} AND ({value} IS NULL OR {value} NOT IN (0, 1)))",
                "is not binary (conversion needs 0/1 or true/false)", column, metric))
    return checks


def _segment_labels(grouped: pd.DataFrame, n_columns: int) -> pd.Series:
    """Segment label of each grouped row: segment values joined by " / "; NULL shows as (missing)."""
    if n_columns == 0:
        return pd.Series(ALL_USERS, index=grouped.index)
    parts = [grouped[f"seg{i}"].map(lambda v: MISSING_SEGMENT if pd.isna(v) else str(v))
             for i in range(n_columns)]
    return parts[0].str.cat(parts[1:], sep=SEGMENT_SEPARATOR) if n_columns > 1 else parts[0]


def _grouped_query(opened: OpenedSource, spec: ExperimentSpec, aggregated: bool,
                   checks: list[_Check]) -> pd.DataFrame:
    if aggregated:
        users = f"SUM({_value(spec.users_column)})"
        successes = [f"SUM({_value(m.column)}) AS {quote_ident('s_' + m.name)}" for m in spec.metrics]
    else:
        users = "COUNT(*)"
        successes = [f"COUNT(*) FILTER (WHERE {_value(m.column)} = 1) AS {quote_ident('s_' + m.name)}"
                     for m in spec.metrics]
    counters = [f"COUNT(*) FILTER (WHERE {c.condition}) AS {c.alias}" for c in checks]
    segments = [f"{quote_ident(c)} AS seg{i}" for i, c in enumerate(spec.segment_columns)]
    keys = ", ".join(str(i + 1) for i in range(1 + len(segments)))
    sql = (
        "SELECT " + ", ".join([f"CAST({quote_ident(spec.arm_column)} AS VARCHAR) AS arm", *segments,
                               f"{users} AS users", *successes, *counters])
        + f" FROM {VIEW} GROUP BY {keys}"
    )
    try:
        grouped = opened.connection.execute(sql).df()
    except duckdb.Error as exc:
        raise DataError(f"{opened.label}: aggregation failed ({str(exc).splitlines()[0]})") from None
    grouped["segment"] = _segment_labels(grouped, len(spec.segment_columns))
    # Distinct raw values can share a label (e.g. 1 and '1'); sum them into one segment.
    numeric = ["users", *("s_" + m.name for m in spec.metrics), *(c.alias for c in checks)]
    return grouped.groupby(["arm", "segment"], as_index=False, dropna=False)[numeric].sum() \
        .sort_values(["arm", "segment"], ignore_index=True)


def _raise_failed_checks(opened: OpenedSource, spec: ExperimentSpec, grouped: pd.DataFrame,
                         checks: list[_Check]) -> None:
    for check in checks:
        bad = grouped[grouped[check.alias] > 0]
        if bad.empty:
            continue
        first = bad.iloc[0]
        examples = opened.connection.execute(
            f"SELECT DISTINCT CAST({quote_ident(check.column)} AS VARCHAR) FROM {VIEW} "
            f"WHERE {check.condition} LIMIT 3"
        ).fetchall()
        shown = ", ".join("NULL" if v is None else repr(v) for (v,) in examples)
        owner = f" (metric {check.metric!r})" if check.metric else ""
        raise DataError(
            f"{opened.label}: column {check.column!r}{owner} {check.problem}: "
            f"{int(bad[check.alias].sum())} row(s), first in arm {first['arm']!r}, "
            f"segment {first['segment']!r}; e.g. {shown}"
        )


def _check_arms(opened: OpenedSource, spec: ExperimentSpec, grouped: pd.DataFrame) -> None:
    found = set(grouped["arm"].dropna())
    if grouped["arm"].isna().any():
        raise DataError(f"{opened.label}: column {spec.arm_column!r} has missing arm values")
    unknown = sorted(found - set(spec.arm_names))
    if unknown:
        raise DataError(
            f"{opened.label}: column {spec.arm_column!r} has arm {unknown[0]!r} that the spec does not "
            f"declare (spec arms: {', '.join(spec.arm_names)})"
        )
    if len(found) < 2:
        raise DataError(
            f"{opened.label}: column {spec.arm_column!r} holds only one arm ({', '.join(sorted(found))}); "
            "a comparison needs at least two"
        )
    absent = [a for a in spec.arm_names if a not in found]
    if absent:
        raise DataError(f"{opened.label}: arm {absent[0]!r} declared in the spec has no rows "
                        f"in column {spec.arm_column!r}")


def _check_unique_units(opened: OpenedSource, spec: ExperimentSpec) -> None:
    unit, arm = quote_ident(spec.unit_column), quote_ident(spec.arm_column)
    missing, repeated = opened.connection.execute(
        f"SELECT COUNT(*) FILTER (WHERE {unit} IS NULL), COUNT({unit}) - COUNT(DISTINCT {unit}) FROM {VIEW}"
    ).fetchone()
    if missing:
        raise DataError(f"{opened.label}: column {spec.unit_column!r} (unit id) has {missing} missing values")
    if not repeated:
        return
    uid, times, arms, names = opened.connection.execute(
        f"SELECT CAST({unit} AS VARCHAR), COUNT(*), COUNT(DISTINCT {arm}), "
        f"string_agg(DISTINCT CAST({arm} AS VARCHAR), ', ' ORDER BY CAST({arm} AS VARCHAR)) "
        f"FROM {VIEW} GROUP BY {unit} HAVING COUNT(*) > 1 "
        f"ORDER BY COUNT(DISTINCT {arm}) DESC, COUNT(*) DESC LIMIT 1"
    ).fetchone()
    where = f"across arms ({names})" if arms > 1 else f"{times} times in arm {names!r}"
    raise DataError(f"{opened.label}: column {spec.unit_column!r}: unit id {uid!r} appears {where}; "
                    f"{repeated} repeated id(s) in all; each unit must be exposed to one arm once")


def _to_stats(spec: ExperimentSpec, grouped: pd.DataFrame) -> dict[str, xr.Dataset]:
    arms = list(spec.arm_names)
    segments = sorted(grouped["segment"].unique())
    index = pd.MultiIndex.from_product([arms, segments], names=["arm", "segment"])
    table = grouped.set_index(["arm", "segment"]).reindex(index, fill_value=0)
    shape = (len(arms), len(segments))
    users = table["users"].to_numpy(dtype=float).reshape(shape)
    return {
        m.name: conversion_stats(arms, segments, users,
                                 table["s_" + m.name].to_numpy(dtype=float).reshape(shape), m.name)
        for m in spec.metrics
    }
