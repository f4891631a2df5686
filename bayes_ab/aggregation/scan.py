"""The grouped queries of one spec over one table, their additive results, and the data checks.

A :class:`ScanPlan` holds the SQL (canonical dialect) every engine runs: one query grouped by
``arm x segment`` with users, every metric's sums and the data checks' detectors, and one detail
query per metric that needs a finer key (count value, exit day). Grouped also by ``day_column``,
the results are per-day :class:`Partials`: sums over disjoint sets of users, so partials of
different days add up to the partials of all of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from collections import defaultdict
from datetime import date
from typing import Iterable

import pandas as pd
import xarray as xr

from bayes_ab.data.engine import DATE, FLOAT, INTEGER, STRING, Table
from bayes_ab.data.queries import Check, Column, ColumnTypeError, MetricQuery, numeric_checks, typed_column
from bayes_ab.data.sql import quote_ident, quote_literal
from bayes_ab.data.stats import ALL_USERS
from bayes_ab.errors import DataError
from bayes_ab.families import family_for
from bayes_ab.spec import ExperimentSpec

MISSING_SEGMENT = "(missing)"
SEGMENT_SEPARATOR = " / "
DAY_KINDS = (DATE, INTEGER, STRING)
CELL_KEYS = ["arm", "segment"]


@dataclass(frozen=True)
class Partials:
    """Additive partial aggregates: ``cells`` per arm x segment (x day) with users, sums and check
    detectors; ``details`` per metric with the finer key. Rows carry a ``day`` column when grouped by day.
    """

    cells: pd.DataFrame
    details: dict[str, pd.DataFrame]

    def day(self, label: str) -> "Partials":
        """The partials of one day."""
        return Partials(self.cells[self.cells["day"] == label].reset_index(drop=True),
                        {m: t[t["day"] == label].reset_index(drop=True) for m, t in self.details.items()})

    def total(self) -> "Partials":
        """Summed over days: per arm x segment (x key) only."""
        return Partials(_summed(self.cells, CELL_KEYS),
                        {m: _summed(t, CELL_KEYS + ["key"]) for m, t in self.details.items()})

    @staticmethod
    def concat(parts: Iterable["Partials"]) -> "Partials":
        """All rows of several partials (of disjoint users) in one."""
        parts = list(parts)
        if not parts:
            raise ValueError("no partial aggregates to concatenate")
        return Partials(pd.concat([p.cells for p in parts], ignore_index=True),
                        {m: pd.concat([p.details[m] for p in parts], ignore_index=True) for m in parts[0].details})


def _summed(table: pd.DataFrame, keys: list[str], values: list[str] | None = None) -> pd.DataFrame:
    """``table``'s ``values`` columns (default: all but the keys and the day) summed per ``keys``, sorted by them."""
    if values is None:
        values = [c for c in table.columns if c not in keys and c != "day"]
    summed = table.groupby(keys, dropna=False)[values].sum()
    # keys and sums joined at once, then consolidated: pandas inserts group keys one by one and keeps a block per
    # column, which a wide result (covariate sums) turns into a performance warning at every later insert
    return pd.concat([summed.index.to_frame(index=False), summed.reset_index(drop=True)], axis=1) \
        .sort_values(keys, ignore_index=True).copy()


