"""Per-user rows or pre-aggregated tables -> sufficient statistics with grouped DuckDB queries.

One grouped query over ``arm x segment`` computes users and every metric's per-cell sums;
data checks (missing values, non-binary conversions, negative or fractional counts, churn days
beyond the observation window) are folded into it as extra counters, so clean input is scanned once
for them. Families whose statistics need a finer key (count histograms, retention life tables)
add one query grouped by that key. Only a failing input pays for a further query that fetches
example values for the error message.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import xarray as xr

from bayes_ab.data.queries import Check, MetricQuery, metric_query, numeric_checks, value
from bayes_ab.data.source import VIEW, OpenedSource, Source, open_source
from bayes_ab.data.sql import quote_ident
from bayes_ab.data.stats import ALL_USERS
from bayes_ab.errors import DataError
from bayes_ab.spec import ExperimentSpec

MISSING_SEGMENT = "(missing)"
SEGMENT_SEPARATOR = " / "


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
        False: one row per user. True: rows are already aggregates (conversion metrics only);
        ``spec.users_column`` holds users and each conversion metric's column holds converted users.
        Rows of the same arm and segment are summed.

    Returns
    -------
    dict
        Metric name -> ``xarray.Dataset`` with dims ``arm`` x ``segment`` (control first), plus
        ``value`` for counts and ``day`` for retention.
    """
    opened = open_source(source, connection)
    wanted = {spec.arm_column: "arm"}
    wanted.update({col: "segment" for col in spec.segment_columns})
    for m in spec.metrics:
        wanted.update(m.columns)
    if aggregated:
        wanted[spec.users_column] = "users"
    elif spec.unit_column:
        wanted[spec.unit_column] = "unit id"
    opened.require_columns(wanted)

    queries = {m.name: metric_query(m, f"m{i}", aggregated) for i, m in enumerate(spec.metrics)}
    checks = [c for q in queries.values() for c in q.checks]
    users = "COUNT(*)"
    if aggregated:
        checks = numeric_checks(spec.users_column, None, "users", whole=True, minimum=0, what="counts") + checks
        users = f"SUM({value(spec.users_column)})"
    sums = {"users": users}
    for q in queries.values():
        sums.update(q.sums)
    sums.update({c.alias: f"COUNT(*) FILTER (WHERE {c.condition})" for c in checks})
    cells = _grouped(opened, spec, sums)
    _raise_failed_checks(opened, cells, checks)
    _check_arms(opened, spec, cells)
    if not aggregated and spec.unit_column:
        _check_unique_units(opened, spec)

    arms = list(spec.arm_names)
    segments = sorted(cells["segment"].unique())
    index = pd.MultiIndex.from_product([arms, segments], names=["arm", "segment"])
    table = cells.set_index(["arm", "segment"]).reindex(index, fill_value=0).reset_index()
    return {name: q.build(arms, segments, table, _detail(opened, spec, q)) for name, q in queries.items()}


def _segment_labels(grouped: pd.DataFrame, n_columns: int) -> pd.Series:
    """Segment label of each grouped row: segment values joined by " / "; NULL shows as (missing)."""
    if n_columns == 0:
        return pd.Series(ALL_USERS, index=grouped.index)
    parts = [grouped[f"seg{i}"].map(lambda v: MISSING_SEGMENT if pd.isna(v) else str(v))
             for i in range(n_columns)]
    return parts[0].str.cat(parts[1:], sep=SEGMENT_SEPARATOR) if n_columns > 1 else parts[0]


def _grouped(opened: OpenedSource, spec: ExperimentSpec, sums: dict[str, str],
             key: str | None = None) -> pd.DataFrame:
    """Run one query grouped by arm, segment columns (and ``key``); label segments."""
    columns = [f"CAST({quote_ident(spec.arm_column)} AS VARCHAR) AS arm"]
    columns += [f"{quote_ident(c)} AS seg{i}" for i, c in enumerate(spec.segment_columns)]
    if key is not None:
        columns.append(f"{key} AS key")
    group = ", ".join(str(i + 1) for i in range(len(columns)))
    columns += [f"{sql} AS {quote_ident(alias)}" for alias, sql in sums.items()]
    sql = f"SELECT {', '.join(columns)} FROM {VIEW} GROUP BY {group}"
    try:
        grouped = opened.connection.execute(sql).df()
    except duckdb.Error as exc:
        raise DataError(f"{opened.label}: aggregation failed ({str(exc).splitlines()[0]})") from None
    grouped["segment"] = _segment_labels(grouped, len(spec.segment_columns))
    # Distinct raw values can share a label (e.g. 1 and '1'); sum them into one segment.
    keys = ["arm", "segment"] + (["key"] if key is not None else [])
    return grouped.groupby(keys, as_index=False, dropna=False)[list(sums)].sum() \
        .sort_values(keys, ignore_index=True)


def _detail(opened: OpenedSource, spec: ExperimentSpec, query: MetricQuery) -> pd.DataFrame | None:
    if query.detail_key is None:
        return None
    return _grouped(opened, spec, query.detail_sums, key=query.detail_key)


def _raise_failed_checks(opened: OpenedSource, grouped: pd.DataFrame, checks: list[Check]) -> None:
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
    if grouped["arm"].isna().any():
        raise DataError(f"{opened.label}: column {spec.arm_column!r} has missing arm values")
    found = set(grouped["arm"])
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
