"""Aggregation of per-user rows (or pre-aggregated tables) into sufficient statistics, on DuckDB, Spark or a SQL database.

The families' statistics constructors (``conversion_stats`` and the like, for statistics computed
elsewhere) are re-exported here on first use (PEP 562): they live in the family modules, which build on
this package, so importing them eagerly here would import a family module half-way through its own import.
"""

from importlib import import_module

from bayes_ab.data.aggregate import aggregate
from bayes_ab.data.incremental import aggregate_incrementally
from bayes_ab.data.stats import combine, segment_weights

_CONSTRUCTORS = {"conversion_stats": "bayes_ab.families.conversion", "count_stats": "bayes_ab.families.count",
                 "mean_stats": "bayes_ab.families.mean", "retention_stats": "bayes_ab.families.retention",
                 "ratio_stats": "bayes_ab.families.ratio"}

__all__ = ["aggregate", "aggregate_incrementally", "combine", "segment_weights", *_CONSTRUCTORS]


def __getattr__(name: str):
    if name in _CONSTRUCTORS:
        return getattr(import_module(_CONSTRUCTORS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
