"""The SQL vocabulary of a metric's aggregation: data checks, typed columns, and the per-metric query.

Every family (its module in :mod:`bayes_ab.families`) contributes, for its metric, checks and sums folded
into the one grouped query over ``arm x segment`` and, where its statistics need a finer key (the count
value, the day of exit), one detail query grouped by ``arm x segment x key``. ``build`` turns the query
results into the family's statistics Dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.data.engine import BOOLEAN, DATE, FLOAT, INTEGER, NUMERIC_KINDS, STRING
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError
from bayes_ab.metric import Metric


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
class Sum:
    """A per-cell statistic that is a sum over users, in both forms the input can take.

    Per-user rows give it as the aggregate ``per_user``. Aggregated rows (each row a group of users:
    ``bayes-ab sql`` prints the query that makes them) carry it in the column ``column``, the sum over the
    row's users, and the rows are summed again; ``whole`` and ``minimum`` are what such a column must
    satisfy (counts of users are whole and non-negative, sums of squares are non-negative).

    Each aggregated row must also be a possible group of users, checked row by row (a cell's sums can hide a
    bad row): no users means every sum is 0; a per-user value of at most ``per_user_max`` (a conversion: 1)
    sums to at most that many times the row's users; and ``factors`` names the aggregated value columns whose
    per-user product this sums (``("y",)``: the values; ``("y", "y")``: their squares; ``("y", "x")``: a
    cross-product), so that sums of one row obey Cauchy-Schwarz: ``(sum y)^2 <= users * sum y^2`` and
    ``(sum xy)^2 <= sum x^2 * sum y^2``.
    """

    per_user: str
    column: str
    whole: bool = False
    minimum: float | None = None
    per_user_max: float | None = None
    factors: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricQuery:
    """The SQL pieces of one metric and how to build its statistics from their results.

    ``checks`` test the per-user values that are summed (per-user input only: aggregated rows carry sums,
    checked by their :class:`Sum`). ``keys`` are the columns whose per-user value splits the statistics
    finer than arm x segment (the count value; the churn and observed days), as the SQL that gives each
    user's value; aggregated rows carry them as columns of those names, ``key_checks`` test them in both
    forms, and ``detail_key`` computed from them groups ``detail_users``: alias -> the condition on a user
    (None: every user) whose users are counted per key, and ``detail_sums``: alias -> a per-user value summed per
    key over the users meeting a condition (:class:`DetailSum`; a retention metric's covariates per exit day).

    On a panel (rows per user and activity, :mod:`bayes_ab.aggregation.panel`), a metric whose statistics are of
    the rows themselves, each user a cluster of rows (the quantile family), gives ``cluster_key``, the key of a
    row, and ``cluster_sums``: alias -> an aggregate per arm x segment x key over the panel's (user, key) groups,
    in terms of ``e`` (the user's rows with that key), ``m`` (the user's rows) and ``e_before`` (the user's rows
    with a lower key). They replace the per-user detail there.
    """

    checks: list[Check]
    sums: dict[str, Sum]                      # alias -> the sum over users per arm x segment
    build: Callable[[list[str], list[str], pd.DataFrame, pd.DataFrame | None], xr.Dataset]
    detail_key: str | None = None             # SQL of the finer key (count value, exit day)
    detail_users: dict[str, str | None] = field(default_factory=dict)
    detail_sums: dict[str, "DetailSum"] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    key_checks: list[Check] = field(default_factory=list)
    cluster_key: str | None = None            # on a panel's rows: SQL of a row's key (NULL: the row is left out)
    cluster_sums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DetailSum:
    """A sum per arm x segment x detail key of a per-user value over the users meeting ``condition`` (``None``:
    every user): ``value`` is its per-user SQL; aggregated rows carry the sum over each row's users in the column
    ``column`` (a :class:`Sum` of the grouped query checks it), and a row's users share the key and the condition,
    which are of the key columns."""

    value: str
    column: str
    condition: str | None = None


def product_name(*names: str) -> str:
    """The aggregated-input column of the sum of a product of values: ``y``, ``y_sq``, ``x_x_y``."""
    if len(names) == 2 and names[0] == names[1]:
        return f"{names[0]}_sq"
    return "_x_".join(names)


def value_name(column: str, cap: float | None) -> str:
    """The name of a column's (capped) value in aggregated input: ``revenue`` or ``revenue_cap500``."""
    return column if cap is None else f"{column}_cap{float(cap):g}"


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


class ColumnTypeError(DataError):
    """A value column whose type cannot hold numbers; the scan adds the input's name and the engine's type."""

    def __init__(self, column: str, kind: str, metric: str | None, what: str):
        self.column, self.kind, self.metric, self.what = column, kind, metric, what
        super().__init__(self.message())

    def message(self, label: str | None = None, engine_type: str | None = None) -> str:
        """The one-line message, prefixed with the input's ``label`` and naming ``engine_type`` when known."""
        owner = f" (metric {self.metric!r})" if self.metric else ""
        typed = f"is of type {engine_type}" if engine_type else f"holds {self.kind} values"
        hint = (" (a CSV column of only 'inf' or 'infinity' is read as dates: those values are not numbers)"
                if self.kind == DATE else "")
        return f"{label + ': ' if label else ''}column {self.column!r}{owner} {typed}{hint}; {self.what} must be numbers"


def typed_column(name: str, kind: str, metric: str | None, what: str) -> Column:
    """The :class:`Column` of a value column; :class:`ColumnTypeError` when its type cannot hold numbers."""
    if kind not in NUMERIC_KINDS + (STRING,):
        raise ColumnTypeError(name, kind, metric, what)
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
    if column.kind in (FLOAT, STRING):
        # an infinite value passes the NULL/NaN check and would turn its cell's sums into inf or NaN later,
        # far from the column that caused it
        checks.append(Check.counted(f"{alias}_infinite", f"(ABS({v}) = CAST('Infinity' AS DOUBLE))",
                                    "has infinite values", column.name, metric))
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


def metric_column(metric: Metric, name: str, kinds: dict[str, str], what: str) -> Column:
    """The typed :class:`Column` ``name`` that ``metric`` reads ``what`` from."""
    return typed_column(name, kinds[name], metric.name, what)


def cells(table: pd.DataFrame, column: str, shape: tuple[int, int]) -> np.ndarray:
    """One per-cell result column of the grouped query as an (arms, segments) array."""
    return table[column].to_numpy(dtype=float).reshape(shape)


def capped(column: Column, cap: float | None) -> str:
    """The column's value as DOUBLE, limited to ``cap`` when one is set."""
    v = column.number()
    return v if cap is None else f"LEAST({v}, {float(cap)!r})"
