"""The scale-out engine: Apache Spark (PySpark), local mode or a cluster.

It runs the very queries the DuckDB engine runs: they are written once in DuckDB's dialect and
translated to Spark SQL by :mod:`bayes_ab.data.dialects`, so both engines share one definition of every statistic.
"""

from __future__ import annotations

import os
import uuid
import warnings
from typing import Any

import pandas as pd

from bayes_ab.data.dialects import translate
from bayes_ab.data.engine import (BOOLEAN, DATE, FLOAT, INTEGER, OTHER, STRING, TIMESTAMP, DatabaseSource, Source,
                                  Table, file_input,
                                  first_line, is_spark_dataframe)
from bayes_ab.data.environment import DEFAULT_MASTER, MASTER_VARIABLE
from bayes_ab.errors import DataError

# Aggregates are small (arms x segments x days x keys): few shuffle partitions suffice in local mode,
# where Spark's default of 200 makes every query pay for 200 tiny tasks.
LOCAL_SHUFFLE_PARTITIONS = "4"


def column_kind(spark_type: str) -> str:
    """The engine-neutral kind of a Spark SQL type name (as in ``DataFrame.dtypes``)."""
    name = spark_type.lower()
    if name in ("tinyint", "smallint", "int", "bigint"):
        return INTEGER
    if name in ("float", "double") or name.startswith("decimal"):
        return FLOAT
    if name == "boolean":
        return BOOLEAN
    if name == "string" or name.startswith("varchar") or name.startswith("char"):
        return STRING
    if name == "date":
        return DATE
    if name.startswith("timestamp"):
        return TIMESTAMP
    return OTHER


def to_spark_sql(sql: str) -> str:
    """Translate a query from DuckDB's dialect to Spark SQL."""
    return translate(sql, "spark")


class SparkEngine:
    """Runs the aggregation queries in Spark.

    Parameters
    ----------
    master
        Spark master URL (``local[*]``, ``spark://host:7077``, ``yarn``, ...); default: the
        ``BAYES_AB_SPARK_MASTER`` environment variable, else ``local[*]``. Ignored when ``session``
        is given or a Spark DataFrame is passed (its own session is used).
    session
        An existing ``SparkSession`` to use.
    config
        Extra Spark settings for a session this engine creates (e.g. ``spark.driver.memory``).
    """

    name = "spark"

    def __init__(self, master: str | None = None, session: Any = None, config: dict[str, str] | None = None) -> None:
        self.master = master or os.environ.get(MASTER_VARIABLE) or DEFAULT_MASTER
        self._session = session
        self.config = dict(config or {})

    def session(self) -> Any:
        """The Spark session, started on first use (a few seconds in local mode)."""
        if self._session is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError:
                raise DataError("the Spark engine needs PySpark: pip install 'bayes-ab[spark]' "
                                "(and Java 17 or later)") from None
            builder = (SparkSession.builder.appName("bayes-ab").master(self.master)
                       .config("spark.ui.showConsoleProgress", "false")
                       .config("spark.sql.session.timeZone", "UTC"))
            settings = dict(self.config)
            if self.master.startswith("local"):
                settings.setdefault("spark.sql.shuffle.partitions", LOCAL_SHUFFLE_PARTITIONS)
            for key, value in settings.items():
                builder = builder.config(key, value)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    self._session = builder.getOrCreate()
            except Exception as exc:      # Java missing or the master unreachable: PySpark raises several types
                raise DataError(f"Spark could not start with master {self.master!r} ({first_line(exc)}); "
                                "the Spark engine needs Java 17 or later (JAVA_HOME or java on PATH)") from None
            self._session.sparkContext.setLogLevel("ERROR")
        return self._session

    def open(self, source: Source) -> Table:
        """Register ``source`` as a temporary view: a Spark DataFrame, a pandas DataFrame, or a
        Parquet/CSV path (a directory of Parquet files is read with partition discovery)."""
        if is_spark_dataframe(source):
            label, frame = "Spark DataFrame", source
            session = source.sparkSession
        elif isinstance(source, DatabaseSource):
            raise DataError(f"{source.label}: a database table is aggregated by the SQL engine (--engine sql)")
        else:
            session = self.session()
            label, frame = self._read(session, source)
        view = f"bayes_ab_input_{uuid.uuid4().hex[:8]}"
        frame.createOrReplaceTempView(view)
        columns = {name: column_kind(dtype) for name, dtype in frame.dtypes}

        def run(sql: str) -> pd.DataFrame:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", FutureWarning)
                    return session.sql(to_spark_sql(sql)).toPandas()
            except Exception as exc:       # AnalysisException, Py4JJavaError, ...: report, never a traceback
                raise DataError(f"{label}: query failed on Spark ({first_line(exc)})") from None

        return Table("spark", label, view, columns, run, lambda: session.catalog.dropTempView(view),
                     types=dict(frame.dtypes))

    def _read(self, session: Any, source: Source) -> tuple[str, Any]:
        if isinstance(source, pd.DataFrame):
            return "DataFrame", session.createDataFrame(source)
        found = file_input(source)
        try:
            if found.format == "csv":
                return str(source), session.read.csv(str(found.path), header=True, inferSchema=True)
            return str(source), session.read.parquet(str(found.path))
        except Exception as exc:
            raise DataError(f"{source}: cannot read input on Spark ({first_line(exc)})") from None


__all__ = ["SparkEngine", "column_kind", "to_spark_sql"]
