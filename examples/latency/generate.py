"""A faster recommendation API: does it cut latency without hurting the tail, and does conversion follow?

    python examples/latency/generate.py --out examples/latency/data/requests.parquet

One row per request (a panel: ``activity_column: request_id``), requests clustered within users: a user's
device and network make all of their requests slow or fast (a log-normal user effect of sd 0.5 beside the
request's own sd of 0.45), and 2% of requests hit the 3,000 ms timeout. The change removes 50 ms of server time
from every request that does not time out, which moves the median (~230 ms -> ~180 ms) and leaves the p99 (the
timeouts) where it is. Conversion: 10.0% -> 10.5% (a user converts on one of their requests).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ARMS = ("control", "fast_api")
SERVER_MS = {"control": 110.0, "fast_api": 60.0}
CLIENT_MS = 120.0            # median client-side time of a request (network, rendering), log-normal
USER_SD, REQUEST_SD = 0.5, 0.45
TIMEOUT_MS, TIMEOUT_SHARE = 3000.0, 0.02
CONVERSION = {"control": 0.100, "fast_api": 0.105}
REQUESTS_PER_USER = 12        # mean; Poisson plus one


def latencies(rng: np.random.Generator, arm: str, user_effect: np.ndarray) -> np.ndarray:
    """Latency of requests whose users have ``user_effect`` (log scale), in ms."""
    client = CLIENT_MS * np.exp(user_effect + REQUEST_SD * rng.standard_normal(len(user_effect)))
    value = SERVER_MS[arm] + client
    return np.where(rng.random(len(user_effect)) < TIMEOUT_SHARE, TIMEOUT_MS, np.minimum(value, TIMEOUT_MS))


def true_quantile(arm: str, p: float, draws: int = 4_000_000, seed: int = 99) -> float:
    """The arm's population quantile of request latency (every request weighs the same), by a large simulation."""
    rng = np.random.default_rng(seed)
    users = rng.normal(0, USER_SD, draws)
    weights = rng.poisson(REQUESTS_PER_USER, draws) + 1          # a user's share of requests
    values = latencies(rng, arm, users)
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][np.searchsorted(cumulative, p)])


def generate(n_users: int = 30_000, seed: int = 11) -> pd.DataFrame:
    """One row per request: user, arm, request id, exposure day, latency (ms) and converted (1 on the request
    where the user converted)."""
    rng = np.random.default_rng(seed)
    arm = np.array(ARMS)[rng.integers(0, 2, n_users)]
    requests = rng.poisson(REQUESTS_PER_USER, n_users) + 1
    user = np.repeat(np.arange(n_users), requests)
    arm_of_request = arm[user]
    effect = rng.normal(0, USER_SD, n_users)[user]
    latency = np.empty(len(user))
    for name in ARMS:
        rows = arm_of_request == name
        latency[rows] = latencies(rng, name, effect[rows])
    converts = rng.random(n_users) < np.where(arm == ARMS[0], CONVERSION["control"], CONVERSION["fast_api"])
    first_request = np.concatenate([[0], np.cumsum(requests)[:-1]])
    converted = np.zeros(len(user), dtype="int8")
    converted[first_request[converts]] = 1
    exposure = rng.integers(0, 7, n_users)[user]
    return pd.DataFrame({"user_id": user, "arm": arm_of_request, "request_id": np.arange(len(user)),
                         "exposure_day": exposure, "latency_ms": latency.round(1), "converted": converted})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    generate().to_parquet(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
