"""A daily panel (one row per user and active day) as sufficient statistics, on any engine.

Two uses of the same rows:

- **Per-user totals** for every metric (a conversion is the user's MAX over days, a count or a mean its
  SUM), as a relation the ordinary aggregation (:class:`~bayes_ab.aggregation.scan.ScanPlan`) reads as if it were
  one row per user, with all its checks. A NULL on any day makes the user's total NULL and a negative day
  makes it negative, so the missing-value and sign checks still see them.
- **By week since exposure**, for metrics with ``novelty``: per arm and exposure day, the users, each
  week's sum of the users' weekly values, and the sums of products of two weeks' values per user (the
  covariance of a cohort's weekly means: the same users are in every week). Users absent on a day count
  as 0 that day; every user needs at least one row (their exposure day).

Exposure days are grouped into weekly cohorts; a cohort's week k is used only once every user of the
cohort has been observable for the whole week (the latest exposure day + 7(k + 1) - 1 <= the last day in
the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.data.engine import DATE, INTEGER, STRING, Table
from bayes_ab.data.queries import Column
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.metric import Novelty
from bayes_ab.spec import ExperimentSpec, Metric

MAX_WEEKS = 12
DAYS_PER_WEEK = 7
BUSY_DAY_ROWS = 20     # an empty day between two days of this many rows is missing data


def panel_metrics(spec: ExperimentSpec) -> list[Metric]:
    """The metrics analysed by week since exposure."""
    return [m for m in spec.metrics if m.novelty != Novelty.OFF]


def per_user_table(spec: ExperimentSpec, table: Table) -> Table:
    """``table`` (a daily panel) as one row per user: unit, arm, segments, exposure day and each metric
    column's total over the user's days."""
    table.require_columns({spec.unit_column: "unit id", spec.activity_column: "activity day",
                           spec.day_column: "exposure day", spec.arm_column: "arm",
                           **{c: "segment" for c in spec.segment_columns},
                           **{c: why for m in spec.metrics for c, why in m.columns.items()}})
    _check_panel_rows(spec, table)
    keys = [spec.unit_column, spec.arm_column, *spec.segment_columns, spec.day_column]
    totals: dict[str, str] = {}
    # a metric of the rows themselves (a quantile) reads its per-user total only in the data checks, which every
    # total serves alike (NULL on a missing day, the lowest on a negative one): it takes another metric's total
    for metric in sorted(spec.metrics, key=lambda m: family_for(m).panel_rows):
        family = family_for(metric)
        if family.panel_total is None:
            raise SpecError(f"{spec.source}: metric {metric.name!r}: a {metric.family} metric cannot be read from a "
                            "daily panel (activity_column)")
        for column in metric.columns:
            sql = _user_total(Column(column, table.kind(column)), family.panel_total)
            if totals.setdefault(column, sql) != sql and not family.panel_rows:
                raise SpecError(f"{spec.source}: column {column!r} is totalled two ways by two metrics "
                                "(a conversion takes the maximum over days, a count the sum)")
    select = [quote_ident(k) for k in keys] + [f"{sql} AS {quote_ident(c)}" for c, sql in totals.items()]
    group = ", ".join(str(i + 1) for i in range(len(keys)))
    relation = f"(SELECT {', '.join(select)} FROM {table.relation} GROUP BY {group}) AS per_user_totals"
    columns = {k: table.kind(k) for k in keys} | {c: table.kind(c) for c in totals}
    return Table(table.engine, f"{table.label} (per-user totals of the daily panel)", relation, columns,
                 table.run, table.close, panel_rows=table.relation)


def _check_panel_rows(spec: ExperimentSpec, table: Table) -> None:
    """Refuse a panel whose rows the per-user totals would read wrong, before they are read.

    - A user with two rows for one activity value would have that day counted twice in every total (a join
      that fanned out, a day exported twice).
    - When the activity column is a calendar (a DATE column, or any day column read by week since exposure):
      a user without a row on the exposure day means the panel was built from activity alone, and then the
      users who never came back are not in it at all -- invisible here, but every rate reads too high. A
      calendar day with no row of any user is a day's export missing: every total would be low, and a
      novelty metric's weeks wrong.

    One grouped query over (user, activity) finds repeated pairs and users without their exposure-day row; it
    is a second scan of the panel, paid on every analysis of one -- the totals' own query groups by user only
    and cannot see either. Empty days take one more small grouping (one row per calendar day). A panel whose
    activity column is another key (a request id) gets only the repeated-row check.
    """
    unit, activity = quote_ident(spec.unit_column), Column(spec.activity_column, table.kind(spec.activity_column))
    exposure = Column(spec.day_column, table.kind(spec.day_column))
    calendar = activity.kind == DATE or bool(panel_metrics(spec))
    # days compare as dates, or as day numbers when both columns are numbers (another pairing is refused by the
    # novelty statistics and has no exposure-day check here)
    comparable = calendar and (activity.kind == INTEGER) == (exposure.kind == INTEGER)
    on_exposure = (f"MAX(CASE WHEN {_as_date(activity)} = {_as_date(exposure)} THEN 1 ELSE 0 END)" if comparable
                   else "1")
    # grouped by the raw ids (casting 10M ids to text first cost more than the grouping); only examples are cast
    found = table.run(
        "SELECT SUM(pairs) AS pairs, SUM(rows_) AS rows_, CAST(MIN(CASE WHEN pairs > 0 THEN u END) AS VARCHAR) "
        "AS unit, COUNT(*) AS users, COUNT(*) - SUM(seen) AS unseen, CAST(MIN(CASE WHEN seen = 0 THEN u END) AS "
        "VARCHAR) AS unseen_unit FROM (SELECT u, SUM(CASE WHEN n > 1 THEN 1 ELSE 0 END) AS pairs, "
        "SUM(CASE WHEN n > 1 THEN n ELSE 0 END) AS rows_, MAX(at_exposure) AS seen FROM (SELECT "
        f"{unit} AS u, {activity.sql} AS d, COUNT(*) AS n, {on_exposure} AS at_exposure FROM {table.relation} "
        "GROUP BY 1, 2) AS pairs GROUP BY u) AS per_user").iloc[0]
    pairs = int(found["pairs"] or 0)
    if pairs:
        raise DataError(f"{table.label}: {pairs:,} (user, day) pair(s) have more than one row "
                        f"({int(found['rows_']):,} rows in all; e.g. user {found['unit']!r}) in columns "
                        f"{spec.unit_column!r} and {spec.activity_column!r}; a daily panel has one row per user and "
                        "active day: add up each day's rows first")
    unseen = int(found["unseen"] or 0)
    if unseen:
        raise DataError(f"{table.label}: {unseen:,} of {int(found['users']):,} user(s) have no row on their exposure "
                        f"day (e.g. user {found['unseen_unit']!r}; columns {spec.activity_column!r} and "
                        f"{spec.day_column!r}); a daily panel has a row for each user's exposure day, with zeros if "
                        "the user did nothing that day: built from activity alone, it leaves out the users who never "
                        "came back and every per-user number reads too high")
    if calendar:
        _refuse_empty_days(spec, table, activity)


def _refuse_empty_days(spec: ExperimentSpec, table: Table, activity: Column) -> None:
    """A calendar day with no row at all between two days of :data:`BUSY_DAY_ROWS` rows or more: see
    :func:`_check_panel_rows`. A small panel has quiet days of its own (4 users are not active every day); at 20
    rows a day on both sides, a day without any would have probability e^-20 if rows came as a Poisson stream at
    the lower of the two rates, so it is taken as missing data."""
    days = _Days(activity.kind == INTEGER)
    counts = table.run(f"SELECT CAST({_as_date(activity)} AS VARCHAR) AS d, COUNT(*) AS n FROM {table.relation} "
                       "GROUP BY 1").dropna(subset=["d"])
    rows = {days.number(d): int(n) for d, n in zip(counts["d"], counts["n"])}
    present = sorted(rows)
    missing = [n for before, after in zip(present, present[1:])
               if min(rows[before], rows[after]) >= BUSY_DAY_ROWS for n in range(before + 1, after)]
    if missing:
        shown = ", ".join(days.label(n) for n in missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise DataError(f"{table.label}: column {spec.activity_column!r} (activity day) has no row at all on "
                        f"{len(missing):,} day(s) between busy days ({BUSY_DAY_ROWS}+ rows): {shown}; a day of the "
                        "panel is missing (a failed export?) and every total would read low: load the missing "
                        "day(s), or cut the panel before the first of them")


@dataclass(frozen=True)
class _Days:
    """Day values as the engines return them (text) to day numbers and back: a date's ordinal, or the integer of
    an integer day column (``numbers``)."""

    numbers: bool

    def number(self, text) -> int:
        return int(text) if self.numbers else date.fromisoformat(str(text)[:10]).toordinal()

    def label(self, number: int) -> str:
        return str(number) if self.numbers else date.fromordinal(int(number)).isoformat()


def _user_total(column: Column, total: str) -> str:
    """The user's total, NULL when a day is missing, the lowest day when one is negative."""
    v = column.number()
    return (f"CASE WHEN COUNT({column.sql}) < COUNT(*) THEN NULL WHEN MIN({v}) < 0 THEN MIN({v}) "
            f"ELSE {total}({v}) END")


