"""Spark (local mode) against DuckDB on the same data: identical statistics for every family, the
same errors, Spark DataFrames passed directly, and the command line's --engine spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from bayes_ab.cli import main
from bayes_ab.aggregation import aggregate
from bayes_ab.data.spark_engine import column_kind, to_spark_sql
from bayes_ab.errors import DataError

from conftest import make_spec
from design_rows import cluster_rows, cluster_spec, switchback_rows, switchback_spec
from family_rows import assert_same, FAMILY_METRICS, family_rows, family_spec


@pytest.fixture(scope="module")
def family_parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("spark") / "users.parquet"
    family_rows(6000, seed=1).to_parquet(path, index=False)
    return path


def test_every_family_is_identical_on_spark_and_duckdb(family_parquet, spark):
    duck = aggregate(family_spec(), family_parquet)
    sparked = aggregate(family_spec(), family_parquet, engine=spark)
    assert {ds.attrs["family"] for ds in duck.values()} == {"conversion", "count", "mean", "retention", "quantile"}
    assert "(missing) / 1" in duck["converted"]["segment"].values     # NULL country, integer tier
    assert_same(duck, sparked)
    # and both are right: an independent pandas count of one cell
    frame = pd.read_parquet(family_parquet)
    cell = frame[(frame["arm"] == "treatment") & (frame["country"] == "US") & (frame["tier"] == 2)]
    got = duck["converted"].sel(arm="treatment", segment="US / 2")
    assert int(got["n"]) == len(cell) and int(got["successes"]) == int(cell["converted"].sum())
    assert float(duck["revenue"]["sum_xy"].sel(arm="treatment", segment="US / 2")) == \
        float((cell["revenue"] * cell["pre_revenue"]).sum())


def test_a_spark_dataframe_is_aggregated_by_spark_itself(family_parquet, spark):
    frame = spark.session().read.parquet(str(family_parquet))
    assert_same(aggregate(family_spec(), frame), aggregate(family_spec(), family_parquet))


def test_aggregated_input_and_csv_agree(tmp_path, spark):
    rng = np.random.default_rng(3)
    table = pd.DataFrame({"arm": ["control", "treatment"] * 6, "platform": np.repeat(["ios", "android", "web"], 4),
                          "users": rng.integers(100, 1000, 12)})
    table["converted"] = (table["users"] * rng.uniform(0.05, 0.2, 12)).astype(int)
    path = tmp_path / "cells.csv"
    table.to_csv(path, index=False)
    spec = make_spec(segments=("platform",))
    assert_same(aggregate(spec, path, aggregated=True), aggregate(spec, path, aggregated=True, engine=spark))


@pytest.mark.parametrize("column, value, message", [
    ("revenue", np.nan, r"column 'revenue' \(metric 'revenue'\) has missing values \(NULL/NaN\): 1 row\(s\)"),
    ("converted", 2, r"column 'converted' \(metric 'converted'\) is not binary .*: 1 row\(s\), first in arm"),
    ("trades", -1, r"column 'trades' \(metric 'trades'\) has negative counts: 1 row\(s\)"),
])
def test_failed_checks_read_the_same_on_both_engines(tmp_path, spark, column, value, message):
    frame = family_rows(500, seed=2)
    frame[column] = frame[column].astype(float) if column != "converted" else frame[column]
    frame.loc[7, column] = value
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path, index=False)
    errors = []
    for engine in ("duckdb", spark):
        with pytest.raises(DataError, match=message) as caught:
            aggregate(family_spec(), path, engine=engine)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_repeated_unit_ids_are_refused_on_spark(tmp_path, spark):
    frame = family_rows(300, seed=4)
    frame.loc[5, "user_id"] = frame.loc[6, "user_id"]
    frame.loc[5, "arm"], frame.loc[6, "arm"] = "control", "treatment"
    path = tmp_path / "dupes.parquet"
    frame.to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"unit id '6' appears across arms \(control, treatment\)"):
        aggregate(family_spec(), path, engine=spark)


def test_the_shared_queries_translate_to_spark_sql():
    sql = ('SELECT CAST(seg0 AS VARCHAR) AS seg0, COUNT(*) FILTER (WHERE TRY_CAST("x y" AS DOUBLE) = 1) AS "n" '
           "FROM t WHERE \"d\" IN (DATE '2026-03-01') GROUP BY 1")
    spark_sql = to_spark_sql(sql)
    assert "`x y`" in spark_sql and "TRY_CAST" in spark_sql and "FILTER(WHERE" in spark_sql.replace(" (", "(")
    assert "CAST(seg0 AS STRING)" in spark_sql and "CAST('2026-03-01' AS DATE)" in spark_sql
    assert [column_kind(t) for t in ("int", "bigint", "double", "decimal(10,2)", "boolean", "string", "date",
                                     "timestamp")] == ["integer", "integer", "float", "float", "boolean",
                                                       "string", "date", "timestamp"]


def test_cli_analyze_on_spark(tmp_path, family_parquet, spark, capsys):
    spark.session()                       # the CLI's engine joins the running local session
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "sparkcli", "arm_column": "arm", "unit_column": "user_id", "segments": ["country"],
        "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
        "metrics": [FAMILY_METRICS[0]], "sampler": {"backend": "conjugate", "draws": 1000, "seed": 1},
    }))
    code = main(["analyze", str(spec_path), "--data", str(family_parquet), "--engine", "spark",
                 "--spark-master", "local[2]", "--models-dir", str(tmp_path / "models")])
    out = capsys.readouterr().out
    assert code == 0, out
    users = len(pd.read_parquet(family_parquet))
    assert f"{users:,} users" in out and "converted" in out


def test_spark_master_needs_the_spark_engine(tmp_path, family_parquet, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({"name": "x", "arms": [{"name": "control", "control": True},
                                                                {"name": "treatment"}],
                                         "metrics": [FAMILY_METRICS[0]]}))
    assert main(["analyze", str(spec_path), "--data", str(family_parquet), "--spark-master", "local[2]"]) == 2
    assert "--spark-master needs --engine spark" in capsys.readouterr().err


def test_aggregated_rows_of_every_family_give_the_same_statistics_on_spark(spark):
    import duckdb

    from bayes_ab.aggregation.warehouse import warehouse_query

    spec = make_spec(FAMILY_METRICS, segments=("country", "tier"))
    rows = family_rows(3000, seed=9)
    con = duckdb.connect()
    con.register("per_user", rows)
    aggregated = con.execute(warehouse_query(spec, "per_user", "duckdb").sql).df()
    on_spark = aggregate(spec, aggregated, aggregated=True, engine=spark)
    per_user = aggregate(spec, rows)
    for name in per_user:
        for var in per_user[name].data_vars:
            np.testing.assert_allclose(on_spark[name][var].values, per_user[name][var].values, rtol=1e-12)


def test_cluster_and_switchback_designs_are_identical_on_spark_and_duckdb(spark):
    """Per-cluster totals, and switchback cells with periods from a timestamp (UNIX_TIMESTAMP on Spark)."""
    for spec, rows in ((cluster_spec(), cluster_rows(seed=5)), (switchback_spec(), switchback_rows(seed=5))):
        on_spark, on_duckdb = aggregate(spec, rows, engine=spark), aggregate(spec, rows)
        for name in on_duckdb:
            for var in on_duckdb[name].data_vars:
                np.testing.assert_allclose(on_spark[name][var].values, on_duckdb[name][var].values, rtol=1e-12,
                                           err_msg=f"{name}.{var}")
            assert on_spark[name].attrs["users"] == on_duckdb[name].attrs["users"] == len(rows)
