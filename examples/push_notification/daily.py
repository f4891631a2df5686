"""Write what the push-notification experiment has collected by the end of one day, for a daily check-in.

The example's users (``generate.py``) arrive in order at the plan's traffic (``plan.daily_users`` at 100% of
traffic, from the spec); the default ramp exposes 1% of users to the push on day 1, 5% on day 2, 25% on
day 3 and 50% from day 4, and control takes users in the planned ratio, so the experiment takes
``stage / 50%`` of the day's traffic until the 50% stage, all of it after. The file holds every user who
entered by the end of ``--day``; the script prints the check-in's arguments for that day
(``--stage S --days D --as-of TIME``), so that a loop can run the experiment day by day:

    python examples/push_notification/generate.py --out examples/push_notification/data/users.parquet
    for day in 1 2 3 4 5 6 7; do
      args=$(python examples/push_notification/daily.py --day $day --out /tmp/push/day.parquet)
      bayes-ab checkin examples/push_notification/spec.yaml --data /tmp/push/day.parquet $args --models-dir /tmp/push/models
    done
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from bayes_ab.spec import load_spec

HERE = Path(__file__).resolve().parent
START = date(2026, 3, 2)
"""Day 1 of the example (a Monday); each check-in is at 09:00 UTC the morning after its day."""


def schedule(spec, day: int) -> tuple[int, float, int]:
    """Users entered by the end of ``day``, the stage that day, and whole days spent at that stage.

    A stage lasts its ``min_days`` (at least one day) and then the next one starts, as a rule that always
    advances would have it: the example's ramp, read from the spec.
    """
    stages = [s for s in spec.ramp if s.percent < 100]
    users, stage_index, days_at_stage = 0, 0, 0
    for _ in range(day):
        stage = stages[stage_index]
        if days_at_stage >= max(stage.min_days, 1) and stage_index + 1 < len(stages):
            stage_index, days_at_stage = stage_index + 1, 0
            stage = stages[stage_index]
        users += round(spec.plan.daily_users * spec.traffic_share(stage.percent))
        days_at_stage += 1
    return users, stages[stage_index].percent, days_at_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", type=int, required=True, help="day of the experiment, 1 = the first")
    parser.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    parser.add_argument("--users", type=Path, default=HERE / "data" / "users.parquet",
                        help="the example's users in arrival order (generate.py)")
    parser.add_argument("--spec", type=Path, default=HERE / "spec.yaml")
    args = parser.parse_args()
    if args.day < 1:
        parser.error(f"--day must be 1 or more, got {args.day}")
    spec = load_spec(args.spec)
    users, stage, days = schedule(spec, args.day)
    frame = pd.read_parquet(args.users)
    if users > len(frame):
        sys.exit(f"daily.py: day {args.day} needs {users:,} users; {args.users} holds {len(frame):,} "
                 "(generate.py --users N)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.iloc[:users].to_parquet(args.out, index=False)
    as_of = START + timedelta(days=args.day)
    print(f"--stage {stage:g} --days {days} --as-of {as_of.isoformat()}T09:00:00Z")


if __name__ == "__main__":
    main()