@dataclass(frozen=True)
class ScanPlan:
    """Every query of one spec over tables with the given column kinds."""

    spec: ExperimentSpec
    aggregated: bool
    by_day: bool
    queries: dict[str, MetricQuery]
    checks: tuple[Check, ...]
    sums: dict[str, str]
    detail_sums: dict[str, dict[str, str]]    # metric -> alias -> SQL aggregate per arm x segment x key
    day: Column | None
    clustered: frozenset[str] = frozenset()   # metrics whose detail is of a panel's rows (users as clusters)

    @classmethod
    def for_table(cls, spec: ExperimentSpec, table: Table, *, aggregated: bool = False,
                  by_day: bool = False) -> "ScanPlan":
        """The plan for ``spec`` on ``table`` (whose columns it checks first).

        Aggregated rows are groups of users: ``users_column`` holds their number, each metric's
        :class:`~bayes_ab.data.queries.Sum` columns their sums and its key columns the value they share,
        so every statistic is the per-user one with a user counted ``users`` times.
        """
        # aggregated rows name their sums' columns after the per-user columns; the queries are built first
        # to learn those names (a column not yet known to exist is taken as a number, then required)
        wanted = {spec.arm_column: "arm"}
        wanted.update({col: "segment" for col in spec.segment_columns})
        if aggregated:
            kinds = defaultdict(lambda: FLOAT, table.columns)
            queries = {m.name: family_for(m).statistics_query(m, f"m{i}", kinds) for i, m in enumerate(spec.metrics)}
            for m in spec.metrics:
                for s in queries[m.name].sums.values():
                    wanted.setdefault(s.column, f"sum of metric {m.name!r}")
                wanted.update({k: f"metric {m.name!r}" for k in queries[m.name].keys})
            wanted[spec.users_column] = "users"
        else:
            for m in spec.metrics:
                wanted.update(m.columns)
            if spec.unit_column:
                wanted[spec.unit_column] = "unit id"
        day = None
        if by_day:
            if not spec.day_column:
                raise DataError(f"{spec.source}: per-day aggregation needs day_column in the spec")
            wanted[spec.day_column] = "day"
        table.require_columns(wanted)
        if by_day:
            day = Column(spec.day_column, table.kind(spec.day_column))
            if day.kind not in DAY_KINDS:
                raise DataError(f"{table.label}: column {spec.day_column!r} (day) holds {day.kind} values; "
                                "use a DATE, an integer day number or a text label (e.g. CAST(ts AS DATE))")

        if not aggregated:
            try:
                queries = {m.name: family_for(m).statistics_query(m, f"m{i}", table.columns)
                           for i, m in enumerate(spec.metrics)}
            except ColumnTypeError as exc:
                raise DataError(exc.message(table.label, table.types.get(exc.column))) from None
        checks = [c for q in queries.values() for c in q.key_checks]
        sums = {"users": "COUNT(*)"}
        details = {name: {alias: "COUNT(*)" if condition is None else f"COUNT(*) FILTER (WHERE {condition})"
                          for alias, condition in q.detail_users.items()}
                   | {alias: _filtered_sum(s.value, s.condition) for alias, s in q.detail_sums.items()}
                   for name, q in queries.items() if q.detail_key is not None}
        if aggregated:
            column = typed_column(spec.users_column, table.kind(spec.users_column), None, "users")
            checks = numeric_checks(column, None, "users", whole=True, minimum=0, what="counts") + checks
            sums["users"] = _summed_column(column)
            checks += _sum_checks(queries, table.columns, column)
            details = {name: {alias: sums["users"] if condition is None else _filtered_sum(column.number(), condition)
                              for alias, condition in queries[name].detail_users.items()}
                       | {alias: _filtered_sum(Column(s.column, table.kind(s.column)).number(), s.condition)
                          for alias, s in queries[name].detail_sums.items()}
                       for name in details}
            for q in queries.values():
                sums.update({alias: _summed_column(Column(s.column, table.kind(s.column)))
                             for alias, s in q.sums.items()})
        else:
            checks = [c for q in queries.values() for c in q.checks] + checks
            if spec.unit_column:
                unit = quote_ident(spec.unit_column)
                checks.append(Check("unit_missing", f"({unit} IS NULL)", "(unit id) has missing values",
                                    spec.unit_column, None, f"COUNT(*) - COUNT({unit})"))
            for q in queries.values():
                sums.update({alias: s.per_user for alias, s in q.sums.items()})
        sums.update({c.alias: c.detector for c in checks})
        clustered = frozenset(name for name, q in queries.items() if q.cluster_sums and table.panel_rows is not None)
        details.update({name: queries[name].cluster_sums for name in clustered})
        return cls(spec, aggregated, by_day, queries, tuple(checks), sums, details, day, clustered)

    # -- SQL --------------------------------------------------------------------------------
    def grouped_sql(self, relation: str, sums: dict[str, str], key: str | None = None,
                    where: str | None = None) -> str:
        """One query grouped by arm, segment columns (day, key): raw values grouped, labels cast after."""
        inner = [f"{quote_ident(self.spec.arm_column)} AS arm"]
        outer = ["CAST(arm AS VARCHAR) AS arm"]
        for i, column in enumerate(self.spec.segment_columns):
            inner.append(f"{quote_ident(column)} AS seg{i}")
            outer.append(f"CAST(seg{i} AS VARCHAR) AS seg{i}")
        if self.day is not None:
            inner.append(f"{self.day.sql} AS day")
            outer.append("CAST(day AS VARCHAR) AS day")
        if key is not None:
            inner.append(f"{key} AS key")
            outer.append("key")
        group = ", ".join(str(i + 1) for i in range(len(inner)))
        inner += [f"{sql} AS {quote_ident(alias)}" for alias, sql in sums.items()]
        outer += [quote_ident(alias) for alias in sums]
        filtered = f" WHERE {where}" if where else ""
        return (f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {relation}{filtered} "
                f"GROUP BY {group}) AS grouped")

    def aggregated_rows(self, relation: str) -> "AggregatedRows":
        """The one query that turns per-user rows into the aggregated rows ``--aggregated`` reads.

        Rows are grouped by arm, segment columns, ``day_column`` (when the spec has one, so per-day output
        feeds incremental check-ins) and every metric's key columns; each row gives its users and every
        :class:`~bayes_ab.data.queries.Sum` under the column name aggregated input expects. Per-user data
        checks are not part of it: they run where bayes-ab reads per-user rows itself.
        """
        if self.aggregated:
            raise ValueError("the plan reads aggregated rows already")
        spec = self.spec
        groups = {spec.arm_column: "arm"}
        groups.update({column: "segment" for column in spec.segment_columns})
        if spec.day_column:
            groups[spec.day_column] = "day of first exposure"
        if spec.received_column:        # the complier analysis splits the users by it (bayes_ab.compliance)
            groups[spec.received_column] = "received the treatment (0/1)"
        keys: dict[str, tuple[str, str]] = {}
        sums: dict[str, tuple[str, str]] = {}
        for name, q in self.queries.items():
            for column, sql in q.keys.items():
                _claim(keys, column, sql, name, "a value its users share")
            for s in q.sums.values():
                _claim(sums, s.column, s.per_user, name, "a sum over the row's users")
        named = list(groups) + list(keys) + [spec.users_column] + list(sums)
        repeated = next((c for c in named if named.count(c) > 1), None)
        if repeated is not None:
            raise DataError(f"{spec.source}: aggregated rows would need two columns named {repeated!r} "
                            "(a value and a sum, or the users column); rename one of the columns")
        select = [quote_ident(column) for column in groups]
        select += [f"{sql} AS {quote_ident(column)}" for column, (sql, _) in keys.items()]
        select.append(f"COUNT(*) AS {quote_ident(spec.users_column)}")
        select += [f"{sql} AS {quote_ident(column)}" for column, (sql, _) in sums.items()]
        group = ", ".join(str(i + 1) for i in range(len(groups) + len(keys)))
        sql = f"SELECT {', '.join(select)} FROM {relation} GROUP BY {group}"
        meaning = dict(groups)
        meaning.update({column: f"metric {owner!r}: the value the row's users share" for column, (_, owner) in keys.items()})
        meaning[spec.users_column] = "users in the row"
        meaning.update({column: f"metric {owner!r}: sum over the row's users" for column, (_, owner) in sums.items()})
        return AggregatedRows(sql, meaning)

    def fingerprint(self) -> str:
        """SHA-256 of every query (first 16 hex digits): stored partials are reusable only under the same one."""
        digest = hashlib.sha256(self.grouped_sql("t", self.sums).encode())
        for name, sums in self.detail_sums.items():
            digest.update(self.grouped_sql("t", sums, key=self.queries[name].detail_key).encode())
        return digest.hexdigest()[:16]

    def day_filter(self, days: Iterable[str] | None) -> str | None:
        """SQL condition selecting the rows of ``days`` (labels as the queries return them)."""
        if days is None:
            return None
        days = list(days)
        if not days:
            raise ValueError("an empty day filter selects nothing")
        literal = {DATE: lambda d: f"DATE {quote_literal(date.fromisoformat(d).isoformat())}",
                   INTEGER: lambda d: str(int(d)), STRING: quote_literal}[self.day.kind]
        return f"{self.day.sql} IN ({', '.join(literal(d) for d in days)})"

    # -- running ----------------------------------------------------------------------------
    def rows_by_day(self, table: Table) -> dict[str, int]:
        """Rows per day in ``table`` (one narrow grouped scan of the day column)."""
        counts = table.run(f"SELECT CAST(day AS VARCHAR) AS day, rows FROM (SELECT {self.day.sql} AS day, "
                           f"COUNT(*) AS rows FROM {table.relation} GROUP BY 1) AS days")
        if counts["day"].isna().any():
            missing = int(counts.loc[counts["day"].isna(), "rows"].sum())
            raise DataError(f"{table.label}: column {self.spec.day_column!r} (day) has {missing} missing values")
        return {str(d): int(n) for d, n in zip(counts["day"], counts["rows"])}

    def scan(self, table: Table, days: Iterable[str] | None = None) -> Partials:
        """Run the queries on ``table`` (only the rows of ``days`` when given) and check the data.

        Raises
        ------
        DataError
            No rows, or a failed data check: names the column, metric, arm and segment, with examples.
        """
        where = self.day_filter(days)
        cells = self._grouped(table, self.sums, where=where)
        if cells.empty:
            raise DataError(f"{table.label}: the input has no rows" + (" for those days" if where else ""))
        self._raise_failed_checks(table, cells, where)
        self._check_arms(table, cells)
        if not self.aggregated and self.spec.unit_column:
            self._check_unique_units(table, where)
        details = {name: self._detail(table, name, sums, where) for name, sums in self.detail_sums.items()}
        return Partials(cells, details)

    def _detail(self, table: Table, name: str, sums: dict[str, str], where: str | None) -> pd.DataFrame:
        """One metric's detail query: per user's key on per-user rows, or over a panel's rows grouped per user
        and key (:attr:`~bayes_ab.data.queries.MetricQuery.cluster_sums`)."""
        query = self.queries[name]
        if name not in self.clustered:
            return self._grouped(table, sums, key=query.detail_key, where=where)
        if where is not None:
            raise DataError(f"{self.spec.source}: metric {name!r} is read from the panel's rows, which are analysed "
                            "whole, not by day")
        spec = self.spec
        kept = [quote_ident(c) for c in (spec.arm_column, *spec.segment_columns)]
        unit = quote_ident(spec.unit_column)
        per_user = ", ".join(["u", *kept, "k"])
        # each (user, key) group once, with the user's rows in all and below that key (window sums of its counts)
        relation = (f"(SELECT {', '.join(kept)}, k AS bin_key, e, m, e_before FROM (SELECT {per_user}, COUNT(*) AS e, "
                    "SUM(COUNT(*)) OVER (PARTITION BY u) AS m, "
                    "SUM(COUNT(*)) OVER (PARTITION BY u ORDER BY k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
                    f"- COUNT(*) AS e_before FROM (SELECT {unit} AS u, {', '.join(kept)}, {query.cluster_key} AS k "
                    f"FROM {table.panel_rows}) AS keyed WHERE k IS NOT NULL GROUP BY {per_user}) AS per_user_key) "
                    "AS clustered")
        return self._grouped(table, sums, key="bin_key", relation=relation)

    def statistics(self, partials: Partials, label: str) -> dict[str, xr.Dataset]:
        """Each metric's statistics Dataset from partials (summed over days first); ``label`` names
        the input in error messages."""
        total = partials.total()
        self._check_arms_present(total.cells, label)
        arms = list(self.spec.arm_names)
        segments = sorted(total.cells["segment"].unique())
        index = pd.MultiIndex.from_product([arms, segments], names=CELL_KEYS)
        table = total.cells.set_index(CELL_KEYS).reindex(index, fill_value=0).reset_index()
        self._check_not_clustered(table, label)
        return {name: q.build(arms, segments, table, total.details.get(name)) for name, q in self.queries.items()}

    def _grouped(self, table: Table, sums: dict[str, str], key: str | None = None,
                 where: str | None = None, relation: str | None = None) -> pd.DataFrame:
        grouped = table.run(self.grouped_sql(relation or table.relation, sums, key, where))
        grouped["segment"] = segment_labels(grouped, len(self.spec.segment_columns))
        keys = CELL_KEYS + (["day"] if self.day is not None else []) + (["key"] if key is not None else [])
        if "key" in keys:
            grouped["key"] = grouped["key"].astype("int64")
        # Distinct raw values can share a label (e.g. 1 and '1'); sum them into one group.
        grouped = grouped.astype({"arm": object, "segment": object} | ({"day": object} if self.day else {}))
        return _summed(grouped, keys, list(sums))

    # -- checks -----------------------------------------------------------------------------
    def _raise_failed_checks(self, table: Table, cells: pd.DataFrame, where: str | None) -> None:
        for check in self.checks:
            if not (cells[check.alias] > 0).any():
                continue
            condition = check.condition if where is None else f"({check.condition}) AND {where}"
            bad = self._grouped(table, {"bad": "COUNT(*)"}, where=condition)
            first = bad.iloc[0]
            examples = table.run(
                f"SELECT DISTINCT CAST({quote_ident(check.column)} AS VARCHAR) AS v FROM {table.relation} "
                f"WHERE {condition} LIMIT 3")["v"]
            shown = ", ".join("NULL" if pd.isna(v) else repr(v) for v in examples)
            owner = f" (metric {check.metric!r})" if check.metric else ""
            # a panel is checked on its users' totals: what is counted is users, each with one or more bad days
            counted = "user(s)" if table.panel_rows is not None else "row(s)"
            raise DataError(
                f"{table.label}: column {check.column!r}{owner} {check.problem}: "
                f"{int(bad['bad'].sum())} {counted}, first in arm {first['arm']!r}, "
                f"segment {first['segment']!r}; e.g. {shown}"
            )

    def _check_arms(self, table: Table, cells: pd.DataFrame) -> None:
        spec = self.spec
        if cells["arm"].isna().any():
            raise DataError(f"{table.label}: column {spec.arm_column!r} has missing arm values")
        unknown = sorted(set(cells["arm"]) - set(spec.arm_names))
        if unknown:
            raise DataError(
                f"{table.label}: column {spec.arm_column!r} has arm {unknown[0]!r} that the spec does not "
                f"declare (spec arms: {', '.join(spec.arm_names)})"
            )

    def _check_arms_present(self, cells: pd.DataFrame, label: str) -> None:
        spec = self.spec
        found = set(cells.loc[cells["users"] > 0, "arm"])
        if len(found) < 2:
            raise DataError(
                f"{label}: column {spec.arm_column!r} holds only one arm ({', '.join(sorted(found))}); "
                "a comparison needs at least two"
            )
        absent = [a for a in spec.arm_names if a not in found]
        if absent:
            raise DataError(f"{label}: arm {absent[0]!r} declared in the spec has no rows in column {spec.arm_column!r}")

    def _check_not_clustered(self, cells: pd.DataFrame, label: str) -> None:
        """Refuse segments that each hold one arm: the experiment was randomised by segment (by city, by store),
        so its users are not independent units and a per-user analysis would be over-confident by the design
        effect. Declared as ``cluster_column``, the segment column's values become the units.

        Fires when at least two segments per arm hold users and the segments holding only one arm have at least
        90% of the users: under per-user randomisation a segment of more than a handful of users holding one arm
        has probability ``2^-n``."""
        spec = self.spec
        if spec.grouped_units or not spec.segment_columns:
            return
        users = cells.pivot_table(index="segment", columns="arm", values="users", aggfunc="sum", fill_value=0)
        users = users[users.sum(axis=1) > 0]
        pure = (users > 0).sum(axis=1) == 1
        per_arm = (users[pure] > 0).sum(axis=0)
        if len(per_arm) < 2 or per_arm.min() < 2 or users[pure].to_numpy().sum() < 0.9 * users.to_numpy().sum():
            return
        example = users[pure].index[0]
        arm = users.columns[(users.loc[example] > 0).to_numpy()][0]
        columns = "/".join(spec.segment_columns)
        raise DataError(f"{label}: {int(pure.sum())} of {len(users)} segments ({columns}) hold one arm only (e.g. "
                        f"{example!r}: all {arm!r}): randomised by segment? declare it as cluster_column (as "
                        "independent users the intervals are too narrow)")

    def _check_unique_units(self, table: Table, where: str | None) -> None:
        """Each unit id on one row: one parallel GROUP BY over the ids (missing ids are a detector)."""
        spec = self.spec
        unit, arm = quote_ident(spec.unit_column), quote_ident(spec.arm_column)
        filtered = f" AND {where}" if where else ""
        repeated = table.run(f"SELECT COUNT(*) AS repeated FROM (SELECT {unit} FROM {table.relation} "
                             f"WHERE {unit} IS NOT NULL{filtered} GROUP BY {unit} HAVING COUNT(*) > 1) AS ids")
        repeated = int(repeated["repeated"].iloc[0])
        if not repeated:
            return
        worst = table.run(
            f"SELECT CAST({unit} AS VARCHAR) AS uid, COUNT(*) AS times, COUNT(DISTINCT {arm}) AS arms, "
            f"MIN(CAST({arm} AS VARCHAR)) AS first_arm, MAX(CAST({arm} AS VARCHAR)) AS last_arm "
            f"FROM {table.relation} WHERE {unit} IS NOT NULL{filtered} GROUP BY {unit} HAVING COUNT(*) > 1 "
            f"ORDER BY 3 DESC, 2 DESC, 1 LIMIT 1").iloc[0]
        if worst["arms"] > 1:
            between = "" if worst["arms"] == 2 else f"{int(worst['arms'])} arms, "
            where_seen = f"across arms ({between}{worst['first_arm']}, {worst['last_arm']})"
        else:
            where_seen = f"{int(worst['times'])} times in arm {worst['first_arm']!r}"
        raise DataError(f"{table.label}: column {spec.unit_column!r}: unit id {worst['uid']!r} appears {where_seen}; "
                        f"{repeated} repeated id(s) in all; each unit must be exposed to one arm once")


