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
    known truth; and two pre-period columns (the 28 days before the test), for ``covariates:``."""
    frame = simulate_users(TRUTHS, ARMS, n_users, seed)
    rng = np.random.default_rng(seed + 1)
    factors = [trades_factor(arm, tenure, bool(got))
               for arm, tenure, got in zip(frame["arm"], frame["tenure"], frame["received"])]
    rates = TRADES.rates(rng, len(frame))
    frame["trades"] = rng.poisson(np.asarray(factors) * rates)
    return with_pre_period(frame, rates, np.random.default_rng([seed, 2]))


def with_pre_period(frame: pd.DataFrame, rates: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """``pre_trades``: the user's trades in the 28 days before the test, at the user's own trading rate drifted by a
    month-to-month factor (no push then). ``pre_active_days``: days with a trade in those 28 days, higher for users who would trade on the test day
    without the push. That is the control outcome: the control's ``traded`` itself, and for a treated user who
    traded, a draw of whether the control rate alone would have made them trade (``traded`` is 1 when the user's
    uniform falls below the rate, so the control outcome is 1 with probability control rate / treated rate). Neither
    column can depend on the arm: each is built from what the user would do without the push."""
    out = frame.copy()
    control_rate = np.array([_rate(t, r, "control", False) for t, r in zip(frame["tenure"], frame["region"])])
    own_rate = np.array([_rate(t, r, a, bool(g)) for t, r, a, g in
                         zip(frame["tenure"], frame["region"], frame["arm"], frame["received"])])
    traded = frame["traded"].to_numpy() == 1
    would_trade = traded & (rng.random(len(frame)) < control_rate / own_rate)
    # a month's rate drifts around the user's own (gamma factor of mean 1, shape 1): months correlate at about 0.7
    out["pre_trades"] = rng.poisson(rates * rng.gamma(1.0, 1.0, len(frame)))
    out["pre_active_days"] = rng.binomial(PRE_PERIOD_DAYS, np.where(would_trade, 0.19, 0.08))
    return out


PRE_PERIOD_DAYS = 28


def _rate(tenure: str, region: str, arm: str, received: bool) -> float:
    """The segment's true trade-conversion rate for a user of ``arm`` who did (or did not) receive the push."""
    truth = next(t for t in TRUTHS if t.labels == {"tenure": tenure, "region": region})
    return truth.complier_rate("traded", arm) if received else truth.rates["traded"]["control"]


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
