"""Aggregated input for every family, and the printed warehouse SQL that produces it.

The printed query is run by DuckDB on per-user rows; its output, passed back as aggregated rows, must give
the statistics of the per-user rows themselves (values are multiples of 1/4, so sums are exact in any order).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlglot

from bayes_ab.cli import main
from bayes_ab.aggregation import aggregate, aggregate_incrementally
from bayes_ab.data.dialects import DIALECTS, translate
from bayes_ab.aggregation.warehouse import warehouse_query
from bayes_ab.errors import DataError

from conftest import make_spec
from family_rows import FAMILY_METRICS, family_rows

ODD_TABLE = 'sales."odd ""users"""'
RATIO = {"name": "revenue_per_pre", "family": "ratio", "numerator": "revenue", "denominator": "pre_revenue"}
CAPPED_MEAN = {"name": "revenue_capped", "family": "mean", "column": "revenue", "cap": 30}
METRICS = FAMILY_METRICS + [RATIO, CAPPED_MEAN]


def every_family_spec(**extra):
    return make_spec(METRICS, segments=("country", "tier"), unit_column="user_id", day_column="exposure_day",
                     **extra)


def printed_rows(spec, rows: pd.DataFrame) -> pd.DataFrame:
    """The printed DuckDB query run on ``rows`` (as the table ``per_user``)."""
    con = duckdb.connect()
    con.register("per_user", rows)
    aggregated = con.execute(warehouse_query(spec, "per_user", "duckdb").sql).df()
    if "exposure_day" in aggregated:        # DuckDB hands DATE back to pandas as a timestamp
        aggregated["exposure_day"] = aggregated["exposure_day"].dt.date
    return aggregated


def assert_close(first, second):
    assert first.keys() == second.keys()
    for name in first:
        a, b = first[name], second[name]
        assert set(a.data_vars) == set(b.data_vars), name
        for var in b.data_vars:
            np.testing.assert_allclose(a[var].values, b[var].values, rtol=1e-12, err_msg=f"{name}.{var}")
        for coord in b.coords:
            assert list(a[coord].values) == list(b[coord].values), (name, coord)


def test_printed_sql_gives_aggregated_rows_with_the_per_user_statistics_of_every_family():
    spec = every_family_spec()
    rows = family_rows(5000, seed=4)
    aggregated = printed_rows(spec, rows)
    assert len(aggregated) < len(rows)        # rows are groups of users, not users
    assert_close(aggregate(spec, aggregated, aggregated=True), aggregate(spec, rows))


def test_aggregated_rows_of_the_same_cell_are_summed_so_partitions_pass_as_they_are():
    spec = every_family_spec()
    rows = family_rows(4000, seed=5)
    parts = pd.concat([printed_rows(spec, rows.iloc[:1500]), printed_rows(spec, rows.iloc[1500:])])
    assert_close(aggregate(spec, parts, aggregated=True), aggregate(spec, rows))


def test_aggregated_rows_by_day_feed_incremental_checkins(tmp_path):
    spec = every_family_spec()
    rows = family_rows(4000, seed=6)
    aggregated = printed_rows(spec, rows)
    first_days = aggregated[aggregated["exposure_day"] < aggregated["exposure_day"].max()]
    store = tmp_path / "store"
    early = aggregate_incrementally(spec, first_days, store, aggregated=True)
    later = aggregate_incrementally(spec, aggregated, store, aggregated=True)
    assert len(later.scanned_days) == 1 and later.reused_days == early.scanned_days
    assert_close(later.stats, aggregate(spec, rows))


@pytest.mark.parametrize("column, value, message", [
    ("users", -3, "column 'users' has negative counts"),
    ("users", 2.5, "column 'users' has non-integer counts"),
    ("converted", 0.5, "column 'converted' (metric 'converted') has non-integer counts"),
    ("trades", -1, "column 'trades' (metric 'trades') has negative counts"),
    ("revenue_sq", -4.0, "column 'revenue_sq' (metric 'revenue') has negative sums"),
    ("revenue", np.nan, "column 'revenue' (metric 'revenue') has missing values"),
    ("churn_day", 0, "column 'churn_day' (metric 'retained') has churn days below 1"),
])
def test_bad_aggregated_values_are_named_with_their_column_arm_and_segment(column, value, message):
    spec = every_family_spec()
    aggregated = printed_rows(spec, family_rows(2000, seed=7))
    aggregated[column] = aggregated[column].astype(float)
    aggregated.loc[3, column] = value
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        aggregate(spec, aggregated, aggregated=True)
    assert "first in arm" in str(raised.value)


def test_more_successes_than_users_in_a_cell_is_refused():
    spec = make_spec()
    rows = pd.DataFrame({"arm": ["control", "treatment", "treatment"], "users": [10, 5, 4],
                         "converted": [3, 6, 5]})
    with pytest.raises(DataError, match=r"'converted'.* is larger than the row's users .*2 row\(s\), first in arm "
                                        r"'treatment'"):
        aggregate(spec, rows, aggregated=True)


def test_a_missing_aggregate_column_is_named_with_its_metric():
    spec = every_family_spec()
    aggregated = printed_rows(spec, family_rows(1000, seed=8)).drop(columns=["revenue_x_pre_revenue"])
    with pytest.raises(DataError, match=r"missing column 'revenue_x_pre_revenue' \(sum of metric 'revenue'\)"):
        aggregate(spec, aggregated, aggregated=True)


