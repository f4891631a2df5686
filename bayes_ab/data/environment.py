"""Engine settings read from the environment, named once for the engines and the command line's help.

The command line prints these names before anything heavy loads, so they live apart from the engines
(which import pandas, DuckDB or Spark).
"""

DEFAULT_MASTER = "local[*]"
"""Spark's master when neither the command line nor :data:`MASTER_VARIABLE` gives one."""
MASTER_VARIABLE = "BAYES_AB_SPARK_MASTER"
"""Environment variable holding the Spark master URL."""
URL_VARIABLE = "BAYES_AB_DATABASE_URL"
"""Environment variable holding the SQL engine's database URL (keeps the password off the command line)."""
