"""Group Stories: shared stories for friend groups (seeded per-user data, 3 segments by engagement).

    python examples/group_stories/generate.py --out examples/group_stories/data/users.parquet

True effects (treatment vs control): DMs per story view +14.5% (the primary, a ratio metric); likes per
story view +3%; story views per user +5%, so DMs per user +20.2%; users posting a story 20% -> 23%; story mute rate
2.5% -> 4.3% (+72%, the guardrail that should stop the rollout); active days in the first 14 unchanged;
daily churn hazard unchanged (D7 retention unchanged); public story posts per user -4% (cannibalization,
within its margin).

Story views per user are negative binomial (mean by engagement segment); given the views, a user's DMs are
Poisson with a per-user log-normal propensity, and likes likewise, so DMs and views are correlated and
heavy-tailed -- the shape the ratio family is for. The ratio lifts are exact by construction: DMs per view
do not depend on how many views a user has.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

ENGAGEMENT = {"low": (0.4, 4.0), "medium": (0.35, 12.0), "high": (0.25, 30.0)}   # share, story views per user
VIEW_LIFT = 0.05                       # group stories give more to watch
DMS_PER_VIEW = 0.05
LIKES_PER_VIEW = 0.12
RATIO_LIFT = {"dms_per_view": 0.145, "likes_per_view": 0.03}
LIFT = {"dms": (1 + RATIO_LIFT["dms_per_view"]) * (1 + VIEW_LIFT) - 1,       # DMs per user: +20.2%
        "posted": 0.15, "muted": 0.72, "public_posts": -0.04}


def generate(n_users: int = 60_000, seed: int = 9) -> pd.DataFrame:
    """One row per user with every metric's column."""
    rng = np.random.default_rng(seed)
    names = list(ENGAGEMENT)
    segment = rng.choice(len(names), n_users, p=[ENGAGEMENT[s][0] for s in names])
    treated = rng.integers(0, 2, n_users)
    lift = {k: 1 + v * treated for k, v in LIFT.items()}
    views_mean = np.array([ENGAGEMENT[s][1] for s in names])[segment] * (1 + VIEW_LIFT * treated)
    views = rng.negative_binomial(1.2, 1.2 / (1.2 + views_mean))
    propensity = rng.lognormal(-0.5, 1.0, n_users)                    # mean 1, heavy right tail
    dm_rate = DMS_PER_VIEW * (1 + RATIO_LIFT["dms_per_view"] * treated) * propensity
    liking = rng.lognormal(-0.32, 0.8, n_users)                       # mean 1: some users like everything
    like_rate = LIKES_PER_VIEW * (1 + RATIO_LIFT["likes_per_view"] * treated) * liking
    observed = rng.integers(0, 15, n_users)
    churn = rng.geometric(0.06, n_users).astype(float)
    churn[churn > observed] = np.nan
    return pd.DataFrame({
        "user_id": np.arange(n_users),
        "arm": np.where(treated == 1, "group_stories", "control"),
        "engagement": np.array(names)[segment],
        "story_views": views,
        "story_dms": rng.poisson(dm_rate * views),
        "story_likes": rng.poisson(like_rate * views),
        "posted_story": (rng.random(n_users) < 0.20 * lift["posted"]).astype("int8"),
        "muted_story": (rng.random(n_users) < 0.025 * lift["muted"]).astype("int8"),
        "active_days": rng.binomial(14, 0.45, n_users),
        "churn_day": churn,
        "days_observed": observed,
        "public_posts": rng.poisson(0.8 * lift["public_posts"]),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    generate().to_parquet(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
