"""The SQL engine on a real PostgreSQL server (started for these tests; see tests/postgres_server.py).

- its statistics equal DuckDB's on the same rows, for every family (counts exactly, sums to rounding);
- `bayes-ab sql --dialect postgres`, run through psql, gives aggregated rows that `analyze --aggregated`
  turns into the same posteriors as per-user input (push-notification and onboarding examples);
- incremental check-ins by day scan only the new day;
- quotes and odd characters in table and column names; a wrong password, a missing table and a dropped
  connection each give one clear line.
"""

from __future__ import annotations

import io
import subprocess
from datetime import date

import numpy as np
import pandas as pd
import pytest
import yaml

import postgres_server
from bayes_ab.cli import main
from bayes_ab.aggregation import aggregate, aggregate_incrementally
from bayes_ab.data.engine import DatabaseSource
from bayes_ab.data.sql_engine import SQLEngine, type_kind
from bayes_ab.errors import DataError
from bayes_ab.spec import load_spec

from conftest import EXAMPLES, example_module, make_spec
from design_rows import cluster_rows, cluster_spec, switchback_rows, switchback_spec
from family_rows import FAMILY_METRICS, family_rows

ODD_TABLE = 'odd "users" table'
ODD_REVENUE = 'rev "€"; value'
METRICS = [m if m.get("column") != "revenue" else {**m, "column": ODD_REVENUE} for m in FAMILY_METRICS] + [
    {"name": "per_pre", "family": "ratio", "numerator": ODD_REVENUE, "denominator": "pre_revenue"}]


def spec_of_every_family():
    return make_spec(METRICS, segments=("country", "tier"), unit_column="user_id", day_column="exposure_day")


def rows_of_every_family(n, seed, days=5, first_id=0):
    return family_rows(n, seed=seed, days=days, first_id=first_id).rename(columns={"revenue": ODD_REVENUE})


@pytest.fixture(scope="module")
def server():
    reason = postgres_server.unavailable()
    if reason:
        pytest.skip(reason)
    running = postgres_server.start()
    yield running
    running.stop()


def load(server, name: str, frame: pd.DataFrame) -> None:
    """Create table ``name`` with columns typed after ``frame``'s dtypes and copy the rows in."""
    import psycopg
    from psycopg import sql

    def column_type(series: pd.Series) -> str:
        if series.dtype == bool:
            return "BOOLEAN"
        if pd.api.types.is_integer_dtype(series):
            return "BIGINT"
        if pd.api.types.is_float_dtype(series):
            return "DOUBLE PRECISION"
        if pd.api.types.is_datetime64_any_dtype(series):
            return "TIMESTAMP"
        if len(series.dropna()) and isinstance(series.dropna().iloc[0], date):
            return "DATE"
        return "TEXT"

    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(column_type(frame[c])))
                                 for c in frame.columns)
    with psycopg.connect(server.dsn, password=postgres_server.PASSWORD, autocommit=True) as con:
        con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        con.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), columns))
        with con.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(name))) as copy:
            for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False):
                copy.write_row(row)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def assert_equal_statistics(first, second):
    """Counts identical, sums equal to rounding (the database may add in another order)."""
    assert first.keys() == second.keys()
    for name in first:
        for var in second[name].data_vars:
            a, b = first[name][var].values, second[name][var].values
            if np.issubdtype(b.dtype, np.integer):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}.{var}")
            else:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9, err_msg=f"{name}.{var}")
        for coord in second[name].coords:
            assert list(first[name][coord].values) == list(second[name][coord].values), (name, coord)


def test_every_family_on_postgres_equals_duckdb_with_odd_table_and_column_names(server):
    spec, rows = spec_of_every_family(), rows_of_every_family(6000, seed=2)
    load(server, ODD_TABLE, rows)
    on_postgres = aggregate(spec, DatabaseSource(table=quoted(ODD_TABLE)), engine=SQLEngine(server.url))
    assert_equal_statistics(on_postgres, aggregate(spec, rows))


