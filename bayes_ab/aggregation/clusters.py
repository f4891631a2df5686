"""Per-user rows of a cluster-randomised experiment as one row per cluster, on any engine.

A cluster-randomised spec (``cluster_column``) reads every metric as a ratio of cluster totals
(:mod:`bayes_ab.families.clustered`). Its rows are still one per user, and they are checked as users' rows
first -- the ordinary aggregation of the spec as declared (:meth:`~bayes_ab.spec.ExperimentSpec.per_user`),
with every data check of every metric. Then the design itself is checked, in one grouped query over the
clusters:

- a cluster id is never missing (a user without a cluster belongs to no randomised unit);
- each cluster is in one arm (a cluster in two arms was not randomised as a whole: the per-cluster totals
  would mix treated and untreated users, and the unit of randomisation is not the column named);
- each segment column is constant within a cluster (segments must be properties of clusters, such as a
  region; a per-user segment splits clusters, and the pieces of one cluster are not independent units).

The per-cluster rows are then a relation the ordinary aggregation reads as if each cluster were a unit, with
a cluster's total of each metric's per-user value and its users (or its denominator's total) as columns.
"""

from __future__ import annotations

from bayes_ab.aggregation.scan import ScanPlan
from bayes_ab.data.engine import FLOAT, Table
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError
from bayes_ab.families import family_for
from bayes_ab.families.clustered import total_column, weight_column
from bayes_ab.metric import Metric
from bayes_ab.spec import ExperimentSpec


def per_cluster_table(spec: ExperimentSpec, table: Table) -> tuple[Table, int]:
    """``table`` (per-user rows of a cluster-randomised experiment), checked, as one row per arm, segment and
    cluster with each metric's cluster total and weight; and the users in all.

    Raises
    ------
    DataError
        A failed check of the users' rows, a missing cluster id, a cluster in two arms, or a segment that varies
        within a cluster (naming the column and an example cluster).
    """
    users = spec.per_user()
    table.require_columns({spec.cluster_column: "cluster (the randomised unit)"})
    checked = ScanPlan.for_table(users, table).scan(table)        # every data check of the users' rows
    _check_clusters(spec, table)
    keys = [spec.arm_column, *spec.segment_columns, spec.cluster_column]
    select = [quote_ident(k) for k in keys]
    columns = {k: table.kind(k) for k in keys}
    for declared in users.metrics:
        total, weight = unit_totals(declared, table.columns)
        select += [f"{total} AS {quote_ident(total_column(declared))}",
                   f"{weight} AS {quote_ident(weight_column(declared))}"]
        columns[total_column(declared)] = columns[weight_column(declared)] = FLOAT
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    relation = f"(SELECT {', '.join(select)} FROM {table.relation} GROUP BY {group}) AS per_cluster_totals"
    return (Table(table.engine, f"{table.label} (totals per {spec.cluster_column!r})", relation, columns,
                  table.run, table.close), int(checked.cells["users"].sum()))


def unit_totals(metric: Metric, kinds: dict[str, str]) -> tuple[str, str]:
    """The aggregates of a group of rows (a cluster, a switchback cell) that make ``metric``'s ratio there: the sum
    of the rows' values and their weight (the rows, or the denominator's sum), from
    :meth:`~bayes_ab.families.base.Family.unit_values`."""
    value, weight = family_for(metric).unit_values(metric, kinds)
    return f"SUM({value})", "COUNT(*)" if weight is None else f"SUM({weight})"


def _check_clusters(spec: ExperimentSpec, table: Table) -> None:
    """Missing cluster ids, clusters in two arms and segments that vary within a cluster, in one query."""
    cluster, arm = quote_ident(spec.cluster_column), quote_ident(spec.arm_column)
    inner = [f"COUNT(DISTINCT {arm}) AS arms"]
    outer = ["SUM(CASE WHEN arms > 1 THEN 1 ELSE 0 END) AS mixed",
             "CAST(MIN(CASE WHEN arms > 1 THEN c END) AS VARCHAR) AS mixed_example"]
    for i, column in enumerate(spec.segment_columns):
        seg = quote_ident(column)
        inner.append(f"COUNT(DISTINCT {seg}) + MAX(CASE WHEN {seg} IS NULL THEN 1 ELSE 0 END) AS seg{i}")
        outer += [f"SUM(CASE WHEN seg{i} > 1 THEN 1 ELSE 0 END) AS split{i}",
                  f"CAST(MIN(CASE WHEN seg{i} > 1 THEN c END) AS VARCHAR) AS split{i}_example"]
    found = table.run(f"SELECT COUNT(*) AS clusters, SUM(missing) AS missing, {', '.join(outer)} FROM (SELECT "
                      f"{cluster} AS c, {', '.join(inner)}, SUM(CASE WHEN {cluster} IS NULL THEN 1 ELSE 0 END) AS "
                      f"missing FROM {table.relation} GROUP BY {cluster}) AS per_cluster").iloc[0]
    where = f"{table.label}: column {spec.cluster_column!r} (cluster)"
    if int(found["missing"] or 0):
        raise DataError(f"{where} has missing values in {int(found['missing']):,} row(s); every user must belong to "
                        "the cluster that was randomised")
    if int(found["mixed"] or 0):
        raise DataError(f"{where}: {int(found['mixed']):,} cluster(s) appear in more than one arm, e.g. "
                        f"{found['mixed_example']!r}; in a cluster-randomised experiment a whole cluster gets one arm "
                        "(is this the column that was randomised?)")
    for i, column in enumerate(spec.segment_columns):
        if int(found[f"split{i}"] or 0):
            raise DataError(f"{table.label}: segment column {column!r} takes more than one value within cluster "
                            f"{found[f'split{i}_example']!r} ({int(found[f'split{i}']):,} cluster(s) in all); in a "
                            f"cluster-randomised experiment segments must be properties of the clusters "
                            f"({spec.cluster_column!r}), such as their region")
