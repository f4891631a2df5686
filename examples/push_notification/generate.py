"""Generate the push-notification example's per-user data (seeded) as Parquet.

    python examples/push_notification/generate.py --out examples/push_notification/data/users.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from truth import ARMS, TRADES, TRUTHS, trades_factor  # noqa: E402

from bayes_ab.simulation import simulate_users  # noqa: E402


def generate(n_users: int = 200_000, seed: int = 7) -> pd.DataFrame:
    """Users with their arm, segment, whether the push reached them, trade conversion, opt-out and trades, from the
    known truth."""
    frame = simulate_users(TRUTHS, ARMS, n_users, seed)
    rng = np.random.default_rng(seed + 1)
    factors = [trades_factor(arm, tenure, bool(got))
               for arm, tenure, got in zip(frame["arm"], frame["tenure"], frame["received"])]
    frame["trades"] = TRADES.draw(rng, len(frame), np.asarray(factors))
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    frame = generate(args.users, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"wrote {len(frame):,} users to {args.out}")


if __name__ == "__main__":
    main()
