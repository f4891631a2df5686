"""Names the command line offers before anything heavy loads: the aggregation engines and their settings (the
engines themselves import pandas, DuckDB or Spark), the SQL dialects, and the planning baseline forms (the
family registry imports numpy, xarray and scipy; tests/test_cli.py checks this text against it)."""

ENGINE_NAMES = ("duckdb", "spark", "sql")
DEFAULT_MASTER = "local[*]"
MASTER_VARIABLE = "BAYES_AB_SPARK_MASTER"
URL_VARIABLE = "BAYES_AB_DATABASE_URL"
DIALECT_NAMES = ("postgres", "bigquery", "snowflake", "redshift", "trino", "spark", "duckdb")
BASELINE_FORMS = "conversion RATE; count MEAN,DISPERSION; retention RATE; mean MEAN,SD; ratio RATIO,DENOMINATOR"
