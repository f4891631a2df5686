"""What each metric family computes in SQL: data checks, per-cell sums, and per-key detail.

Every family contributes, for its metric, checks and sums folded into the one grouped query over
``arm x segment`` and, where its statistics need a finer key (the count value, the day of
exit), one detail query grouped by ``arm x segment x key``. ``build`` turns the query results into
the family's statistics Dataset (:mod:`bayes_ab.data.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.data.engine import BOOLEAN, FLOAT, INTEGER, NUMERIC_KINDS, STRING
from bayes_ab.data.sql import quote_ident
from bayes_ab.data.stats import conversion_stats, count_stats, mean_stats, retention_stats
from bayes_ab.errors import DataError
from bayes_ab.spec import Metric


@dataclass(frozen=True)
class Check:
    """One data check: rows where ``condition`` holds are bad.

    ``detector`` is an aggregate folded into the grouped query that is positive in a group holding a
    bad row; it is as cheap as the column's type allows (``MIN``/``MAX``/``COUNT`` for typed columns,
    a filtered count otherwise). Only failing input pays for counting the rows by ``condition``.
    """

    alias: str
    condition: str
    problem: str
    column: str
    metric: str | None
    detector: str

    @staticmethod
    def counted(alias: str, condition: str, problem: str, column: str, metric: str | None) -> "Check":
        """A check detected by counting the rows where ``condition`` holds."""
        return Check(alias, condition, problem, column, metric, f"COUNT(*) FILTER (WHERE {condition})")


@dataclass(frozen=True)
class MetricQuery:
    """The SQL pieces of one metric and how to build its statistics from their results."""

    checks: list[Check]
    sums: dict[str, str]                      # alias -> SQL aggregate over arm x segment
    build: Callable[[list[str], list[str], pd.DataFrame, pd.DataFrame | None], xr.Dataset]
    detail_key: str | None = None             # SQL of the finer key (count value, exit day)
    detail_sums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Column:
    """A source column with its engine-neutral kind (see :mod:`bayes_ab.data.engine`)."""

    name: str
    kind: str

    @property
    def sql(self) -> str:
        """The quoted identifier."""
        return quote_ident(self.name)

    def number(self) -> str:
        """The column as DOUBLE (NULL where a text value is not a number)."""
        if self.kind in (INTEGER, FLOAT):
            return f"CAST({self.sql} AS DOUBLE)"
        if self.kind == BOOLEAN:
            return f"CAST(CAST({self.sql} AS INTEGER) AS DOUBLE)"
        return f"TRY_CAST({self.sql} AS DOUBLE)"

    def missing(self) -> str:
        """SQL condition: the value is NULL (or NaN)."""
        if self.kind in (INTEGER, BOOLEAN):
            return f"({self.sql} IS NULL)"
        return f"({self.sql} IS NULL OR COALESCE(isnan({self.number()}), FALSE))"

    def missing_detector(self) -> str:
        """Aggregate, positive when the group has a missing value: NULLs counted, NaN found by MAX."""
        if self.kind in (INTEGER, BOOLEAN):
            return f"COUNT(*) - COUNT({self.sql})"
        if self.kind == FLOAT:      # NaN sorts above every number, in DuckDB and in Spark
            return (f"COUNT(*) - COUNT({self.sql}) + "
                    f"CASE WHEN COALESCE(isnan(MAX({self.number()})), FALSE) THEN 1 ELSE 0 END")
        return f"COUNT(*) FILTER (WHERE {self.missing()})"


def typed_column(name: str, kind: str, metric: str | None, what: str) -> Column:
    """The :class:`Column` of a value column; :class:`DataError` when its type cannot hold numbers."""
    if kind not in NUMERIC_KINDS + (STRING,):
        owner = f" (metric {metric!r})" if metric else ""
        raise DataError(f"column {name!r}{owner} holds {kind} values; {what} must be numbers")
    return Column(name, kind)


def numeric_checks(column: Column, metric: str | None, alias: str, *, allow_missing: bool = False,
                   whole: bool = False, minimum: float | None = None,
                   what: str = "values") -> list[Check]:
    """Missing, non-numeric, below-minimum and (for counts) fractional values of a column.

    Checks that the column's type rules out (non-numeric integers, fractional integers) are left out.
    """
    v = column.number()
    checks = [] if allow_missing else [
        Check(f"{alias}_missing", column.missing(), "has missing values (NULL/NaN)", column.name, metric,
              column.missing_detector())]
    if column.kind == STRING:
        checks.append(Check.counted(f"{alias}_nonnumeric", f"(NOT {column.missing()} AND {v} IS NULL)",
                                    "has non-numeric values", column.name, metric))
    if minimum is not None and column.kind != BOOLEAN:
        problem = f"has negative {what}" if minimum == 0 else f"has {what} below {minimum}"
        condition = f"({v} < {minimum})"
        if column.kind == STRING:
            checks.append(Check.counted(f"{alias}_below", condition, problem, column.name, metric))
        else:
            checks.append(Check(f"{alias}_below", condition, problem, column.name, metric,
                                f"CASE WHEN MIN({v}) < {minimum} THEN 1 ELSE 0 END"))
    if whole and column.kind in (FLOAT, STRING):
        checks.append(Check.counted(f"{alias}_fractional", f"(NOT isnan({v}) AND {v} <> floor({v}))",
                                    f"has non-integer {what}", column.name, metric))
    return checks


def metric_query(metric: Metric, alias: str, aggregated: bool, kinds: dict[str, str]) -> MetricQuery:
    """The :class:`MetricQuery` of ``metric``; ``alias`` prefixes its SQL column names and
    ``kinds`` gives the kind of every source column."""
    if aggregated and metric.family != "conversion":
        raise DataError(f"metric {metric.name!r}: aggregated input is supported for conversion metrics; "
                        f"pass {metric.family} statistics through bayes_ab.data.stats instead")
    builders = {"conversion": _conversion, "count": _count, "retention": _retention, "mean": _mean}
    return builders[metric.family](metric, alias, aggregated, kinds)


def _column(metric: Metric, name: str, kinds: dict[str, str], what: str) -> Column:
    return typed_column(name, kinds[name], metric.name, what)


def _cells(table: pd.DataFrame, column: str, shape: tuple[int, int]) -> np.ndarray:
    return table[column].to_numpy(dtype=float).reshape(shape)


def _conversion(metric: Metric, alias: str, aggregated: bool, kinds: dict[str, str]) -> MetricQuery:
    column = _column(metric, metric.column, kinds, "conversions")
    if aggregated:
        checks = numeric_checks(column, metric.name, alias, whole=True, minimum=0, what="counts")
        successes = f"SUM({column.sql})" if column.kind == INTEGER else f"SUM({column.number()})"
    else:
        checks = [Check(f"{alias}_missing", column.missing(), "has missing values (NULL/NaN)",
                        metric.column, metric.name, column.missing_detector())]
        v = column.number()
        problem = "is not binary (conversion needs 0/1 or true/false)"
        if column.kind == INTEGER:
            checks.append(Check(f"{alias}_nonbinary", f"({column.sql} NOT IN (0, 1))", problem, metric.column,
                                metric.name, f"CASE WHEN MIN({column.sql}) < 0 OR MAX({column.sql}) > 1 THEN 1 ELSE 0 END"))
            successes = f"SUM({column.sql})"
        elif column.kind == BOOLEAN:
            successes = f"SUM(CAST({column.sql} AS INTEGER))"
        else:
            checks.append(Check.counted(f"{alias}_nonbinary", f"(NOT {column.missing()} AND ({v} IS NULL OR {v} NOT IN (0, 1)))",
                                        problem, metric.column, metric.name))
            successes = f"COUNT(*) FILTER (WHERE {v} = 1)"
    sums = {f"{alias}_successes": successes}

    def build(arms, segments, cells, detail):
        shape = (len(arms), len(segments))
        return conversion_stats(arms, segments, _cells(cells, "users", shape),
                                _cells(cells, f"{alias}_successes", shape), metric.name)

    return MetricQuery(checks, sums, build)


def capped(metric: Metric, column: Column) -> str:
    """The metric's value as DOUBLE, limited to its ``cap`` when one is set."""
    v = column.number()
    return v if metric.cap is None else f"LEAST({v}, {float(metric.cap)!r})"


