"""Per-user rows or pre-aggregated tables -> sufficient statistics, on DuckDB, Spark or a SQL database.

One grouped query over ``arm x segment`` computes users and every metric's per-cell sums; the data
checks (missing values, non-binary conversions, negative or fractional counts, churn days beyond the
observation window) are folded into it as cheap detectors, so clean input is scanned once for them.
Families whose statistics need a finer key (count histograms, retention life tables) add one query
grouped by that key. Only failing input pays for further queries that count and show the bad rows.
The queries are those of :class:`~bayes_ab.aggregation.scan.ScanPlan`, whichever engine runs them.
"""

from __future__ import annotations

from dataclasses import replace

import xarray as xr

from bayes_ab.data.engine import Engine, Source
from bayes_ab.data.engines import resolve_engine
from bayes_ab.aggregation.clusters import per_cluster_table
from bayes_ab.aggregation.switchback import switchback_statistics
from bayes_ab.aggregation.scan import MISSING_SEGMENT, SEGMENT_SEPARATOR, ScanPlan
from bayes_ab.errors import DataError
from bayes_ab.spec import ExperimentSpec

__all__ = ["aggregate", "MISSING_SEGMENT", "SEGMENT_SEPARATOR"]


def aggregate(
    spec: ExperimentSpec,
    source: Source,
    *,
    aggregated: bool = False,
    engine: Engine | str | None = None,
) -> dict[str, xr.Dataset]:
    """Compute the sufficient statistics of every metric of ``spec``.

    Parameters
    ----------
    spec
        The experiment spec: arm column, segment columns, metric columns.
    source
        Parquet/CSV path (a directory or glob of Parquet files too), pandas DataFrame, Spark DataFrame, or a
        :class:`~bayes_ab.data.engine.DatabaseSource` (a table or query in a SQL database). With
        ``spec.activity_column`` the rows are a daily panel, read as each user's totals.
    aggregated
        False: one row per user. True: each row is a group of users (what ``bayes-ab sql`` prints the query
        for): ``spec.users_column`` holds their number, each family's sum columns their sums and its key
        columns (count value; churn day, days observed) the value they share. Rows of the same cell are summed.
    engine
        ``"duckdb"`` (default), ``"spark"``, ``"sql"``, or an engine object such as
        ``SparkEngine(master="spark://host:7077")`` or ``SQLEngine(url)``. A Spark DataFrame selects Spark by
        itself, a ``DatabaseSource`` the SQL engine.

    Returns
    -------
    dict
        Metric name -> ``xarray.Dataset`` with dims ``arm`` x ``segment`` (control first), plus
        ``value`` for counts and ``day`` for retention.
    """
    table = resolve_engine(engine, source).open(source)
    try:
        if spec.activity_column:        # a daily panel: its per-user totals are the rows
            if aggregated:
                raise DataError(f"{spec.source}: a daily panel (activity_column) is per-user-day rows, not aggregates")
            from bayes_ab.aggregation.panel import per_user_table

            table = per_user_table(spec, table)
        if spec.grouped_units and aggregated:
            design = ("a switchback spec" if spec.switchback is not None
                      else "a cluster-randomised spec (cluster_column)")
            raise DataError(f"{spec.source}: {design} reads per-user rows, not aggregates")
        if spec.switchback is not None:     # whole units switched period by period: per-cell statistics
            return switchback_statistics(spec, table)
        users = None
        if spec.cluster_column:         # whole clusters randomised: the clusters' totals are the rows
            table, users = per_cluster_table(spec, table)
            spec = replace(spec, unit_column=None)      # the rows are clusters: user ids were checked on the users
        plan = ScanPlan.for_table(spec, table, aggregated=aggregated)
        stats = plan.statistics(plan.scan(table), table.label)
        return stats if users is None else {name: ds.assign_attrs(users=users) for name, ds in stats.items()}
    finally:
        table.close()
