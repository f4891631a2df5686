"""Names of the aggregation engines and their settings: what the command line offers before any engine loads
(the engines themselves import pandas, DuckDB or Spark)."""

ENGINE_NAMES = ("duckdb", "spark", "sql")
DEFAULT_MASTER = "local[*]"
MASTER_VARIABLE = "BAYES_AB_SPARK_MASTER"
URL_VARIABLE = "BAYES_AB_DATABASE_URL"
DIALECT_NAMES = ("postgres", "bigquery", "snowflake", "redshift", "trino", "spark", "duckdb")