def test_cluster_and_switchback_designs_on_postgres_equal_duckdb(server):
    """The per-cluster totals and the switchback's cells (periods from a TIMESTAMP by EPOCH, and from a period
    number) are the same SQL on every engine."""
    rows = cluster_rows(seed=4)
    load(server, "cluster_rows", rows)
    source = DatabaseSource(table="cluster_rows")
    assert_equal_statistics(aggregate(cluster_spec(), source, engine=SQLEngine(server.url)),
                            aggregate(cluster_spec(), rows))
    rows = switchback_rows(seed=4)
    load(server, "switchback_rows", rows)
    source = DatabaseSource(table="switchback_rows")
    for spec in (switchback_spec(), switchback_spec(period=None)):
        assert_equal_statistics(aggregate(spec, source, engine=SQLEngine(server.url)), aggregate(spec, rows))


def test_a_select_in_the_spec_is_read_as_the_rows(server):
    spec, rows = spec_of_every_family(), rows_of_every_family(3000, seed=3)
    load(server, "family_rows", rows)
    query = 'SELECT * FROM family_rows WHERE "country" IS DISTINCT FROM \'BR\' -- a comment, and 50% of a %s'
    got = aggregate(spec, DatabaseSource(query=query), engine=SQLEngine(server.url))
    expected = aggregate(spec, rows[rows["country"] != "BR"])
    assert_equal_statistics(got, expected)


def test_checkins_by_day_scan_only_the_new_day_on_postgres(server, tmp_path):
    spec = spec_of_every_family()
    first = rows_of_every_family(3000, seed=4, days=4)
    load(server, "daily", first)
    engine = SQLEngine(server.url)
    early = aggregate_incrementally(spec, DatabaseSource(table="daily"), tmp_path / "store", engine=engine)
    assert len(early.scanned_days) == 4
    new_day = rows_of_every_family(800, seed=5, days=1, first_id=10_000)
    new_day["exposure_day"] = date(2026, 3, 5)
    load(server, "daily", pd.concat([first, new_day], ignore_index=True))
    later = aggregate_incrementally(spec, DatabaseSource(table="daily"), tmp_path / "store", engine=engine)
    assert later.scanned_days == ("2026-03-05",) and later.reused_days == early.scanned_days
    assert_equal_statistics(later.stats, aggregate(spec, pd.concat([first, new_day], ignore_index=True)))


def example(name: str):
    """The example's spec (small sampler: the two runs are compared with each other) and per-user rows."""
    rows = example_module(f"{name}/generate.py").generate(n_users=40_000)        # the example's generator (its data file is made by make demo)
    raw = yaml.safe_load((EXAMPLES / name / "spec.yaml").read_text())
    raw["sampler"] = {"draws": 300, "tune": 300, "chains": 2, "seed": 5}
    raw.pop("plan", None)
    return raw, rows


@pytest.mark.parametrize("name", ["push_notification", "onboarding"])
def test_printed_postgres_sql_through_psql_gives_the_posteriors_of_per_user_input(server, tmp_path, name, capsys):
    raw, rows = example(name)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    load(server, name, rows)
    sql_path, aggregated_csv = tmp_path / "aggregate.sql", tmp_path / "aggregated.csv"
    capsys.readouterr()
    assert main(["sql", str(spec_path), "--dialect", "postgres", "--table", name]) == 0
    spec = load_spec(spec_path)
    sql_path.write_text(capsys.readouterr().out)          # exactly what a user would paste into psql
    subprocess.run([server.psql(), "-h", "127.0.0.1", "-p", str(server.port), "-U", postgres_server.USER,
                    "-d", postgres_server.DATABASE, "-v", "ON_ERROR_STOP=1", "--csv", "-f", str(sql_path),
                    "-o", str(aggregated_csv)], check=True, env=server.env, capture_output=True)
    aggregated = pd.read_csv(aggregated_csv)
    assert 0 < len(aggregated) < len(rows) / 10
    per_user_parquet = tmp_path / "users.parquet"
    rows.to_parquet(per_user_parquet, index=False)
    for data, extra, models in ((per_user_parquet, [], "per_user"), (aggregated_csv, ["--aggregated"], "aggregated")):
        assert main(["analyze", str(spec_path), "--data", str(data), *extra,
                     "--models-dir", str(tmp_path / models)]) == 0
    per_user = pd.read_csv(tmp_path / "per_user" / raw["name"] / "effects.csv")
    from_aggregates = pd.read_csv(tmp_path / "aggregated" / raw["name"] / "effects.csv")
    pd.testing.assert_frame_equal(per_user, from_aggregates)     # same statistics, same seed: same draws
    # the aggregated rows kept in the database and read there by the SQL engine: the same statistics
    load(server, f"{name}_aggregated", aggregated)
    in_database = aggregate(spec, DatabaseSource(table=f"{name}_aggregated"), aggregated=True,
                            engine=SQLEngine(server.url))
    assert_equal_statistics(in_database, aggregate(spec, rows))


