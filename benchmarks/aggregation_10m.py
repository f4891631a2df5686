"""Aggregation of a 10M-row per-user Parquet file: seconds and peak memory (resident set).

Writes the file with DuckDB (not timed), then times ``bayes_ab.data.aggregate`` in a fresh child
process so that its peak RSS belongs to the aggregation alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

ROWS = 10_000_000

CHILD = r"""
import json, resource, sys, time
from bayes_ab.data import aggregate
from bayes_ab.spec import parse_spec
spec = parse_spec({"name": "bench", "arm_column": "arm", "unit_column": "user_id",
                   "segments": ["tenure", "region"],
                   "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                   "metrics": [{"name": "traded", "family": "conversion", "column": "traded"},
                               {"name": "opted_out", "family": "conversion", "column": "opted_out",
                                "direction": "decrease"}]})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
stats = aggregate(spec, sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "before_mb": base / 1024,
                  "users": int(stats["traded"]["n"].sum())}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "users.parquet"
        duckdb.sql(f"""
            COPY (SELECT i AS user_id,
                         CASE WHEN random() < 0.5 THEN 'control' ELSE 'treatment' END AS arm,
                         CASE WHEN random() < 0.3 THEN 'new' ELSE 'tenured' END AS tenure,
                         ['US', 'EU', 'APAC'][1 + (i % 3)] AS region,
                         (random() < 0.12)::INTEGER AS traded,
                         (random() < 0.01)::INTEGER AS opted_out
                  FROM range({ROWS}) t(i)) TO '{path}' (FORMAT parquet)
        """)
        size_mb = path.stat().st_size / 2**20
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        bare = subprocess.run([sys.executable, "-c", (
            "import duckdb,time,sys;t=time.perf_counter();"
            "duckdb.sql(\"SELECT arm, tenure, region, count(*), sum(traded), sum(opted_out) "
            "FROM read_parquet('\" + sys.argv[1] + \"') GROUP BY ALL\").fetchall();"
            "print(time.perf_counter()-t)"), str(path)], check=True, capture_output=True, text=True)
    print(f"{ROWS:,} rows, Parquet {size_mb:.0f} MB; users aggregated: {result['users']:,}")
    print(f"aggregate() with data checks and unit-id uniqueness: {result['seconds']:.2f} s "
          f"({ROWS / result['seconds'] / 1e6:.1f} M rows/s); peak RSS {result['peak_mb']:.0f} MB "
          f"(process before aggregation {result['before_mb']:.0f} MB)")
    print(f"bare DuckDB grouped scan of the same columns: {float(bare.stdout):.2f} s")


if __name__ == "__main__":
    main()
