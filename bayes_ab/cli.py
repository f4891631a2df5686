"""Command line: ``bayes-ab analyze SPEC.yaml --data FILE``. Thin over the library API.

Library errors become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bayes_ab.analysis import Analysis, analyze
from bayes_ab.effects import MetricEffects, sentence
from bayes_ab.effects.retention import retention_milestones
from bayes_ab.effects import format as fmt
from bayes_ab.decision import recommend
from bayes_ab.errors import BayesAbError
from bayes_ab.models.families import FAMILIES
from bayes_ab.spec import load_spec


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayes-ab`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        return args.run(args)
    except BayesAbError as exc:
        print(f"bayes-ab: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayes-ab", description="Bayesian A/B test analysis.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("analyze", help="fit every metric of an experiment and print its effects")
    run.add_argument("spec", help="experiment spec (YAML)")
    run.add_argument("--data", required=True, help="per-user rows (.parquet/.csv), or aggregates with --aggregated")
    run.add_argument("--aggregated", action="store_true",
                     help="rows are aggregates: the spec's users_column holds users, metric columns hold sums")
    run.add_argument("--models-dir", default="models", help="where posteriors are written (default: models)")
    run.add_argument("--reports-dir", default="reports", help="where --report writes (default: reports)")
    run.add_argument("--report", action="store_true", help="also write a self-contained HTML report")
    run.add_argument("--stage", type=float, help="current ramp stage in percent: print a recommendation")
    run.add_argument("--days", type=float, default=0.0, help="days of exposure at the current stage")
    run.set_defaults(run=_analyze)
    return parser


def _analyze(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    result = analyze(spec, args.data, aggregated=args.aggregated)
    print(render_text(result))
    recommendation = None
    if args.stage is not None:
        recommendation = recommend(result, args.stage, args.days)
        print("\n" + recommendation.text())
    written = result.save(args.models_dir, recommendation)
    print("\nwritten: " + ", ".join(str(p) for p in written))
    if args.report:
        from bayes_ab.report import write_report

        print(f"report: {write_report(result, Path(args.reports_dir))}")
    return 0


def render_text(result: Analysis) -> str:
    """The console summary: per metric its diagnostics, effects table and sentences."""
    spec = result.spec
    first = next(iter(result.stats.values()))
    users = int(first["n"].sum())
    lines = [f"Experiment {spec.name}: arms {', '.join(spec.arm_names)} (control {spec.control.name}); "
             f"{first.sizes['segment']} segment(s); {users:,} users; data fingerprint {result.fingerprint}"]
    for effects in result.effects.values():
        lines += ["", _metric_header(effects), "  model: " + effects.model_note,
                  "  diagnostics: " + effects.diagnostics.summary(), _table(effects)]
        if effects.metric.family == "retention":
            milestones = retention_milestones(result.fits[effects.metric.name], interval=effects.interval)
            lines += ["  retention milestones (overall):"]
            lines += ["    " + line for line in _milestone_table(milestones).splitlines()]
        lines += ["  " + sentence(effects, arm) for arm in effects.treatments]
    return "\n".join(lines)


def _milestone_table(milestones: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "day": "D" + milestones["day"].astype(str), "arm": milestones["arm"],
        "retention": [f"{v:.1%} [{lo:.1%}, {hi:.1%}]" for v, lo, hi in
                      zip(milestones["retention"], milestones["low"], milestones["high"])],
        "rel. lift": [("" if np.isnan(v) else fmt.relative(v)) for v in milestones["rel_lift"]],
        "P(beat ctrl)": [("" if np.isnan(v) else fmt.probability(v)) for v in milestones["p_beat_control"]],
    })
    return shown.to_string(index=False)


def _metric_header(effects: MetricEffects) -> str:
    m = effects.metric
    return (f"Metric {m.name} ({m.family}, {m.role}, {m.direction} is good, ROPE +/-{m.rope:.1%}) "
            f"- posterior by {_sampler_text(effects)}")


def _sampler_text(effects: MetricEffects) -> str:
    s = effects.sampler
    if effects.backend == "conjugate":
        return "conjugate closed form (exact, unpooled)"
    return f"{effects.backend}, {s.chains} chains x {s.draws} draws, target_accept {s.target_accept}"


def _table(effects: MetricEffects) -> str:
    family = FAMILIES[effects.metric.family]
    rows = []
    for r in effects.rows:
        lift = "" if r.is_control else f"{fmt.relative(r.rel_lift)} [{fmt.relative(r.rel_low)}, {fmt.relative(r.rel_high)}]"
        rows.append({
            "segment": r.segment, "arm": r.arm, "users": f"{r.users:,}",
            "observed": f"{r.observed_mean:.4g}", "posterior": f"{r.mean:.4g}",
            f"rel. lift [{effects.interval:.0%} HDI]": lift,
            "P(beat ctrl)": "" if r.is_control else fmt.probability(r.p_beat_control),
            "P(best)": fmt.probability(r.p_best),
            f"loss if shipped ({family.unit})": "" if r.is_control else f"{r.loss_ship_abs * family.unit_scale:.3f}",
            "P(in ROPE)": "" if r.is_control else fmt.probability(r.p_rope),
        })
    return "\n".join("  " + line for line in pd.DataFrame(rows).to_string(index=False).splitlines())


if __name__ == "__main__":
    sys.exit(main())
