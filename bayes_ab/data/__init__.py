"""Aggregation of per-user rows (or pre-aggregated tables) into sufficient statistics, on DuckDB or Spark."""

from bayes_ab.data.aggregate import aggregate
from bayes_ab.data.incremental import aggregate_incrementally
from bayes_ab.data.stats import (combine, conversion_stats, count_stats, mean_stats, retention_stats,
                                 segment_weights)

__all__ = ["aggregate", "aggregate_incrementally", "combine", "conversion_stats", "count_stats", "mean_stats",
           "retention_stats", "segment_weights"]