def test_cli_analyze_with_engine_sql_and_a_url_from_the_environment(server, tmp_path, monkeypatch, capsys):
    raw, rows = example("push_notification")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(raw))
    load(server, "push_cli", rows)
    monkeypatch.setenv("BAYES_AB_DATABASE_URL", server.url)
    assert main(["analyze", str(spec_path), "--engine", "sql", "--table", "push_cli",
                 "--models-dir", str(tmp_path / "models")]) == 0
    assert "trade_conversion" in capsys.readouterr().out


def test_a_wrong_password_is_one_line_without_the_password(server, capsys):
    url = server.url.replace("s3cret", "wrong")
    with pytest.raises(DataError, match="cannot connect .*password authentication failed") as raised:
        aggregate(make_spec(), DatabaseSource(table="t"), engine=SQLEngine(url))
    assert "wrong" not in str(raised.value) and "***" in str(raised.value)
    assert main(["analyze", str(EXAMPLES / "push_notification" / "spec.yaml"), "--engine", "sql", "--url", url,
                 "--table", "push_cli"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "password authentication failed" in err


def test_a_missing_table_is_named(server, capsys):
    with pytest.raises(DataError, match=r"table no_such_table .*cannot read it .*does not exist"):
        aggregate(make_spec(), DatabaseSource(table="no_such_table"), engine=SQLEngine(server.url))


def test_a_missing_column_is_named_as_with_files(server):
    load(server, "few_columns", pd.DataFrame({"arm": ["control", "treatment"], "other": [1, 0]}))
    with pytest.raises(DataError, match=r"few_columns .*missing column 'converted' \(metric 'converted'\); available: arm, other"):
        aggregate(make_spec(), DatabaseSource(table="few_columns"), engine=SQLEngine(server.url))


def test_a_dropped_connection_is_one_line(server):
    import psycopg

    load(server, "dropped", pd.DataFrame({"arm": ["control", "treatment"], "converted": [1, 0]}))
    table = SQLEngine(server.url).open(DatabaseSource(table="dropped"))
    try:
        with psycopg.connect(server.dsn, password=postgres_server.PASSWORD, autocommit=True) as con:
            con.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = %s AND pid <> pg_backend_pid()", (postgres_server.USER,))
        with pytest.raises(DataError, match="query failed on postgresql") as raised:
            table.run(f"SELECT COUNT(*) AS n FROM {table.relation}")
        assert "\n" not in str(raised.value)
    finally:
        table.close()


def test_a_url_that_is_not_one_and_a_missing_url_are_refused(monkeypatch):
    monkeypatch.delenv("BAYES_AB_DATABASE_URL", raising=False)
    with pytest.raises(DataError, match="needs a database URL"):
        SQLEngine().open(DatabaseSource(table="t"))
    with pytest.raises(DataError, match="not a database URL"):
        SQLEngine("not a url").open(DatabaseSource(table="t"))
    with pytest.raises(DataError, match="no SQLAlchemy dialect or driver"):
        SQLEngine("nosuchdb://u:p@h/d").open(DatabaseSource(table="t"))


def test_database_type_names_map_to_kinds():
    assert [type_kind(t) for t in ("int4", "INT8", "numeric(10,2)", "float8", "bool", "varchar(40)", "date",
                                   "timestamptz", "jsonb")] == \
        ["integer", "integer", "float", "float", "boolean", "string", "date", "timestamp", "other"]


def test_a_daily_panel_in_postgres_gives_duckdbs_weekly_statistics(server):
    from bayes_ab.aggregation.panel import panel_statistics

    rows = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 3, 4, 4],
        "arm": ["control", "control", "control", "treatment", "treatment", "control", "treatment", "treatment"],
        "exposure_day": [date(2026, 3, 2)] * 3 + [date(2026, 3, 3)] * 2 + [date(2026, 3, 10)] + [date(2026, 3, 2)] * 2,
        "day": [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 20), date(2026, 3, 3), date(2026, 3, 12),
                date(2026, 3, 10), date(2026, 3, 2), date(2026, 3, 25)],
        "trades": [1, 2, 0, 3, 1, 0, 2, 5]})
    spec = make_spec([{"name": "trades", "family": "count", "column": "trades", "novelty": True},
                      # a quantile of the panel's rows, each user a cluster: window sums in PostgreSQL
                      {"name": "trades_p75", "family": "quantile", "column": "trades", "quantile": 0.75}],
                     unit_column="user_id", day_column="exposure_day", activity_column="day")
    load(server, "panel_rows", rows)
    got = panel_statistics(spec, DatabaseSource(table="panel_rows"), engine=SQLEngine(server.url))["trades"]
    expected = panel_statistics(spec, rows)["trades"]
    for var in ("users", "sum", "cross", "complete"):
        np.testing.assert_array_equal(got[var].values, expected[var].values, err_msg=var)
    totals = aggregate(spec, DatabaseSource(table="panel_rows"), engine=SQLEngine(server.url))
    assert_equal_statistics(totals, aggregate(spec, rows))


