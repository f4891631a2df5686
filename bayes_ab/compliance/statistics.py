"""Sufficient statistics split by whether the user received the treatment: arm x segment x received.

The split is the experiment's own aggregation with ``received_column`` as one more segment column, so every
engine, aggregated input (whose rows then carry the received value they share, as ``bayes-ab sql`` groups them)
and daily panels give it with the families' own sums and checks; the families' per-user moments
(:meth:`~bayes_ab.families.base.Family.user_moments`) are then read per received value.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import xarray as xr

from bayes_ab.aggregation import aggregate
from bayes_ab.aggregation.scan import MISSING_SEGMENT, SEGMENT_SEPARATOR
from bayes_ab.data.engine import Engine, Source
from bayes_ab.data.stats import ALL_USERS
from bayes_ab.errors import DataError
from bayes_ab.families import family_for
from bayes_ab.metric import Metric
from bayes_ab.spec import Compliance, ExperimentSpec

RECEIVED_VALUES = {"0": 0, "0.0": 0, "false": 0, "1": 1, "1.0": 1, "true": 1}
"""How a received value reads as text, after the engines' cast to text: 0/1 integers, decimals or booleans."""


def complier_metrics(spec: ExperimentSpec) -> list[Metric]:
    """The metrics whose complier effect is estimated: all whose family has per-user moments, when the spec names a
    ``received_column``."""
    if not spec.received_column:
        return []
    return [m for m in spec.metrics if family_for(m).complier_effects]


def received_statistics(spec: ExperimentSpec, source: Source, *, aggregated: bool = False,
                        engine: Engine | str | None = None) -> dict[str, xr.Dataset]:
    """Per complier metric: users, sum and sum of squares per ``arm x segment x received`` (received 0 and 1).

    Raises
    ------
    DataError
        A received value that is missing or not 0/1, or (one-sided compliance) a control user who received the
        treatment.
    """
    metrics = complier_metrics(spec)
    if not metrics:
        return {}
    split = replace(spec, segment_columns=spec.segment_columns + (spec.received_column,), metrics=tuple(metrics),
                    received_column=None)
    stats = aggregate(split, source, aggregated=aggregated, engine=engine)
    return {m.name: by_received(spec, m, stats[m.name]) for m in metrics}


def by_received(spec: ExperimentSpec, metric: Metric, stats: xr.Dataset) -> xr.Dataset:
    """``stats`` of ``metric`` whose last segment component is the received value, as ``n``, ``sum``, ``sumsq`` per
    ``arm x segment x received``."""
    column = spec.received_column
    labels = [str(s) for s in stats["segment"].values]
    split = [label.rsplit(SEGMENT_SEPARATOR, 1) if spec.segment_columns else [ALL_USERS, label] for label in labels]
    n, total, squares = family_for(metric).user_moments(stats)
    received = []
    for segment, value in split:
        if value == MISSING_SEGMENT:
            raise DataError(f"{spec.source}: column {column!r} (received_column) has missing values; every user "
                            "must say whether the treatment was received (0/1)")
        if value.strip().lower() not in RECEIVED_VALUES:
            raise DataError(f"{spec.source}: column {column!r} (received_column) has value {value!r}; it must be 0/1 "
                            "or true/false (received the treatment or not)")
        received.append(RECEIVED_VALUES[value.strip().lower()])
    segments = sorted({segment for segment, _ in split})
    shape = (stats.sizes["arm"], len(segments), 2)
    out = {name: np.zeros(shape) for name in ("n", "sum", "sumsq")}
    for j, ((segment, _), got) in enumerate(zip(split, received)):
        s = segments.index(segment)
        for name, values in (("n", n), ("sum", total), ("sumsq", squares)):
            out[name][:, s, got] += values[:, j]
    arms = [str(a) for a in stats["arm"].values]
    if spec.compliance == Compliance.ONE_SIDED and out["n"][0, :, 1].sum() > 0:
        raise DataError(
            f"{spec.source}: column {column!r} (received_column): {int(out['n'][0, :, 1].sum())} user(s) of the "
            f"control arm {arms[0]!r} received the treatment, which one-sided compliance rules out; if control users "
            "can receive it another way (another campaign), set 'compliance: two-sided'")
    return xr.Dataset({name: (("arm", "segment", "received"), values) for name, values in out.items()},
                      coords={"arm": arms, "segment": segments, "received": [0, 1]},
                      attrs={"metric": metric.name, "family": metric.family})
