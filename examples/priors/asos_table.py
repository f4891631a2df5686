"""Write the ASOS experiments' final results as a table of past results, for ``bayes-ab priors learn --table``.

    python examples/priors/asos_table.py --metric 1 --out /tmp/asos_metric1.csv
    bayes-ab priors learn --table /tmp/asos_metric1.csv --out priors/asos_metric1.yaml

One row per experiment and treatment arm: its final relative effect (treatment mean / control mean - 1) and the
delta-method standard error, in the columns ``priors learn`` reads (``experiment, metric, estimate,
standard_error``, plus ``arm``; metric 1 is binary, so ``family`` is conversion there and mean otherwise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from asos_loo import DATA, arm_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", type=int, default=1, choices=(1, 2, 3, 4), help="ASOS metric id")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    args = parser.parse_args()
    arms = arm_results(pd.read_csv(DATA), args.metric)
    table = pd.DataFrame({"experiment": arms["experiment"], "arm": arms["variant"].astype(str),
                          "metric": f"asos_metric_{args.metric}",
                          "family": "conversion" if args.metric == 1 else "mean",
                          "estimate": arms["final"], "standard_error": arms["final_se"]})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"wrote {len(table)} past results ({table['experiment'].nunique()} experiments) to {args.out}")


if __name__ == "__main__":
    main()