def test_bayes_ab_sql_with_a_url_reads_the_column_types_so_booleans_work(server, tmp_path, capsys):
    rows = pd.DataFrame({"arm": ["control", "control", "treatment", "treatment", "treatment"],
                         "converted": [True, False, True, True, False]})
    load(server, "booleans", rows)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "b", "arms": [{"name": "control", "control": True},
                                                              {"name": "treatment"}],
                                         "metrics": [{"name": "converted", "family": "conversion",
                                                      "column": "converted"}]}))
    assert main(["sql", str(spec_path), "--dialect", "postgres", "--table", "booleans", "--url", server.url]) == 0
    sql = capsys.readouterr().out
    assert 'SUM(CAST("converted" AS INT))' in sql or 'SUM(CAST("converted" AS INTEGER))' in sql
    done = subprocess.run([server.psql(), "-h", "127.0.0.1", "-p", str(server.port), "-U", postgres_server.USER,
                           "-d", postgres_server.DATABASE, "-v", "ON_ERROR_STOP=1", "--csv", "-c", sql],
                          env=server.env, capture_output=True, text=True, check=True)
    got = pd.read_csv(io.StringIO(done.stdout)).set_index("arm")
    assert got.loc["control", "converted"] == 1 and got.loc["treatment", "converted"] == 2
    assert got.loc["treatment", "users"] == 3


def test_targeting_on_postgres_equals_duckdb(server):
    """The per-user rows of the policy tables come from the same SQL on every engine; ordered by the unit id,
    the folds and every value are the same."""
    from bayes_ab.targeting.experiment import analyze_targeting
    from bayes_ab.targeting.simulated import policy_experiment

    rows, _ = policy_experiment(2_000, 3)
    rows = rows.assign(user_id=np.arange(len(rows))[::-1]).sample(frac=1.0, random_state=1)     # stored shuffled
    load(server, "targeting_rows", rows)
    spec = make_spec(unit_column="user_id", targeting={"features": ["x1", "x2", "x3", "x4"], "learner": "linear"})
    on_postgres = analyze_targeting(spec, DatabaseSource(table="targeting_rows"), engine=SQLEngine(server.url),
                                    draws=500).tables[0]
    on_duckdb = analyze_targeting(spec, rows, draws=500).tables[0]
    for a, b in zip(on_postgres.policies, on_duckdb.policies):
        assert (a.name, a.treated_share) == (b.name, b.treated_share)
        assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-12)
