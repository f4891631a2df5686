"""Data access: the aggregation engines (DuckDB, Spark, SQL databases) behind one interface, the query
vocabulary families declare their aggregates in, SQL quoting and dialect translation, and the statistics
Datasets' shared helpers.

Nothing here knows a metric family or a spec: :mod:`bayes_ab.aggregation` builds the one grouped query from
the families' declarations and runs it on the engine :mod:`bayes_ab.data.engines` resolves.
"""