def segment_labels(grouped: pd.DataFrame, n_columns: int) -> pd.Series:
    """Segment label of each row whose segment values, cast to text, are the columns ``seg0``, ``seg1``, ...:
    joined by " / "; NULL shows as (missing). The one naming of segments (the aggregation, targeting)."""
    if n_columns == 0:
        return pd.Series(ALL_USERS, index=grouped.index, dtype=object)
    parts = [grouped[f"seg{i}"].map(lambda v: MISSING_SEGMENT if pd.isna(v) else str(v)).astype(object)
             for i in range(n_columns)]
    return parts[0].str.cat(parts[1:], sep=SEGMENT_SEPARATOR) if n_columns > 1 else parts[0]


@dataclass(frozen=True)
class AggregatedRows:
    """The query that aggregates per-user rows (canonical dialect) and what each output column holds."""

    sql: str
    columns: dict[str, str]


def _claim(columns: dict[str, tuple[str, str]], column: str, sql: str, metric: str, what: str) -> None:
    """Give ``column`` of the aggregated rows to ``metric``'s ``sql``; the same column from two metrics must be
    the same SQL (two metrics sharing a column), else the rows cannot carry both."""
    if column in columns and columns[column][0] != sql:
        raise DataError(f"metrics {columns[column][1]!r} and {metric!r} need different values in column {column!r} "
                        f"of aggregated rows ({what}); give one of them its own column (e.g. a cap)")
    columns.setdefault(column, (sql, metric))


