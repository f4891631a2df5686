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

from bayes_ab.data.sql import quote_ident
from bayes_ab.data.stats import conversion_stats, count_stats, mean_stats, retention_stats
from bayes_ab.errors import DataError
from bayes_ab.spec import Metric


@dataclass(frozen=True)
class Check:
    """One data check folded into the grouped query: count rows where ``condition`` holds."""

    alias: str
    condition: str
    problem: str
    column: str
    metric: str | None


@dataclass(frozen=True)
class MetricQuery:
    """The SQL pieces of one metric and how to build its statistics from their results."""

    checks: list[Check]
    sums: dict[str, str]                      # alias -> SQL aggregate over arm x segment
    build: Callable[[list[str], list[str], pd.DataFrame, pd.DataFrame | None], xr.Dataset]
    detail_key: str | None = None             # SQL of the finer key (count value, exit day)
    detail_sums: dict[str, str] = field(default_factory=dict)


def value(column: str) -> str:
    """The column as DOUBLE (NULL where it is not a number)."""
    return f"TRY_CAST({quote_ident(column)} AS DOUBLE)"


def missing(column: str) -> str:
    """SQL condition: the column is NULL or NaN."""
    return f"({quote_ident(column)} IS NULL OR COALESCE(isnan({value(column)}), FALSE))"


def numeric_checks(column: str, metric: str | None, alias: str, *, allow_missing: bool = False,
                   whole: bool = False, minimum: float | None = None,
                   what: str = "values") -> list[Check]:
    """Missing, non-numeric, below-minimum and (for counts) fractional values of a column."""
    v, absent = value(column), missing(column)
    checks = [] if allow_missing else [
        Check(f"{alias}_missing", absent, "has missing values (NULL/NaN)", column, metric)]
    checks.append(Check(f"{alias}_nonnumeric", f"(NOT {absent} AND {v} IS NULL)",
                        "has non-numeric values", column, metric))
    if minimum is not None:
        checks.append(Check(f"{alias}_below", f"({v} < {minimum})",
                            f"has negative {what}" if minimum == 0 else f"has {what} below {minimum}",
                            column, metric))
    if whole:
        checks.append(Check(f"{alias}_fractional", f"(NOT isnan({v}) AND {v} <> floor({v}))",
                            f"has non-integer {what}", column, metric))
    return checks


def metric_query(metric: Metric, alias: str, aggregated: bool) -> MetricQuery:
    """The :class:`MetricQuery` of ``metric``; ``alias`` prefixes its SQL column names."""
    if aggregated and metric.family != "conversion":
        raise DataError(f"metric {metric.name!r}: aggregated input is supported for conversion metrics; "
                        f"pass {metric.family} statistics through bayes_ab.data.stats instead")
    builders = {"conversion": _conversion, "count": _count, "retention": _retention, "mean": _mean}
    return builders[metric.family](metric, alias, aggregated)


def _cells(table: pd.DataFrame, column: str, shape: tuple[int, int]) -> np.ndarray:
    return table[column].to_numpy(dtype=float).reshape(shape)


def _conversion(metric: Metric, alias: str, aggregated: bool) -> MetricQuery:
    v = value(metric.column)
    if aggregated:
        checks = numeric_checks(metric.column, metric.name, alias, whole=True, minimum=0, what="counts")
        sums = {f"{alias}_successes": f"SUM({v})"}
    else:
        checks = [
            Check(f"{alias}_missing", missing(metric.column), "has missing values (NULL/NaN)",
                  metric.column, metric.name),
            Check(f"{alias}_nonbinary", f"(NOT {missing(metric.column)} AND ({v} IS NULL OR {v} NOT IN (0, 1)))",
                  "is not binary (conversion needs 0/1 or true/false)", metric.column, metric.name),
        ]
        sums = {f"{alias}_successes": f"COUNT(*) FILTER (WHERE {v} = 1)"}

    def build(arms, segments, cells, detail):
        shape = (len(arms), len(segments))
        return conversion_stats(arms, segments, _cells(cells, "users", shape),
                                _cells(cells, f"{alias}_successes", shape), metric.name)

    return MetricQuery(checks, sums, build)


def capped(metric: Metric) -> str:
    """The metric's value as DOUBLE, limited to its ``cap`` when one is set."""
    v = value(metric.column)
    return v if metric.cap is None else f"LEAST({v}, {float(metric.cap)!r})"


def _count(metric: Metric, alias: str, aggregated: bool) -> MetricQuery:
    checks = numeric_checks(metric.column, metric.name, alias, whole=True, minimum=0, what="counts")

    def build(arms, segments, cells, detail):
        values = np.sort(detail["key"].unique()).astype("int64")
        index = pd.MultiIndex.from_product([arms, segments, values], names=["arm", "segment", "key"])
        hist = detail.set_index(["arm", "segment", "key"])[f"{alias}_users"].reindex(index, fill_value=0)
        return count_stats(arms, segments, values,
                           hist.to_numpy(dtype=float).reshape(len(arms), len(segments), len(values)),
                           metric.name)

    return MetricQuery(checks, {}, build, detail_key=f"CAST({capped(metric)} AS BIGINT)",
                       detail_sums={f"{alias}_users": "COUNT(*)"})


def _retention(metric: Metric, alias: str, aggregated: bool) -> MetricQuery:
    churn, seen = value(metric.column), value(metric.observed_column)
    checks = numeric_checks(metric.column, metric.name, alias + "c", allow_missing=True, whole=True,
                            minimum=1, what="churn days")
    checks += numeric_checks(metric.observed_column, metric.name, alias + "o", whole=True, minimum=0,
                             what="days observed")
    checks.append(Check(
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


def _mean(metric: Metric, alias: str, aggregated: bool) -> MetricQuery:
    y = capped(metric)
    checks = numeric_checks(metric.column, metric.name, alias)
    sums = {f"{alias}_sum": f"SUM({y})", f"{alias}_sumsq": f"SUM({y} * {y})"}
    if metric.covariate:
        x = value(metric.covariate)
        checks += numeric_checks(metric.covariate, metric.name, alias + "x")
        sums.update({f"{alias}_sum_x": f"SUM({x})", f"{alias}_sum_x2": f"SUM({x} * {x})",
                     f"{alias}_sum_xy": f"SUM({x} * {y})"})

    def build(arms, segments, cells, detail):
        shape = (len(arms), len(segments))
        stats = {name[len(alias) + 1:]: _cells(cells, name, shape) for name in sums}
        return mean_stats(arms, segments, _cells(cells, "users", shape), stats, metric.name)

    return MetricQuery(checks, sums, build)
