"""The aggregation as SQL to run elsewhere: a scheduled query, dbt, a notebook on a warehouse bayes-ab cannot
reach. Its output rows are what ``analyze --aggregated`` reads, so the statistics are the same whether the
rows were aggregated here or there.
"""

from __future__ import annotations

from dataclasses import dataclass

from bayes_ab.data.dialects import DIALECTS, quoted_name, translate
from bayes_ab.data.engine import INTEGER, DATE, FLOAT, STRING, Table
from bayes_ab.aggregation.scan import ScanPlan
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError
from bayes_ab.spec import ExperimentSpec

PLACEHOLDER = "bayes_ab_source_table"


@dataclass(frozen=True)
class WarehouseQuery:
    """The aggregation query in one dialect and the columns of its output (name -> what it holds)."""

    dialect: str
    sql: str
    columns: dict[str, str]

    def text(self) -> str:
        """The query with a header of SQL comments naming the output columns ``--aggregated`` expects."""
        width = max(len(name) for name in self.columns)
        lines = [f"-- bayes-ab aggregation ({self.dialect}): one row per group of users.",
                 "-- Save the output and pass it to `bayes-ab analyze SPEC --aggregated --data FILE`; rows of",
                 "-- the same arm and segment are summed, so per-day or per-partition output can be passed as is.",
                 "-- Per-user data checks (missing or non-binary values...) are not part of this query: they",
                 "-- run when bayes-ab reads per-user rows (--engine duckdb, spark or sql).",
                 "-- Output columns:"]
        lines += [f"--   {name:<{width}}  {meaning}" for name, meaning in self.columns.items()]
        return "\n".join(lines) + "\n" + self.sql + ";\n"


def warehouse_query(spec: ExperimentSpec, table: str, dialect: str,
                    kinds: dict[str, str] | None = None) -> WarehouseQuery:
    """The query that aggregates ``table``'s per-user rows for ``spec`` in ``dialect``.

    Parameters
    ----------
    spec
        The experiment spec.
    table
        The table or view of per-user rows (``schema.table``; quoted names as the dialect writes them).
    dialect
        One of :data:`~bayes_ab.data.dialects.DIALECTS`.
    kinds
        Column kinds where known (e.g. read from the database); otherwise metric columns are taken as
        numbers (integer or floating), the arm and segments as text.

    Raises
    ------
    DataError
        An unknown dialect, a table name that cannot be read, or columns that aggregated rows cannot hold.
    """
    if dialect not in DIALECTS:
        raise DataError(f"unknown SQL dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    if spec.activity_column:
        raise DataError(f"{spec.source}: a daily panel (activity_column) is analysed from its rows (--engine sql "
                        "runs its queries in the database); the printed SQL is for per-user rows")
    if spec.grouped_units:
        design = "cluster_column" if spec.cluster_column else "switchback"
        raise DataError(f"{spec.source}: a spec with {design} is analysed from its rows (--engine sql runs its "
                        "queries in the database); aggregated rows cannot carry its per-cluster totals")
    try:
        relation = quoted_name(table, dialect)
    except ValueError as error:
        raise DataError(f"--table: {error}") from None
    columns = {column: FLOAT for m in spec.metrics for column in m.columns}
    columns.update({spec.arm_column: STRING, **{c: STRING for c in spec.segment_columns}})
    if spec.day_column:
        columns[spec.day_column] = DATE
    if spec.received_column:
        columns[spec.received_column] = INTEGER
    if spec.unit_column:
        columns[spec.unit_column] = STRING
    columns.update(kinds or {})

    def unreachable(*_):
        raise RuntimeError("a printed query is not run")

    placeholder = quote_ident(PLACEHOLDER)
    plan = ScanPlan.for_table(spec, Table("sql", table, placeholder, columns, unreachable, unreachable))
    rows = plan.aggregated_rows(placeholder)
    sql = translate(rows.sql, dialect).replace(quoted_name(PLACEHOLDER, dialect), relation)
    return WarehouseQuery(dialect, sql, rows.columns)


__all__ = ["WarehouseQuery", "warehouse_query"]