def test_two_metrics_that_need_one_column_differently_are_refused_before_any_sql_runs():
    spec = make_spec([{"name": "n_trades", "family": "count", "column": "trades"},
                      {"name": "mean_trades", "family": "mean", "column": "trades"}])
    with pytest.raises(DataError, match="two columns named 'trades'"):
        warehouse_query(spec, "t", "postgres")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_printed_query_is_valid_sql_of_its_dialect(dialect):
    spec = every_family_spec()
    sql = warehouse_query(spec, "analytics.per_user", dialect).sql
    parsed = sqlglot.parse_one(sql, read=dialect)           # raises on SQL the dialect cannot read
    assert parsed.find(sqlglot.exp.Group) is not None
    assert "isnan" not in sql.lower() or dialect in ("duckdb", "spark", "bigquery", "trino")


def test_functions_a_database_lacks_are_rewritten_in_standard_sql():
    sql = ('SELECT isnan(CAST(x AS DOUBLE)) AS a, TRY_CAST(y AS DOUBLE) AS b, '
           'COUNT(*) FILTER (WHERE x = 1) AS c FROM "t" GROUP BY 1')
    postgres = translate(sql, "postgres")
    assert "IS_NAN" not in postgres and "= CAST('NaN' AS DOUBLE PRECISION)" in postgres
    assert "TRY_CAST" not in postgres and "CASE WHEN CAST(y AS TEXT) ~" in postgres
    assert "FILTER" not in translate(sql, "redshift") and "SUM(CASE WHEN x = 1 THEN 1 ELSE 0 END)" in \
        translate(sql, "redshift")
    # the numeric guard of TRY_CAST accepts what PostgreSQL casts and rejects the rest
    from bayes_ab.data.dialects import NUMBER_PATTERN
    import re

    for text in ["1", "-2.5", " 3e4 ", ".5", "+7.", "NaN", "Infinity", "-inf"]:
        assert re.search(NUMBER_PATTERN, text), text
    for text in ["", "abc", "1,5", "1.2.3", "e5", "--1"]:
        assert not re.search(NUMBER_PATTERN, text), text


def test_cli_sql_prints_the_header_and_quotes_odd_names(tmp_path, capsys):
    import yaml

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": "odd", "arm_column": 'the "arm"', "segments": ["région"],
        "arms": [{"name": "control", "control": True}, {"name": "b"}],
        "metrics": [{"name": "m", "family": "conversion", "column": "paid; DROP TABLE x"}]}))
    assert main(["sql", str(path), "--dialect", "postgres", "--table", ODD_TABLE]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- bayes-ab aggregation (postgres)")
    assert '"the ""arm"""' in out and '"paid; DROP TABLE x"' in out and 'FROM "sales"."odd ""users"""' in out
    body = [line for line in out.splitlines() if not line.startswith("--")]
    con = duckdb.connect()      # the same query in DuckDB's dialect runs on a table of those odd names
    con.execute('CREATE SCHEMA sales')
    con.execute(f'CREATE TABLE {ODD_TABLE} ("the ""arm""" TEXT, "région" TEXT, "paid; DROP TABLE x" INT)')
    con.execute(f"INSERT INTO {ODD_TABLE} VALUES ('control', 'EU', 1), ('b', 'EU', 0), ('b', 'EU', 1)")
    assert main(["sql", str(path), "--dialect", "duckdb", "--table", ODD_TABLE]) == 0
    duck = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("--")]
    got = con.execute("\n".join(duck).rstrip(";")).df()
    assert sorted(got["users"].tolist()) == [1, 2] and len(body) == 1


def test_cli_sql_refuses_an_unknown_dialect(capsys, tmp_path):
    with pytest.raises(SystemExit) as raised:
        main(["sql", "spec.yaml", "--dialect", "oracle", "--table", "t"])
    assert raised.value.code == 2


def test_engine_sql_needs_a_table_or_the_specs_query_and_sql_options_need_engine_sql(tmp_path, capsys):
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "x", "arms": [{"name": "control", "control": True}, {"name": "b"}],
                                    "metrics": [{"name": "m", "family": "conversion", "column": "m"}]}))
    assert main(["analyze", str(spec), "--engine", "sql", "--url", "postgresql+psycopg://u@h/d"]) == 2
    assert "--engine sql needs --table, or a query:" in capsys.readouterr().err
    assert main(["analyze", str(spec), "--data", "x.csv", "--url", "postgresql+psycopg://u@h/d"]) == 2
    assert "--url needs --engine sql" in capsys.readouterr().err
    assert main(["analyze", str(spec), "--engine", "sql", "--table", "t", "--data", "x.csv"]) == 2
    assert "not --data" in capsys.readouterr().err
    assert main(["analyze", str(spec)]) == 2
    assert "--data is required" in capsys.readouterr().err


def test_the_specs_query_is_read():
    spec = make_spec(query="SELECT * FROM exposures WHERE experiment = 'push'")
    assert spec.query.startswith("SELECT")


@pytest.mark.parametrize("name, postgres", [
    ("users; DROP TABLE x", '"users; DROP TABLE x"'),
    ("users--x", '"users--x"'),
    ("proj.ds.tbl", '"proj"."ds"."tbl"'),
    ('sales."odd ""users"""', '"sales"."odd ""users"""'),
    ("`weird`.t", '"weird"."t"'),
])
def test_a_table_name_is_identifiers_only_never_sql(name, postgres):
    from bayes_ab.data.dialects import quoted_name

    assert quoted_name(name, "postgres") == postgres


@pytest.mark.parametrize("name", ["", "a..b", "a.b.c.d", '"open', '"x"y'])
def test_a_malformed_table_name_is_refused(name, capsys, tmp_path):
    from bayes_ab.data.dialects import quoted_name

    with pytest.raises(ValueError, match="is not a table name"):
        quoted_name(name, "postgres")
