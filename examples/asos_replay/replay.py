"""Replay a real ASOS experiment check-in by check-in and show when the decision rule would have stopped.

    python examples/asos_replay/replay.py --experiment 591c2c --metric 1 --models-dir models

Each checkpoint of the dataset (cumulative count, mean and variance per arm) becomes one look in the
experiment's ledger, fitted with the mean family (the compiled model is re-used between looks). The
dataset has no calendar dates: looks are dated from an arbitrary start, 2020-01-01, plus
``time_since_start``. Every experiment is treated as running at the 50% stage of a 50% -> 100% ramp.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from bayes_ab.checkins import history
from bayes_ab.checkins.replay import Checkpoint, Replay, replay
from bayes_ab.aggregation.moments import moments_stats
from bayes_ab.errors import DataError
from bayes_ab.spec import Arm, load_spec

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "asos_digital_experiments.csv"
START = datetime(2020, 1, 1, tzinfo=timezone.utc)


def checkpoints(frame: pd.DataFrame, experiment: str, metric: int) -> tuple[list[str], list[Checkpoint]]:
    """The arms (control first) and one :class:`Checkpoint` per time point of ``experiment``/``metric``."""
    rows = frame[(frame["experiment_id"] == experiment) & (frame["metric_id"] == metric)]
    if rows.empty:
        known = ", ".join(sorted(frame["experiment_id"].unique()))
        raise DataError(f"{DATA.name}: no rows for experiment {experiment!r} and metric {metric} (experiments: {known})")
    variants = sorted(rows["variant_id"].unique())
    arms = ["control"] + [f"variant_{v}" for v in variants]
    points = []
    for time, at in rows.sort_values("time_since_start").groupby("time_since_start", sort=True):
        by_variant = at.set_index("variant_id")
        if set(by_variant.index) != set(variants):
            continue          # a checkpoint that does not cover every arm cannot be compared
        first = by_variant.loc[variants[0]]
        n = [first["count_c"]] + [by_variant.loc[v, "count_t"] for v in variants]
        mean = [first["mean_c"]] + [by_variant.loc[v, "mean_t"] for v in variants]
        var = [first["variance_c"]] + [by_variant.loc[v, "variance_t"] for v in variants]
        try:
            stats = moments_stats(arms, n, mean, var, "metric")
        except DataError as exc:
            raise DataError(f"{DATA.name}: experiment {experiment}, day {time:g}: {exc}") from None
        points.append(Checkpoint((START + timedelta(days=float(time))).isoformat(), float(time), {"metric": stats}))
    return arms, points


def run(experiment: str, metric: int, models_dir: Path, sampler=None) -> Replay:
    """Replay one experiment's metric into ``models_dir`` and return the looks."""
    frame = pd.read_csv(DATA)
    arms, points = checkpoints(frame, experiment, metric)
    spec = load_spec(HERE / "spec.yaml")
    spec = replace(spec, name=f"asos_{experiment}_metric{metric}",
                   arms=tuple(Arm(a, 1.0, i == 0) for i, a in enumerate(arms)))
    return replay(spec, points, stage=50, models_dir=models_dir, sampler=sampler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="591c2c", help="experiment_id (default: 591c2c)")
    parser.add_argument("--metric", type=int, default=1, help="metric_id 1-4 (default: 1, binary)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="where the ledger goes")
    args = parser.parse_args()
    result = run(args.experiment, args.metric, args.models_dir)
    name = result.looks[0].analysis.spec.name
    print(history(name, args.models_dir).text())
    stop = result.stopped_at
    if stop is None:
        print(f"\nThe rule never stopped this experiment in {len(result.looks)} looks.")
    else:
        print(f"\nStopped at look {stop.record.look} (day {stop.record.payload['days']:g}): "
              f"{stop.recommendation.headline}")


if __name__ == "__main__":
    main()
