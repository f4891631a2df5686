"""Rows -> sufficient statistics: per-user rows, pre-aggregated tables or daily panels, on any engine.

One grouped query per experiment (:class:`~bayes_ab.aggregation.scan.ScanPlan`), built from the aggregates
each metric's family declares and run by the engine :mod:`bayes_ab.data` resolves; incremental aggregation
for check-ins, the warehouse query that ``bayes-ab sql`` prints, statistics from published per-arm moments,
and the statistics by week since exposure of a daily panel.
"""

from bayes_ab.aggregation.aggregate import aggregate
from bayes_ab.aggregation.incremental import aggregate_incrementally
from bayes_ab.data.stats import combine, segment_weights

__all__ = ["aggregate", "aggregate_incrementally", "combine", "segment_weights"]