def _count(metric: Metric, alias: str, aggregated: bool, kinds: dict[str, str]) -> MetricQuery:
    column = _column(metric, metric.column, kinds, "counts")
    checks = numeric_checks(column, metric.name, alias, whole=True, minimum=0, what="counts")
    if column.kind == INTEGER and metric.cap is None:
        key = f"CAST({column.sql} AS BIGINT)"
    else:
        key = f"CAST({capped(metric, column)} AS BIGINT)"

    def build(arms, segments, cells, detail):
        values = np.sort(detail["key"].unique()).astype("int64")
        index = pd.MultiIndex.from_product([arms, segments, values], names=["arm", "segment", "key"])
        hist = detail.set_index(["arm", "segment", "key"])[f"{alias}_users"].reindex(index, fill_value=0)
        return count_stats(arms, segments, values,
                           hist.to_numpy(dtype=float).reshape(len(arms), len(segments), len(values)),
                           metric.name)

    return MetricQuery(checks, {}, build, detail_key=key,
                       detail_sums={f"{alias}_users": "COUNT(*)"})


def _retention(metric: Metric, alias: str, aggregated: bool, kinds: dict[str, str]) -> MetricQuery:
    churn_column = _column(metric, metric.column, kinds, "churn days")
    seen_column = _column(metric, metric.observed_column, kinds, "days observed")
    churn, seen = churn_column.number(), seen_column.number()
    checks = numeric_checks(churn_column, metric.name, alias + "c", allow_missing=True, whole=True,
                            minimum=1, what="churn days")
    checks += numeric_checks(seen_column, metric.name, alias + "o", whole=True, minimum=0,
                             what="days observed")
    checks.append(Check.counted(
        f"{alias}_beyond", f"({churn} > {seen})",
        f"has churn days beyond the observation window (column {metric.observed_column!r})",
        metric.column, metric.name))
    max_day = metric.max_day

    def build(arms, segments, cells, detail):
        shape = (len(arms), len(segments), max_day + 1)
        exits = np.zeros(shape)
        lost = np.zeros(shape)
        a = {name: i for i, name in enumerate(arms)}
        s = {name: j for j, name in enumerate(segments)}
        for row in detail.itertuples(index=False):
            idx = (a[row.arm], s[row.segment], int(row.key))
            exits[idx] += getattr(row, f"{alias}_users")
            lost[idx] += getattr(row, f"{alias}_lost")
        # at risk on day d: users whose exit day (churn, censoring or max_day) is >= d
        at_risk = np.cumsum(exits[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
        return retention_stats(arms, segments, at_risk, lost[:, :, 1:], metric.name,
                               users=exits.sum(axis=2))

    return MetricQuery(
        checks, {}, build,
        detail_key=f"CAST(LEAST(COALESCE({churn}, {seen}), {seen}, {max_day}) AS BIGINT)",
        detail_sums={f"{alias}_users": "COUNT(*)",
                     f"{alias}_lost": f"COUNT(*) FILTER (WHERE {churn} IS NOT NULL AND {churn} <= {max_day})"},
    )


def _mean(metric: Metric, alias: str, aggregated: bool, kinds: dict[str, str]) -> MetricQuery:
    column = _column(metric, metric.column, kinds, "values")
    y = capped(metric, column)
    checks = numeric_checks(column, metric.name, alias)
    sums = {f"{alias}_sum": f"SUM({y})", f"{alias}_sumsq": f"SUM({y} * {y})"}
    if metric.covariate:
        covariate = _column(metric, metric.covariate, kinds, "covariate values")
        x = covariate.number()
        checks += numeric_checks(covariate, metric.name, alias + "x")
        sums.update({f"{alias}_sum_x": f"SUM({x})", f"{alias}_sum_x2": f"SUM({x} * {x})",
                     f"{alias}_sum_xy": f"SUM({x} * {y})"})

    def build(arms, segments, cells, detail):
        shape = (len(arms), len(segments))
        stats = {name[len(alias) + 1:]: _cells(cells, name, shape) for name in sums}
        return mean_stats(arms, segments, _cells(cells, "users", shape), stats, metric.name)

    return MetricQuery(checks, sums, build)
