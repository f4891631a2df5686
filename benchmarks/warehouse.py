"""Warehouse-native aggregation: 10M per-user rows in PostgreSQL, aggregated where they live against pulled out.

A throwaway PostgreSQL server (tests/postgres_server.py) gets a table of ``--rows`` users made by
``generate_series`` inside the database (not timed). Then, each ``REPEATS`` times:

- ``sql engine``: :func:`bayes_ab.aggregation.aggregate` with the SQL engine: the same queries as DuckDB's, data
  checks included, translated to PostgreSQL; only aggregates come back; again without ``unit_column`` (no
  unit-id uniqueness check, a GROUP BY over every id);
- ``pull + duckdb``: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` of the columns the spec reads into a file,
  then :func:`bayes_ab.aggregation.aggregate` on DuckDB over that file (the fastest way psycopg moves rows out);
- ``printed sql``: ``bayes-ab sql --dialect postgres``'s query run by the server, its rows fetched.

Bytes back are the CSV size of what crosses the connection (the aggregates' CSV for the engine).

Usage: python benchmarks/warehouse.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import io
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
REPEATS = 3

SPEC = {
    "name": "warehouse_bench", "arm_column": "arm", "segments": ["country", "platform"], "unit_column": "user_id",
    "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
    "metrics": [
        {"name": "converted", "family": "conversion", "column": "converted"},
        {"name": "trades", "family": "count", "column": "trades", "cap": 50},
        {"name": "revenue", "family": "mean", "column": "revenue", "covariate": "pre_revenue"},
    ],
}
COLUMNS = ["user_id", "arm", "country", "platform", "converted", "trades", "revenue", "pre_revenue"]

MAKE_TABLE = """
CREATE UNLOGGED TABLE users AS
SELECT g AS user_id,
       CASE WHEN hashint4(g) % 2 = 0 THEN 'control' ELSE 'treatment' END AS arm,
       (ARRAY['US', 'DE', 'BR', 'IN', 'JP'])[1 + abs(hashint4(g + 1)) % 5] AS country,
       (ARRAY['ios', 'android', 'web'])[1 + abs(hashint4(g + 2)) % 3] AS platform,
       (abs(hashint4(g + 3)) % 1000 < 115)::int AS converted,
       floor(-ln(1 - (abs(hashint4(g + 4)) % 1000000) / 1000000.0) * 3)::int AS trades,
       round(((abs(hashint4(g + 5)) % 100000) / 1000.0)::numeric, 2)::float8 AS revenue,
       round(((abs(hashint4(g + 6)) % 100000) / 1000.0)::numeric, 2)::float8 AS pre_revenue
FROM generate_series(1, {rows}) AS g
"""


def timed(function, repeats=REPEATS):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()

    import psycopg

    import postgres_server
    from bayes_ab.aggregation import aggregate
    from bayes_ab.data.engine import DatabaseSource
    from bayes_ab.aggregation.scan import ScanPlan
    from bayes_ab.data.sql_engine import SQLEngine
    from bayes_ab.aggregation.warehouse import warehouse_query
    from bayes_ab.spec import parse_spec

    reason = postgres_server.unavailable()
    if reason:
        sys.exit(f"warehouse benchmark: {reason}")
    server = postgres_server.start()
    try:
        connect = lambda: psycopg.connect(server.dsn, password=postgres_server.PASSWORD, autocommit=True)  # noqa: E731
        start = time.perf_counter()
        with connect() as con:
            con.execute(MAKE_TABLE.format(rows=args.rows))
            con.execute("ANALYZE users")
            size = con.execute("SELECT pg_total_relation_size('users')").fetchone()[0]
        print(f"PostgreSQL {server.bindir.parent.name}: {args.rows:,} rows made in {time.perf_counter() - start:.1f} s "
              f"({size / 2**20:,.0f} MiB on disk); {platform.node()}, {platform.python_version()}")
        spec = parse_spec(SPEC)
        engine = SQLEngine(server.url)

        returned = {}

        def engine_run(spec=spec, key="engine"):
            table = engine.open(DatabaseSource(table="users"))
            run = table.run
            sizes = []

            def counting(sql):
                frame = run(sql)
                sizes.append(len(frame.to_csv(index=False).encode()))
                return frame

            try:
                counted = type(table)(table.engine, table.label, table.relation, table.columns, counting, table.close)
                plan = ScanPlan.for_table(spec, counted)
                stats = plan.statistics(plan.scan(counted), counted.label)
            finally:
                table.close()
            returned[key] = sum(sizes)
            return stats

        e_min, e_med, stats = timed(engine_run)
        no_units = parse_spec({k: v for k, v in SPEC.items() if k != "unit_column"})
        u_min, u_med, _ = timed(lambda: engine_run(no_units, "engine_no_units"))
        workdir = Path(tempfile.mkdtemp(prefix="bayes-ab-wh-"))
        csv = workdir / "users.csv"

        def pull_and_aggregate():
            with connect() as con, open(csv, "wb") as out:
                with con.cursor().copy(f"COPY (SELECT {', '.join(COLUMNS)} FROM users) TO STDOUT (FORMAT csv, HEADER)") as copy:
                    for block in copy:
                        out.write(block)
            returned["pull"] = csv.stat().st_size
            pulled = time.perf_counter()
            result = aggregate(spec, csv)
            returned["duckdb_part"] = time.perf_counter() - pulled
            return result

        p_min, p_med, pulled_stats = timed(pull_and_aggregate)
        printed = warehouse_query(spec, "users", "postgres").sql

        def printed_run():
            with connect() as con:
                rows = con.execute(printed).fetchall()
            buffer = io.StringIO()
            for row in rows:
                buffer.write(",".join(map(str, row)) + "\n")
            returned["printed"] = len(buffer.getvalue().encode())
            return len(rows)

        s_min, s_med, printed_rows = timed(printed_run)
        for name in stats:
            assert (stats[name]["n"].values == pulled_stats[name]["n"].values).all(), name
        print("\n| step | min s | median s | bytes back |\n|---|---|---|---|")
        print(f"| sql engine (queries + checks in PostgreSQL) | {e_min:.1f} | {e_med:.1f} | {returned['engine']:,} |")
        print(f"| sql engine without the unit-id check | {u_min:.1f} | {u_med:.1f} | {returned['engine_no_units']:,} |")
        print(f"| pull rows (COPY csv) + DuckDB aggregate | {p_min:.1f} | {p_med:.1f} | {returned['pull']:,} |")
        print(f"|   of which DuckDB on the pulled file (last run) | | {returned['duckdb_part']:.1f} | |")
        print(f"| printed `bayes-ab sql` query ({printed_rows:,} aggregated rows) | {s_min:.1f} | {s_med:.1f} | "
              f"{returned['printed']:,} |")
        print(f"\nstatistics agree (users per cell) between the engine and the pulled rows; "
              f"{returned['pull'] / max(returned['engine'], 1):,.0f}x fewer bytes back with the engine")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