def _filtered_sum(value: str, condition: str | None) -> str:
    """SUM of ``value`` over the rows meeting ``condition`` (0 in a group with none: a detail row counts users)."""
    return f"SUM({value})" if condition is None else f"SUM(CASE WHEN {condition} THEN {value} ELSE 0 END)"


def _summed_column(column: Column) -> str:
    """SUM of an aggregated-input column (as DOUBLE unless it is an integer column)."""
    return f"SUM({column.sql})" if column.kind == INTEGER else f"SUM({column.number()})"


def _sum_checks(queries: dict[str, MetricQuery], kinds: dict[str, str], users: Column) -> list[Check]:
    """The checks of aggregated rows' sum columns: numbers, finite, and whole or non-negative where their
    :class:`~bayes_ab.data.queries.Sum` says so; then, row by row, that the row is a possible group of users
    (no users -> sums of 0, per-user bounds, Cauchy-Schwarz between a row's sums). A column shared by two
    metrics is checked once."""
    checks, seen, found = [], set(), {}
    for i, (name, q) in enumerate(queries.items()):
        for j, s in enumerate(q.sums.values()):
            if s.column in seen:
                continue
            seen.add(s.column)
            column = typed_column(s.column, kinds[s.column], name, "sums")
            checks += numeric_checks(column, name, f"m{i}s{j}", whole=s.whole, minimum=s.minimum,
                                     what="counts" if s.whole else "sums")
            found[s.column] = (s, column, name, f"m{i}s{j}")
    squares = {s.factors[0]: column for s, column, _, _ in found.values()
               if len(s.factors) == 2 and s.factors[0] == s.factors[1]}
    n = users.number()
    for s, column, name, alias in found.values():
        v = column.number()
        checks.append(Check.counted(f"{alias}_empty", f"({n} = 0 AND {v} <> 0)", "is not 0 in rows with 0 users",
                                    s.column, name))
        if s.per_user_max is not None:
            times = "" if s.per_user_max == 1 else f" x {s.per_user_max:g}"
            checks.append(Check.counted(f"{alias}_over", f"({v} > {n} * {float(s.per_user_max)!r})",
                                        f"is larger than the row's users{times} (at most {s.per_user_max:g} per user)",
                                        s.column, name))
        bound = None
        if len(s.factors) == 1 and s.factors[0] in squares:
            other = squares[s.factors[0]]
            bound, what = f"{n} * {other.number()}", f"users x {other.name!r}"
        elif len(s.factors) == 2 and s.factors[0] != s.factors[1] and all(f in squares for f in s.factors):
            a, b = (squares[f] for f in s.factors)
            bound, what = f"{a.number()} * {b.number()}", f"{a.name!r} x {b.name!r}"
        if bound is not None:
            # a row's sums are of one group of users: Cauchy-Schwarz holds for them, up to rounding
            checks.append(Check.counted(f"{alias}_cauchy", f"({v} * {v} > ({bound}) * (1 + 1e-9) + 1e-9)",
                                        f"squared is larger than {what} in some rows: not sums over one group "
                                        "of users (Cauchy-Schwarz)", s.column, name))
    return checks