def _day_number(column: Column) -> Callable[[str], str]:
    """SQL of days between two values of a day column (DATE, integer day number, or text of a date)."""
    if column.kind == INTEGER:
        return lambda first: f"(CAST({column.sql} AS BIGINT) - CAST({first} AS BIGINT))"
    if column.kind in (DATE, STRING):
        cast = column.sql if column.kind == DATE else f"CAST({column.sql} AS DATE)"
        return lambda first: f"DATE_DIFF('day', {first}, {cast})"
    raise DataError(f"column {column.name!r} holds {column.kind} values; a day column must be a DATE, an integer "
                    "day number or a date as text")


def _as_date(column: Column) -> str:
    return column.sql if column.kind != STRING else f"CAST({column.sql} AS DATE)"


def panel_statistics(spec: ExperimentSpec, source, engine=None) -> dict[str, xr.Dataset]:
    """:func:`novelty_statistics` of ``source`` opened by ``engine`` (as for
    :func:`~bayes_ab.aggregation.aggregate`); empty without novelty metrics."""
    if not panel_metrics(spec):
        return {}
    from bayes_ab.data.engines import resolve_engine

    table = resolve_engine(engine, source).open(source)
    try:
        return novelty_statistics(spec, table)
    finally:
        table.close()


def novelty_statistics(spec: ExperimentSpec, table: Table) -> dict[str, xr.Dataset]:
    """Per novelty metric: users per arm x weekly cohort, weekly sums and cross sums, and which cohort-weeks
    are complete; see the module docstring."""
    metrics = panel_metrics(spec)
    if not metrics:
        return {}
    exposure = Column(spec.day_column, table.kind(spec.day_column))
    activity = Column(spec.activity_column, table.kind(spec.activity_column))
    if exposure.kind != activity.kind:
        raise DataError(f"{table.label}: columns {spec.day_column!r} (exposure day) and {spec.activity_column!r} "
                        f"(activity day) must be of one kind, got {exposure.kind} and {activity.kind}")
    since = _day_number(activity)(_as_date(exposure) if exposure.kind != INTEGER else exposure.sql)
    first_day = table.run(
        f"SELECT CAST(MIN({_as_date(exposure)}) AS VARCHAR) AS first, CAST(MAX({_as_date(activity)}) AS VARCHAR) AS last, "
        f"COUNT(*) FILTER (WHERE {since} < 0) AS early, COUNT(*) - COUNT({activity.sql}) AS missing, "
        f"MAX({since}) AS span FROM {table.relation}").iloc[0]
    if int(first_day["missing"]):
        raise DataError(f"{table.label}: column {spec.activity_column!r} (activity day) has {int(first_day['missing'])} "
                        "missing values")
    if int(first_day["early"]):
        raise DataError(f"{table.label}: {int(first_day['early'])} row(s) have an activity day "
                        f"({spec.activity_column!r}) before the user's exposure day ({spec.day_column!r})")
    weeks = int(min(MAX_WEEKS, int(first_day["span"]) // DAYS_PER_WEEK + 1))
    days = _Days(exposure.kind == INTEGER)
    last = days.number(first_day["last"])
    start = days.number(first_day["first"])
    week = f"CAST(FLOOR({since} / {DAYS_PER_WEEK}) AS BIGINT)"
    out = {}
    for metric in metrics:
        total = family_for(metric).panel_total
        value = Column(metric.column, table.kind(metric.column)).number()
        per_week = [f"COALESCE({total}(CASE WHEN week = {k} THEN v END), 0) AS a{k}" for k in range(weeks)]
        sums = [f"SUM(a{k}) AS s{k}" for k in range(weeks)]
        cross = [f"SUM(a{j} * a{k}) AS p{j}_{k}" for j in range(weeks) for k in range(j, weeks)]
        sql = (f"SELECT CAST(arm AS VARCHAR) AS arm, CAST(exposure AS VARCHAR) AS exposure, COUNT(*) AS users, "
               f"{', '.join(sums + cross)} FROM (SELECT unit, arm, exposure, {', '.join(per_week)} FROM "
               f"(SELECT {quote_ident(spec.unit_column)} AS unit, {quote_ident(spec.arm_column)} AS arm, "
               f"{_as_date(exposure)} AS exposure, {week} AS week, {value} AS v FROM {table.relation}) AS days "
               f"GROUP BY unit, arm, exposure) AS users GROUP BY 1, 2")
        out[metric.name] = _weekly_dataset(metric, spec, table.run(sql), weeks, start, last, days)
    return out


def _weekly_dataset(metric: Metric, spec: ExperimentSpec, rows: pd.DataFrame, weeks: int, start: int, last: int,
                    days: _Days) -> xr.Dataset:
    arms = list(spec.arm_names)
    unknown = sorted(set(rows["arm"]) - set(arms))
    if unknown:
        raise DataError(f"column {spec.arm_column!r} has arm {unknown[0]!r} that the spec does not declare")
    day = rows["exposure"].map(days.number).to_numpy()
    rows = rows.assign(cohort=(day - start) // DAYS_PER_WEEK, day=day)
    cohorts = np.arange(int(rows["cohort"].max()) + 1)
    users = np.zeros((len(arms), len(cohorts)))
    sums = np.zeros((len(arms), len(cohorts), weeks))
    cross = np.zeros((len(arms), len(cohorts), weeks, weeks))
    latest = np.full(len(cohorts), -np.inf)
    for row in rows.itertuples(index=False):
        a, c = arms.index(row.arm), int(row.cohort)
        users[a, c] += row.users
        latest[c] = max(latest[c], row.day)
        for j in range(weeks):
            sums[a, c, j] += getattr(row, f"s{j}")
            for k in range(j, weeks):
                cross[a, c, j, k] += getattr(row, f"p{j}_{k}")
                cross[a, c, k, j] = cross[a, c, j, k]
    starts = [days.label(start + DAYS_PER_WEEK * c) for c in cohorts]
    return weekly_dataset(arms, users, sums, cross, latest, last, starts,
                          {"metric": metric.name, "family": metric.family})


def weekly_dataset(arms: list[str], users: np.ndarray, sums: np.ndarray, cross: np.ndarray, latest: np.ndarray,
                   last_day: int, cohort_starts: list[str], attrs: dict | None = None) -> xr.Dataset:
    """The statistics by week since exposure as one Dataset: ``users`` (arm, cohort), ``sum`` (arm, cohort,
    week), ``cross`` (arm, cohort, week, week2), and ``complete`` (cohort, week): the cohort's latest exposure
    day (``latest``, in the same day numbers as ``last_day``) has lived the whole week, and every arm has two
    users or more."""
    weeks = sums.shape[2]
    complete = latest[:, None] + DAYS_PER_WEEK * (np.arange(weeks)[None, :] + 1) - 1 <= last_day
    complete &= (users > 1).all(axis=0)[:, None]
    return xr.Dataset(
        {"users": (("arm", "cohort"), users), "sum": (("arm", "cohort", "week"), sums),
         "cross": (("arm", "cohort", "week", "week2"), cross), "complete": (("cohort", "week"), complete)},
        coords={"arm": list(arms), "cohort": np.arange(users.shape[1]), "week": np.arange(weeks),
                "week2": np.arange(weeks), "cohort_start": ("cohort", list(cohort_starts))},
        attrs={**(attrs or {}), "last_day": int(last_day)})


def weekly_means(stats: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each arm x cohort x week mean per user and the covariance of a cohort's weekly means (arm, cohort,
    week, week2), from the sums: cov(mean_j, mean_k) = (cross_jk - n mean_j mean_k) / (n (n - 1))."""
    n = stats["users"].values[:, :, None]
    mean = np.divide(stats["sum"].values, n, out=np.zeros_like(stats["sum"].values), where=n > 0)
    n4 = n[:, :, :, None]
    outer = mean[:, :, :, None] * mean[:, :, None, :]
    cov = np.divide(stats["cross"].values - n4 * outer, n4 * (n4 - 1), out=np.zeros_like(outer), where=n4 > 1)
    return mean, cov


__all__ = ["panel_metrics", "per_user_table", "panel_statistics", "novelty_statistics", "weekly_dataset",
           "weekly_means", "MAX_WEEKS"]
