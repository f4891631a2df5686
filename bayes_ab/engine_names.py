"""Names of the aggregation engines and their settings: what the command line offers before any engine loads
(the engines themselves import pandas, DuckDB or Spark)."""

ENGINE_NAMES = ("duckdb", "spark")
DEFAULT_MASTER = "local[*]"
MASTER_VARIABLE = "BAYES_AB_SPARK_MASTER"
