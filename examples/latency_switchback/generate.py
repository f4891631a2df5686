"""A faster core recommendation API (-50 ms of server time), switched on and off per region hour by hour.

    python examples/latency_switchback/generate.py --out examples/latency_switchback/data/requests.parquet

The change cannot be toggled per user: it is on or off per server region. 8 regions x 14 days x 24 hourly
periods, on a randomised schedule (``bayes-ab schedule``: every hour 4 of the 8 regions on the new API, drawn anew).
One row per request (60 a region-hour): region, timestamp, arm, latency (ms) and whether the request failed.

Latency = the region's own level (150-300 ms of network and client time) x a daily cycle (+/-25%, peak in the
evening) x an hourly factor per region (sd 5%: an hour's own load) x the request's own log-normal noise (sd 0.3),
plus the server time: 110 ms on the old API, 60 ms on the new one. Carry-over: in the hour after a switch half of
the previous arm's server-time difference lingers (connection pools and caches warm up or drain), i.e. +25 ms in
the first hour back on the old API and -25 ms less saving in the first hour on the new one. Errors: 2.0% of
requests on both APIs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bayes_ab.planning.switchback import schedule  # noqa: E402

REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "ap-south", "ap-east", "sa-east", "af-south")
DAYS, REQUESTS = 14, 60
SERVER_MS = {"control": 110.0, "fast_api": 60.0}
CARRY = 0.5                 # share of the previous arm's server-time difference lingering for one hour
ERROR_RATE = 0.02
START = pd.Timestamp("2026-11-02 00:00:00")


def true_effect_ms() -> float:
    """The effect outside the hour after a switch: the server-time difference."""
    return SERVER_MS["fast_api"] - SERVER_MS["control"]


def generate(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    periods = DAYS * 24
    plan = schedule(list(REGIONS), periods, seed=seed, arms=("control", "fast_api"))
    on = (plan["arm"] == "fast_api").to_numpy().reshape(periods, len(REGIONS))
    previous = np.vstack([on[:1], on[:-1]])
    level = rng.uniform(150, 300, len(REGIONS))[None, :]
    hour = np.arange(periods) % 24
    cycle = 1 + 0.25 * np.sin(2 * np.pi * (hour - 13) / 24)[:, None]
    hourly = np.exp(0.05 * rng.standard_normal((periods, len(REGIONS))))
    server = np.where(on, SERVER_MS["fast_api"], SERVER_MS["control"])
    server = server + CARRY * (previous != on) * np.where(previous, -1.0, 1.0) * (SERVER_MS["control"] - SERVER_MS["fast_api"])
    cell_client = (level * cycle * hourly).ravel()
    cell_server = server.ravel()
    n = REQUESTS * cell_client.size
    cell = np.repeat(np.arange(cell_client.size), REQUESTS)
    latency = cell_client[cell] * np.exp(0.3 * rng.standard_normal(n) - 0.045) + cell_server[cell]
    period = plan["period"].to_numpy()[cell]
    ts = START + pd.to_timedelta(period * 3600 + rng.integers(0, 3600, n), unit="s")
    return pd.DataFrame({"region": plan["unit"].to_numpy()[cell], "ts": ts, "arm": plan["arm"].to_numpy()[cell],
                         "latency_ms": latency.round(1), "failed": (rng.random(n) < ERROR_RATE).astype(int)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "data" / "requests.parquet"))
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    frame = generate(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"wrote {len(frame):,} requests ({frame['region'].nunique()} regions x {DAYS * 24} hours) to {args.out}")


if __name__ == "__main__":
    main()
