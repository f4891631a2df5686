"""The aggregation engines by name: the one place an engine is registered.

Adding an engine is its module (an :class:`~bayes_ab.data.engine.Engine`) and one line in :data:`ENGINES`.
The registry stands above the implementations (each imports the interface in
:mod:`bayes_ab.data.engine`), and imports them only when one is chosen, so that naming the engines -- the
command line's ``--engine`` choices -- loads neither pandas nor DuckDB nor Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from bayes_ab.errors import DataError

if TYPE_CHECKING:
    from bayes_ab.data.engine import Engine, Source


def _duckdb() -> "Engine":
    from bayes_ab.data.duckdb_engine import DuckDBEngine

    return DuckDBEngine()


def _spark() -> "Engine":
    from bayes_ab.data.spark_engine import SparkEngine

    return SparkEngine()


def _sql() -> "Engine":
    from bayes_ab.data.sql_engine import SQLEngine

    return SQLEngine()


ENGINES: dict[str, Callable[[], "Engine"]] = {
    "duckdb": _duckdb,
    "spark": _spark,
    "sql": _sql,
}
"""Engine name -> a constructor with the default settings (a URL or master from the environment)."""

ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)
DEFAULT_ENGINE = "duckdb"


def resolve_engine(engine: "Engine | str | None", source: "Source") -> "Engine":
    """The engine to use: given, named (``"duckdb"``, ``"spark"``, ``"sql"``), or picked from ``source``.

    A Spark DataFrame is aggregated by Spark in its own session, a
    :class:`~bayes_ab.data.engine.DatabaseSource` by the SQL engine (its URL from ``BAYES_AB_DATABASE_URL``);
    anything else by DuckDB unless another engine is named.
    """
    from bayes_ab.data.engine import DatabaseSource, is_spark_dataframe

    if engine is not None and not isinstance(engine, str):
        return engine
    if engine is None:
        engine = ("spark" if is_spark_dataframe(source) else
                  "sql" if isinstance(source, DatabaseSource) else DEFAULT_ENGINE)
    if engine not in ENGINES:
        raise DataError(f"unknown aggregation engine {engine!r} (choose from {', '.join(ENGINE_NAMES)})")
    return ENGINES[engine]()
