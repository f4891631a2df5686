"""Rows of a switchback experiment as per-cell statistics, on any engine.

A switchback spec (``switchback: {unit, time, period, washout}``) switches whole units between arms period by
period; its rows (users, requests) are checked as rows first -- the ordinary aggregation of the spec as declared
(:meth:`~bayes_ab.spec.ExperimentSpec.per_user`), with every data check of every metric. Then one grouped query
over ``arm x unit x period`` gives each cell's rows and each metric's total (the families' per-row values summed,
:meth:`~bayes_ab.families.base.Family.unit_values`) and weight; a cell seen in two arms is refused (the schedule
was not followed, or ``unit`` is not the switched column). The cells make each metric's statistics
(:func:`~bayes_ab.families.switchback.switchback_stats`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.aggregation.clusters import unit_totals
from bayes_ab.aggregation.scan import ScanPlan
from bayes_ab.data.engine import DATE, INTEGER, TIMESTAMP, Table
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError
from bayes_ab.families.switchback import switchback_stats
from bayes_ab.spec import ExperimentSpec

TIME_KINDS = (TIMESTAMP, DATE)


def switchback_statistics(spec: ExperimentSpec, table: Table) -> dict[str, xr.Dataset]:
    """Each metric's per-cell statistics of a switchback experiment.

    Raises
    ------
    DataError
        A failed check of the rows, a missing unit or time, a time column of the wrong kind, a cell in two arms.
    """
    design = spec.switchback
    users = spec.per_user()
    table.require_columns({design.unit: "switchback unit", design.time: "switchback time"})
    ScanPlan.for_table(users, table).scan(table)           # every data check of the rows, the arms among them
    period = _period_sql(spec, table)
    unit, arm = quote_ident(design.unit), quote_ident(spec.arm_column)
    select = [f"CAST({arm} AS VARCHAR) AS arm", f"CAST({unit} AS VARCHAR) AS unit", f"{period} AS period",
              "COUNT(*) AS rows_"]
    for i, declared in enumerate(users.metrics):
        total, weight = unit_totals(declared, table.columns)
        select += [f"{total} AS total{i}", f"{weight} AS weight{i}"]
    # ordered here, not by the engine: the statistics (and the data fingerprint) must not depend on who grouped them
    cells = table.run(f"SELECT {', '.join(select)} FROM {table.relation} GROUP BY 1, 2, 3") \
        .sort_values(["unit", "period", "arm"], ignore_index=True)
    # a missing unit or time is a group of its own (NULL), so the cells' query finds it without another scan
    for column, key in ((design.unit, "unit"), (design.time, "period")):
        missing = int(cells.loc[cells[key].isna(), "rows_"].sum())
        if missing:
            raise DataError(f"{table.label}: column {column!r} (switchback) has missing values in {missing:,} row(s)")
    _check_one_arm_per_cell(cells, spec, table.label)
    arms = list(spec.arm_names)
    units = sorted(cells["unit"].unique())
    unit_index = cells["unit"].map({u: k for k, u in enumerate(units)}).to_numpy()
    arm_index = cells["arm"].map({a: k for k, a in enumerate(arms)}).to_numpy()
    rows = int(cells["rows_"].sum())
    return {analysed.name: switchback_stats(analysed.name, arms, units, unit_index,
                                            cells["period"].to_numpy(dtype=np.int64), arm_index,
                                            cells[f"total{i}"].to_numpy(dtype=float),
                                            cells[f"weight{i}"].to_numpy(dtype=float),
                                            design.washout).assign_attrs(users=rows)
            for i, analysed in enumerate(spec.metrics)}


def _period_sql(spec: ExperimentSpec, table: Table) -> str:
    """SQL of a row's period number: the time column itself (integers, no ``period``), or its seconds since the
    epoch divided by the period's length."""
    design = spec.switchback
    time = quote_ident(design.time)
    kind = table.kind(design.time)
    if design.period is None:
        if kind != INTEGER:
            raise DataError(f"{table.label}: column {design.time!r} (switchback time) holds {kind} values; give "
                            "switchback.period (e.g. 1h) or a column of period numbers")
        return f"CAST({time} AS BIGINT)"
    if kind not in TIME_KINDS:
        raise DataError(f"{table.label}: column {design.time!r} (switchback time) holds {kind} values; a period of "
                        f"{design.period} needs a timestamp or a date")
    return f"CAST(FLOOR(EPOCH(CAST({time} AS TIMESTAMP)) / {design.seconds}) AS BIGINT)"


def _check_one_arm_per_cell(cells: pd.DataFrame, spec: ExperimentSpec, label: str) -> None:
    arms = cells.groupby(["unit", "period"])["arm"].nunique()
    mixed = arms[arms > 1]
    if len(mixed):
        unit, period = mixed.index[0]
        raise DataError(f"{label}: {len(mixed):,} switchback cell(s) hold rows of both arms, e.g. unit {unit!r} in "
                        f"period {int(period)}; every row of a (unit, period) cell must be on the arm the schedule "
                        f"gave it (is {spec.switchback.unit!r} the switched column, and the period right?)")
