"""Operating characteristics of the default ramp rule beside the reference rules, and the threshold
trade-off behind the default ``harm`` and ``ship_beat``. Figures go to benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/decision_rules.py [--experiments 1000] [--workers 2] [--sweep]

1. The push-notification demo plan (20,000 users/day, 11.5% trade conversion, +5% planned, opt-out
   guardrail at 0.73% with a 10% margin, default five-stage ramp, daily looks for 28 days): every rule
   on the same simulated experiments, four scenarios (no effect, +5%, -5%, guardrail breach).
2. The seed planning scenarios (checkout 5,000/day 3% +10%; 2% baseline +20% at 10,000/day) and Group
   Stories (two primaries, four guardrails, a breach scenario per guardrail).
3. With ``--sweep``: the default rule at several ``harm`` / ``ship_beat`` settings on the push plan,
   the trade-off between rollbacks of changes that do nothing and the exposure to a harmful change.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.spec import load_spec  # noqa: E402
from bayes_ab.stopping import compare_rules  # noqa: E402

SPECS = {
    "push notification demo": ROOT / "examples" / "push_notification" / "spec.yaml",
    "checkout, 5,000/day, 3%, +10%": ROOT / "examples" / "planning" / "checkout_button.yaml",
    "2% baseline, +20%, 10,000/day": ROOT / "examples" / "planning" / "two_percent_baseline.yaml",
    "group stories (2 primaries, 4 guardrails)": ROOT / "examples" / "group_stories" / "spec.yaml",
}
SWEEP = ((0.99, 0.99), (0.995, 0.99), (0.9975, 0.99), (0.999, 0.99), (0.995, 0.975), (0.995, 0.985),
         (0.995, 0.995))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--only", action="append", default=[], help="plans whose title contains this text")
    args = parser.parse_args()
    for title, path in SPECS.items():
        if args.only and not any(o in title for o in args.only):
            continue
        start = time.perf_counter()
        compared = compare_rules(load_spec(path), experiments=args.experiments, workers=args.workers)
        print(f"## {title} ({time.perf_counter() - start:.0f} s)\n{compared.text()}\n", flush=True)
    if args.sweep:
        spec = load_spec(SPECS["push notification demo"])
        print("## threshold sweep, default rule, push plan")
        for harm, ship in SWEEP:
            changed = replace(spec, decision=replace(spec.decision, harm=harm, ship_beat=ship))
            table = compare_rules(changed, experiments=args.experiments, workers=args.workers,
                                  rules=("default",)).to_pandas().set_index("scenario")
            print(f"harm {harm}, ship_beat {ship}: "
                  f"A/A ship {table.loc['no effect', 'ship']:.1%}, A/A rollback {table.loc['no effect', 'rollback']:.1%}; "
                  f"+5% ship {table.loc['planned effect', 'ship']:.1%} (median day "
                  f"{table.loc['planned effect', 'ship_day_median']:g}); -5% rollback {table.loc['harmful', 'rollback']:.1%} "
                  f"(median day {table.loc['harmful', 'rollback_day_median']:g}, "
                  f"{table.loc['harmful', 'treatment_user_days_median']:,.0f} treated user-days)", flush=True)


if __name__ == "__main__":
    main()
