"""Command line: ``bayes-ab analyze SPEC.yaml --data FILE``. Thin over the library API.

Library errors become one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from bayes_ab.data.dialects import DIALECTS
from bayes_ab.data.engines import DEFAULT_ENGINE, ENGINE_NAMES
from bayes_ab.data.environment import DEFAULT_MASTER, MASTER_VARIABLE, URL_VARIABLE
from bayes_ab.errors import BayesAbError, SpecError
from bayes_ab.notify import WEBHOOK_VARIABLE, alert_actions, alert_document, post, webhook_url

# Everything else is imported by the command that needs it: the statistical stack (PyMC, ArviZ, SciPy) takes
# seconds to import, and `bayes-ab --help` or a mistyped option must answer at once.


def _days(text: str) -> float:
    """``--days``: days of exposure at the stage, a finite number >= 0."""
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _stage(text: str) -> float:
    """``--stage``: the ramp stage in percent of traffic, in (0, 100]."""
    value = _number(text)
    if not (math.isfinite(value) and 0 < value <= 100):
        raise argparse.ArgumentTypeError(f"must be a percentage in (0, 100], got {text!r}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _writable_folder(path: str, option: str) -> None:
    """Refuse an output folder that cannot be written, before minutes of fitting are spent."""
    from bayes_ab.files import unwritable_reason

    reason = unwritable_reason(Path(path))
    if reason is not None:
        raise SpecError(f"{option} {path}: {reason}")


def _check_stage(spec, args: argparse.Namespace) -> None:
    """Refuse a stage outside the ramp, a stage without its days, or an outlook of no traffic or no days, before any
    data is read or fitted."""
    for option, value in (("--daily-traffic", getattr(args, "daily_traffic", None)),
                          ("--outlook-days", getattr(args, "outlook_days", None))):
        if value is not None and value < 1:
            raise SpecError(f"{option}: must be a whole number >= 1, got {value}")
    if getattr(args, "daily_traffic", None) is not None and spec.grouped_units:
        raise SpecError("--daily-traffic: the outlook simulates independent users; a cluster-randomised or switchback "
                        "experiment grows by clusters or periods (bayes-ab plan says how many)")
    if args.stage is None:
        if getattr(args, "exit_code", False) or getattr(args, "alert_on", None):
            option = "--exit-code" if getattr(args, "exit_code", False) else "--alert-on"
            raise SpecError(f"{option} needs --stage: the code is the recommendation's, and there is none without it")
        return
    spec.stage_index(args.stage)
    if getattr(args, "stage_since", None) is not None:
        if args.days is not None:
            raise SpecError("--days and --stage-since: give one (the days at the stage, or the date it began)")
        args.days = _days_since(args.stage_since, getattr(args, "as_of", None))
    if args.days is None:
        raise SpecError(f"--stage {args.stage:g} needs --days: the days of exposure at that stage (0 on its first day)")


def _days_since(since: str, as_of: str | None) -> int:
    """Whole days from ``since`` (the stage's first day) to the look's date."""
    from datetime import date

    from bayes_ab.checkins.look import utc_timestamp

    try:
        first = date.fromisoformat(since.strip()[:10])
    except ValueError:
        raise SpecError(f"--stage-since {since!r}: not an ISO 8601 date (e.g. 2026-03-01)") from None
    look = date.fromisoformat(utc_timestamp(as_of)[:10])
    if first > look:
        raise SpecError(f"--stage-since {since}: after the look's date {look.isoformat()}")
    return (look - first).days


def _check_outputs(args: argparse.Namespace) -> None:
    _writable_folder(args.models_dir, "--models-dir")
    if getattr(args, "report", False):
        _writable_folder(args.reports_dir, "--reports-dir")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose help texts may be callables, evaluated only when help is shown (the
    ``--baseline`` forms come from the family registry, which imports the families' modules)."""

    def format_help(self) -> str:
        for action in self._actions:
            if callable(action.help):
                action.help = action.help()
        return super().format_help()


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
    parser = _Parser(prog="bayes-ab", description="Bayesian A/B test analysis.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("analyze", help="fit every metric of an experiment and print its effects")
    _input_arguments(run, "rows are aggregates: the spec's users_column holds users, metric columns hold sums")
    run.add_argument("--models-dir", default="models", help="where posteriors are written (default: models)")
    run.add_argument("--reports-dir", default="reports", help="where --report writes (default: reports)")
    run.add_argument("--report", action="store_true", help="also write a self-contained HTML report")
    run.add_argument("--stage", type=_stage, help="current ramp stage in percent: print a recommendation")
    run.add_argument("--days", type=_days, help="days of exposure at the current stage (required with --stage)")
    _outlook_arguments(run)
    run.set_defaults(run=_analyze)

    page = commands.add_parser("report", help="analyse and write the self-contained HTML report to --reports-dir")
    _input_arguments(page)
    page.add_argument("--models-dir", default="models",
                      help="posteriors are written here; its ledger and error rates are shown (default: models)")
    page.add_argument("--reports-dir", default="reports", help="where the report is written (default: reports)")
    page.add_argument("--stage", type=_stage, help="current ramp stage in percent: include the recommendation")
    page.add_argument("--days", type=_days, help="days of exposure at the current stage (required with --stage)")
    _outlook_arguments(page)
    page.set_defaults(run=_analyze, report=True)

    look = commands.add_parser("checkin", help="analyse a running experiment and record the look in its ledger")
    _input_arguments(look)
    look.add_argument("--rescan", action="store_true",
                      help="with the spec's day_column: aggregate every day again instead of reusing stored days")
    look.add_argument("--as-of", help="time of the look, ISO 8601 (default: now, UTC)")
    look.add_argument("--stage", type=_stage, required=True, help="current ramp stage in percent")
    look.add_argument("--days", type=_days, help="days of exposure at the current stage (or --stage-since)")
    look.add_argument("--stage-since", metavar="DATE",
                      help="the date the current stage began (ISO 8601): the days are the look's date minus it, so "
                           "a scheduled job needs no day count")
    look.add_argument("--models-dir", default="models", help="where the ledger and posteriors live (default: models)")
    look.add_argument("--reports-dir", default="reports", help="where --report writes (default: reports)")
    look.add_argument("--report", action="store_true", help="also write the HTML report, with the trajectory")
    _outlook_arguments(look)
    look.set_defaults(run=_checkin)

    ahead = commands.add_parser("plan", help="how many users and days the decision rule needs (by simulation)")
    ahead.add_argument("spec", help="experiment spec (YAML); its plan: section supplies defaults")
    ahead.add_argument("--baseline", action="append", default=[], metavar="METRIC=VALUE",
                       help=("control baseline of a primary metric in its family's form (`bayes-ab families` "
                             "lists them, e.g. a rate, or MEAN,DISPERSION; a trailing value may be left out where "
                             "the family has a default); repeat per metric; METRIC= may be left out with one "
                             "primary"))
    ahead.add_argument("--daily-traffic", type=int, help="users per day at 100%% of traffic")
    ahead.add_argument("--effect", type=float, help="minimum relative improvement worth detecting (0.05 = 5%%)")
    ahead.add_argument("--days", type=int, help="horizon in days (default: the plan's, else 28)")
    ahead.add_argument("--look-every", type=int, help="days between looks (default: the plan's, else 1)")
    ahead.add_argument("--experiments", type=int, help="simulated experiments per scenario (default: the plan's, else 1000)")
    ahead.add_argument("--alpha", type=float, default=0.05, help="two-sided level of the fixed-horizon reference")
    ahead.add_argument("--power", type=float, default=0.8, help="power of the fixed-horizon reference")
    ahead.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    ahead.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    ahead.add_argument("--correlation", type=float, help="per-user correlation of the simulated metrics (default: "
                                                         "the plan's, else 0.3)")
    ahead.add_argument("--calibrate", action="store_true",
                       help="choose the least strict ship_beat, harm, severe_harm and guardrails_safe that keep this "
                            "plan's false ships, false rollbacks and breached-guardrail ships at or under 5%% on its "
                            "simulations; prints the decision: block to paste")
    ahead.add_argument("--write", metavar="FILE", help="with --calibrate: also write the decision: block to FILE")
    ahead.add_argument("--novelty", metavar="METRIC", help="instead: how many weeks tell a fading lift (--early -> "
                                                           "--long-run) from a lasting one, for this metric")
    ahead.add_argument("--early", type=float, help="with --novelty: the first week's relative lift (0.08 = 8%%)")
    ahead.add_argument("--long-run", type=float, help="with --novelty: the lift it settles at")
    ahead.add_argument("--half-life", type=float, default=1.0, help="with --novelty: weeks to halve the gap (default 1)")
    ahead.add_argument("--exposure-days", type=int, default=14, help="with --novelty: days users enter (default 14)")
    ahead.add_argument("--max-weeks", type=int, default=8, help="with --novelty: longest test read (default 8)")
    ahead.add_argument("--icc", type=float, help="cluster-randomised spec: intra-cluster correlation of the primary")
    ahead.add_argument("--cluster-size", type=float, help="cluster-randomised spec: mean users per cluster")
    ahead.add_argument("--cluster-size-cv", type=float, default=0.0,
                       help="cluster-randomised spec: coefficient of variation of cluster sizes (default 0)")
    ahead.add_argument("--clusters", type=int, help="cluster-randomised spec: clusters per arm available (power at it)")
    ahead.add_argument("--units", type=int, help="switchback spec: units switched (e.g. regions)")
    ahead.add_argument("--periods", type=int, help="switchback spec: periods in the test")
    ahead.add_argument("--cell-sd", type=float, help="switchback spec: sd of a cell's mean around the unit and period "
                                                     "levels (from a past switchback or an A/A period)")
    _json_argument(ahead)
    ahead.set_defaults(run=_plan)

    sim = commands.add_parser("simulate", help="simulate the stopping rule's error rates under the spec's plan")
    sim.add_argument("spec", help="experiment spec (YAML) with a plan: section")
    sim.add_argument("--experiments", type=int, help="simulated experiments per scenario (default: the plan's)")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sim.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    sim.add_argument("--models-dir", default="models", help="where the figures are stored (default: models)")
    _json_argument(sim)
    sim.set_defaults(run=_simulate)

    priors = commands.add_parser("priors", help="priors learned from past experiments")
    priors_commands = priors.add_subparsers(dest="priors_command", required=True)
    learn = priors_commands.add_parser(
        "learn", help="fit the distribution of true relative effects across past experiments and write it as YAML")
    learn.add_argument("--out", required=True, help="the prior file to write (e.g. priors/checkout.yaml)")
    learn.add_argument("--models-dir", help="learn from the finished experiments stored here (default: models, "
                                            "unless --table is given)")
    learn.add_argument("--table", action="append", default=[], metavar="FILE",
                       help="a table of past results (.csv/.parquet) with columns experiment, metric, estimate, "
                            "standard_error (optional: arm, family, role); repeatable")
    learn.add_argument("--metric", help="use the results of this metric only")
    learn.add_argument("--family", help="use the results of metrics of this family only")
    learn.add_argument("--role", help="use the results of metrics of this role only")
    learn.set_defaults(run=_priors_learn)

    folio = commands.add_parser("portfolio", help="write reports/index.html: every stored experiment's status and "
                                                  "evidence, and the learned priors")
    folio.add_argument("--models-dir", default="models", help="where the experiments are stored (default: models)")
    folio.add_argument("--reports-dir", default="reports", help="where the reports are and the page is written "
                                                                "(default: reports)")
    folio.add_argument("--prior", action="append", default=[], metavar="FILE",
                       help="a learned prior file to plot (bayes-ab priors learn); repeatable")
    _json_argument(folio)
    folio.set_defaults(run=_portfolio)

    query = commands.add_parser("sql", help="print the aggregation as SQL for a warehouse; its output is what "
                                            "analyze --aggregated reads")
    query.add_argument("spec", help="experiment spec (YAML)")
    query.add_argument("--dialect", required=True, choices=DIALECTS, help="the SQL dialect to write")
    query.add_argument("--table", required=True, help="the table or view of per-user rows (schema.table)")
    query.add_argument("--url", help="read the column types from this database (else metric columns are taken "
                                     "as numbers, the arm and segments as text)")
    query.set_defaults(run=_sql)

    past = commands.add_parser("history", help="print the trajectory of an experiment's check-ins")
    past.add_argument("experiment", help="experiment name (the spec's name)")
    past.add_argument("--models-dir", default="models", help="where the ledger lives (default: models)")
    past.add_argument("--metric", action="append", default=[],
                      help="only this metric (repeatable; default: primaries and guardrails, all metrics in --json)")
    _json_argument(past)
    past.set_defaults(run=_history)

    kinds = commands.add_parser("families", help="list the metric families: their spec fields, planning baseline "
                                                 "and unit")
    kinds.set_defaults(run=_families)

    warm = commands.add_parser("warmup", help="compile the models an experiment's data need (or, with --all, every "
                                              "family's), ahead of the first check-in: an image build or a worker's "
                                              "start pays once")
    _input_arguments(warm, spec_required=False)
    warm.add_argument("--all", action="store_true", help="every family's structures, for any arm and segment count, "
                                                         "without a spec or data")
    warm.add_argument("--workers", type=int, help="processes compiling at once (default: $BAYES_AB_COMPILE_WORKERS, "
                                                  "else the cores)")
    warm.set_defaults(run=_warmup)

    plan_out = commands.add_parser("schedule", help="write a randomised switchback schedule: per period, a share of "
                                                    "the units on treatment, drawn anew")
    plan_out.add_argument("--units", required=True, help="the switched units, comma-separated (e.g. regions)")
    plan_out.add_argument("--periods", type=int, required=True, help="number of periods")
    plan_out.add_argument("--share", type=float, default=0.5, help="share of the units on treatment each period")
    plan_out.add_argument("--arms", default="control,treatment", help="control and treatment arm names")
    plan_out.add_argument("--start", help="the first period's start (ISO time, e.g. 2026-11-02T00:00); with --period "
                                          "each row also gets its period's start")
    plan_out.add_argument("--period", help="a period's length (30m, 1h, 1d), with --start")
    plan_out.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    plan_out.add_argument("--out", required=True, help="CSV file to write")
    plan_out.set_defaults(run=_schedule)
    who = commands.add_parser("target", help="who should get the treatment: the value of targeting policies from "
                                             "an experiment's per-user rows (the spec's targeting: section)")
    _input_arguments(who, "not available: a policy's value needs one row per user")
    _json_argument(who)
    who.set_defaults(run=_target)

    logs = commands.add_parser("policy-logs", help="the value of sending policies from logs of past sends that were "
                                                   "not randomised (doubly robust and IPW)")
    logs.add_argument("--decisions", required=True, help="decisions: user, decided_at, sent (0/1) [, propensity]")
    logs.add_argument("--features", required=True, help="feature snapshots: user, as_of and the feature columns")
    logs.add_argument("--outcomes", required=True, help="outcome events: user, at [, value]")
    logs.add_argument("--feature-columns", required=True, help="the features, comma-separated")
    logs.add_argument("--window-days", type=float, required=True,
                      help="the outcome is counted in this many days after each decision")
    logs.add_argument("--score", help="a feature the sender ranks by: also evaluate sending to its top shares")
    logs.add_argument("--top", default="0.2", help="shares of users a top policy sends to (default: 0.2)")
    logs.add_argument("--propensity", help="column of the decisions holding the logged chance of sending "
                                           "(default: a cross-fitted model of sending)")
    logs.add_argument("--value", help="column of the outcomes to sum (default: each event counts 1)")
    logs.add_argument("--until", help="the end of the outcome log (ISO time; default: its last event)")
    logs.add_argument("--learner", choices=("gbm", "linear"), default="gbm", help="outcome and sending models")
    logs.add_argument("--folds", type=int, default=5, help="cross-fitting folds (default: 5)")
    logs.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    for name, default in (("user", "user"), ("decided-at", "decided_at"), ("sent", "sent"), ("as-of", "as_of"),
                          ("at", "at")):
        logs.add_argument(f"--{name}-column", default=default, help=f"column name (default: {default})")
    _json_argument(logs)
    logs.set_defaults(run=_policy_logs)
    for command in (parser, *commands.choices.values()):
        command.allow_abbrev = False     # --out must not silently become --outlook-days
    return parser


def _warmup(args: argparse.Namespace) -> int:
    """Every metric's sampled structure on these data, compiled into the model cache (or found there): the first
    check-in then only loads it. Idempotent: a second run loads everything."""
    if args.workers is not None and args.workers < 1:
        raise SpecError(f"--workers must be at least 1, got {args.workers}")
    if args.all:
        return _warmup_all(args)
    if args.spec is None:
        raise SpecError("warmup needs a spec (with --data), or --all")
    import tempfile
    import time

    from bayes_ab.aggregation import aggregate
    from bayes_ab.aggregation.panel import panel_statistics
    from bayes_ab.analysis import analyze_stats
    from bayes_ab.models.compiled import cache_root
    from bayes_ab.posterior import ModelCache
    from bayes_ab.posterior.warmup import prepare_metrics
    from bayes_ab.report import write_report
    from bayes_ab.spec import load_spec

    spec = load_spec(args.spec)
    cache = ModelCache()            # this run's own: what it reports is what the disk cache held
    source, engine = _source(args, spec), _engine(args)
    stats = aggregate(spec, source, aggregated=args.aggregated, engine=engine)
    print(f"Warming up {spec.name}: {len(stats)} metric(s), model cache {cache_root()}", flush=True)
    started = time.perf_counter()
    prepare_metrics(stats, spec.metrics, spec.sampler, args.workers or _compile_workers(),
                    tell=lambda line: print(line, flush=True))
    # the rest of a check-in's path compiles on first use too (numba's functions of the effects and the exact
    # posteriors, matplotlib's font cache): one analysis and its report, in a folder thrown away, pay for it here
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bayes-ab-warmup-") as scratch:
        result = analyze_stats(spec, stats, cache=cache, panels=panel_statistics(spec, source, engine))
        write_report(result, Path(scratch))
    print(f"  one analysis and its report, to compile the rest of the path ({time.perf_counter() - begun:.1f} s)")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _warmup_all(args: argparse.Namespace) -> int:
    """Every family's structures at every class of arm and segment counts (:mod:`bayes_ab.posterior.warmup`)."""
    import time

    from bayes_ab.models.compiled import cache_root
    from bayes_ab.posterior.warmup import warm_everything

    given = [name for name in ("spec", "data", "table", "url", "spark_master") if getattr(args, name)]
    if given or args.aggregated:
        raise SpecError(f"--all takes no spec or data (got {(given or ['--aggregated'])[0]}): it compiles every "
                        "family's structures from synthetic statistics")
    started = time.perf_counter()
    print(f"Warming up every family, model cache {cache_root()}", flush=True)
    warm_everything(workers=args.workers or _compile_workers(), tell=lambda line: print(line, flush=True))
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


COMPILE_WORKERS_VARIABLE = "BAYES_AB_COMPILE_WORKERS"


def _compile_workers() -> int:
    """Processes that compile at once: ``$BAYES_AB_COMPILE_WORKERS``, else the machine's cores."""
    raw = os.environ.get(COMPILE_WORKERS_VARIABLE)
    if raw is None:
        return os.cpu_count() or 1
    try:
        workers = int(raw)
    except ValueError:
        workers = 0
    if workers < 1:
        raise SpecError(f"${COMPILE_WORKERS_VARIABLE}: must be a whole number >= 1, got {raw!r}")
    return workers


def _compile_on_every_core() -> None:
    """This process's analyses compile their missing structures on all cores at once (the first analysis of a
    new experiment: :func:`~bayes_ab.posterior.warmup.compile_ahead`), or on ``$BAYES_AB_COMPILE_WORKERS``
    processes (1: each in this process as it is fitted). A library user sets ``ModelCache.compile_workers``."""
    from bayes_ab.posterior import DEFAULT_CACHE

    DEFAULT_CACHE.compile_workers = _compile_workers()


def _checkin(args: argparse.Namespace) -> int:
    from bayes_ab.checkins import checkin
    from bayes_ab.console import render_text
    from bayes_ab.spec import load_spec

    _check_outputs(args)
    spec = load_spec(args.spec)
    _check_stage(spec, args)
    webhook = webhook_url(args.webhook)
    _compile_on_every_core()
    done = checkin(spec, _source(args, spec), stage=args.stage, days=args.days, as_of=args.as_of,
                   models_dir=args.models_dir, aggregated=args.aggregated, engine=_engine(args),
                   rescan=args.rescan)
    out = _text_out(args)
    if done.aggregation is not None:
        print(done.aggregation.text() + "\n", file=out)
    print(render_text(done.analysis), file=out)
    outlook = None
    if done.recommendation is not None:
        print("\n" + done.recommendation.text(), file=out)
        if done.decided_text():
            print(done.decided_text(), file=out)
        outlook = _outlook(spec, done.analysis, done.recommendation, args)
        if outlook:
            print(outlook, file=out)
        print("\n" + _stored_error_rates(spec.name, args.models_dir, spec.plan is not None), file=out)
    record = done.record
    print(f"\nrecorded look {record.look} as of {record.as_of} in {Path(args.models_dir) / spec.name}", file=out)
    report = None
    if args.report:
        from bayes_ab.report import write_report

        report = write_report(done.analysis, Path(args.reports_dir), done.recommendation, args.models_dir, outlook)
        print(f"report: {report}", file=out)
    if args.json:
        from bayes_ab.documents import dumps

        print(dumps(done.document(report)))
    record = done.record
    return _alert(args, webhook, spec.name, done.recommendation, done.decided, report,
                  look=record.look, as_of=record.as_of) or _action_code(args, done.recommendation, done.decided)


def _input_arguments(parser: argparse.ArgumentParser,
                     aggregated_help: str = "rows are aggregates (see analyze)", spec_required: bool = True) -> None:
    """The spec, the data and where they are aggregated: shared by analyze, report and checkin."""
    parser.add_argument("spec", help="experiment spec (YAML)", nargs=None if spec_required else "?")
    parser.add_argument("--data", help="per-user rows (.parquet/.csv), or aggregates with --aggregated "
                                       "(with --engine sql: --table or the spec's query instead)")
    parser.add_argument("--aggregated", action="store_true", help=aggregated_help)
    parser.add_argument("--engine", choices=ENGINE_NAMES, default=DEFAULT_ENGINE,
                        help="where the data are aggregated: duckdb (embedded, default), spark, or sql (a database)")
    parser.add_argument("--spark-master", help="Spark master URL with --engine spark (default: "
                                               f"${MASTER_VARIABLE}, else {DEFAULT_MASTER})")
    parser.add_argument("--url", help="database URL with --engine sql, e.g. postgresql+psycopg://user@host/db "
                                      f"(default: ${URL_VARIABLE}, which keeps the password off the command line)")
    parser.add_argument("--table", help="with --engine sql: the table or view of rows (schema.table); "
                                        "default: the spec's query")


def _engine(args: argparse.Namespace):
    """The aggregation engine the arguments ask for."""
    if args.engine == "spark":
        from bayes_ab.data.spark_engine import SparkEngine

        return SparkEngine(master=args.spark_master)
    if args.spark_master:
        raise SpecError("--spark-master needs --engine spark")
    if args.engine == "sql":
        from bayes_ab.data.sql_engine import SQLEngine

        return SQLEngine(url=args.url)
    if args.url or args.table:
        raise SpecError(f"--{'url' if args.url else 'table'} needs --engine sql")
    return args.engine


def _source(args: argparse.Namespace, spec):
    """What the engine reads: the --data path, or with --engine sql the --table or the spec's query."""
    if args.engine != "sql":
        if not args.data:
            raise SpecError("--data is required (a file or folder of rows)")
        return args.data
    from bayes_ab.data.engine import DatabaseSource

    if args.data:
        raise SpecError("--engine sql reads a database: give --table (or the spec's query), not --data")
    if args.table:
        return DatabaseSource(table=args.table)
    if spec.query:
        return DatabaseSource(query=spec.query)
    raise SpecError(f"{spec.source}: --engine sql needs --table, or a query: (a SELECT of the rows) in the spec")


ACTION_EXIT_CODES = {"hold": 10, "advance": 11, "ship": 12, "stop_no_effect": 13, "rollback": 14}
"""With ``--exit-code``, the exit code of a run that recommended each action (2 stays "bad input", 1 a crash), so a
scheduler can alert on a rollback. Opt-in: most schedulers count any code but 0 as a failed job. A check-in after
a look that recommended ship, rollback or stop exits with that look's code (the decision is sticky)."""


def _alert(args: argparse.Namespace, webhook: str | None, experiment: str, recommendation, decided,
           report, look: int | None = None, as_of: str | None = None) -> int:
    """With ``--alert-on``/``--webhook`` (:mod:`bayes_ab.notify`): for an alerting action, post the alert and return
    the action's exit code; 0 for any other action, or without either option."""
    actions = alert_actions(getattr(args, "alert_on", None), webhook)
    if recommendation is None or (action := _action(recommendation, decided)) not in actions:
        return 0
    if webhook is not None:
        headline = (recommendation.headline if decided is None
                    else (decided.payload.get("recommendation") or {}).get("headline", ""))
        failure = post(webhook, alert_document(experiment, action, headline, look, as_of, recommendation.from_stage,
                                               None if report is None else str(report), decided is not None))
        print(f"bayes-ab: {failure}; the results are written" if failure is not None
              else f"alert: {action.replace('_', ' ')} posted to the webhook", file=sys.stderr)
    return ACTION_EXIT_CODES[action]


def _action(recommendation, decided) -> str:
    """The action a run stands for: the earlier look's when one ``decided`` the experiment (a terminal action is
    sticky), else the recommendation's."""
    return str(decided.action if decided is not None else recommendation.action)


def _action_code(args: argparse.Namespace, recommendation, decided=None) -> int:
    """0, or with ``--exit-code`` the recommended action's :data:`ACTION_EXIT_CODES` entry -- the earlier look's
    when a check-in follows one that ``decided`` the experiment (a terminal action is sticky)."""
    if not getattr(args, "exit_code", False) or recommendation is None:
        return 0
    return ACTION_EXIT_CODES[_action(recommendation, decided)]


def _outlook_arguments(parser: argparse.ArgumentParser) -> None:
    _json_argument(parser)
    parser.add_argument("--exit-code", action="store_true",
                        help="exit with the recommendation's code: hold 10, advance 11, ship 12, stop_no_effect 13, "
                             "rollback 14 (with --stage; errors stay 2)")
    parser.add_argument("--alert-on", action="append", choices=tuple(ACTION_EXIT_CODES), metavar="ACTION",
                        help="alert when the recommendation is ACTION (repeatable; rollback when only --webhook is "
                             "given): exit with its code and post to --webhook; any other action exits 0")
    parser.add_argument("--webhook", metavar="URL",
                        help=f"http(s) URL that alerts are POSTed to as JSON (default: ${WEBHOOK_VARIABLE})")
    parser.add_argument("--daily-traffic", type=int,
                        help="users/day at 100%%: with a hold, print the chance of a decision in the coming days "
                             "(default: the spec's plan.daily_users)")
    parser.add_argument("--outlook-days", type=int, default=14, help="days the outlook looks ahead (default: 14)")


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document on stdout (schema in bayes_ab/schemas/; the text goes to stderr)")


def _text_out(args: argparse.Namespace):
    """Where the human-readable text goes: stdout, or stderr when stdout carries the ``--json`` document."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _outlook(spec, result, recommendation, args: argparse.Namespace) -> str | None:
    """The predictive outlook beside a hold, when the daily traffic is known."""
    from bayes_ab.decision import Action
    from bayes_ab.planning import decision_outlook

    daily = args.daily_traffic or (spec.plan.daily_users if spec.plan else None)
    if recommendation.action != Action.HOLD or daily is None or spec.grouped_units:
        return None         # clusters and switchbacks grow by units, not users: no outlook (refused when asked)
    return decision_outlook(result, recommendation.from_stage, args.days, daily, days=args.outlook_days).text()


def _plan(args: argparse.Namespace) -> int:
    from bayes_ab.planning import plan_experiment, plan_settings
    from bayes_ab.spec import load_spec

    spec = load_spec(args.spec)
    if spec.cluster_column:
        return _plan_clusters(args, spec)
    if spec.switchback is not None:
        return _plan_switchback(args, spec)
    if args.units is not None or args.periods is not None or args.cell_sd is not None:
        raise SpecError("--units, --periods and --cell-sd plan a switchback spec (switchback:)")
    if args.icc is not None or args.cluster_size is not None or args.clusters is not None:
        raise SpecError("--icc, --cluster-size and --clusters plan a cluster-randomised spec (cluster_column)")
    baseline = _parse_baseline_arguments(spec, args.baseline)
    if args.novelty:
        if args.json:
            raise SpecError("--json is not available with --novelty (its output is text only)")
        return _plan_novelty(args, spec, baseline)
    if args.early is not None or args.long_run is not None:
        raise SpecError("--early and --long-run need --novelty METRIC")
    if args.write and not args.calibrate:
        raise SpecError("--write needs --calibrate (it writes the calibrated decision: block)")
    if args.correlation is not None and not 0 <= args.correlation < 1:
        raise SpecError(f"--correlation: must be in [0, 1), got {args.correlation}")
    if args.write:
        _writable_file(args.write, "--write")
    if args.json and args.calibrate:
        raise SpecError("--json is not available with --calibrate (its output is the decision: block written by --write)")
    plan = plan_settings(spec, daily_users=args.daily_traffic, baseline=baseline, effect=args.effect, days=args.days,
                         look_every=args.look_every, experiments=args.experiments, correlation=args.correlation)
    if args.calibrate:
        from bayes_ab.planning.calibration import calibrate

        found = calibrate(spec, plan, seed=args.seed, workers=args.workers)
        print(found.text())
        if args.write:
            from bayes_ab.files import write_atomically

            path = write_atomically(Path(args.write), lambda tmp: Path(tmp).write_text(found.decision_block() + "\n"))
            print(f"\nwritten: {path}")
        return 0
    found = plan_experiment(spec, plan, seed=args.seed, workers=args.workers, alpha=args.alpha, power=args.power)
    if args.json:
        from bayes_ab.documents import dumps

        print(dumps(found.document()))
        return 0
    print(found.text())
    return 0


def _writable_file(path: str, option: str) -> None:
    """Refuse an output file whose folder cannot be written, or that is a folder, before any simulation."""
    target = Path(path)
    if target.is_dir():
        raise SpecError(f"{option} {path}: is a folder, not a file")
    _writable_folder(str(target.parent if str(target.parent) else "."), option)


def _plan_clusters(args: argparse.Namespace, spec) -> int:
    """The design effect, the power at the clusters available and the clusters needed (planning/clusters.py)."""
    from bayes_ab.metric import Role
    from bayes_ab.planning.clusters import plan_clusters
    from bayes_ab.spec import parse_baseline

    declared = spec.per_user()
    _refuse_user_plan_flags(args, "a cluster-randomised spec")
    if args.icc is None or args.cluster_size is None:
        raise SpecError(f"{spec.source}: a cluster-randomised spec is planned by clusters: give --icc (intra-cluster "
                        "correlation, e.g. 0.02) and --cluster-size (mean users per cluster)")
    if args.clusters is not None and args.clusters < 2:
        raise SpecError(f"--clusters: at least 2 per arm, got {args.clusters}")
    baseline = _parse_baseline_arguments(declared, args.baseline)
    plans = []
    for metric in declared.metrics_in(Role.PRIMARY):
        raw = baseline.get(metric.name, declared.plan.baseline.get(metric.name) if declared.plan else None)
        if raw is None:
            raise SpecError(f"{spec.source}: give --baseline {metric.name}=VALUE (the control's value per user)")
        base = parse_baseline(raw, metric, f"baseline {metric.name!r}") if isinstance(raw, (int, float, dict)) else raw
        effect = args.effect if args.effect is not None else (declared.plan.effect if declared.plan else 0.05)
        plans.append(plan_clusters(metric, base, effect, args.icc, args.cluster_size, spec.decision.ship_beat,
                                   clusters_per_arm=args.clusters, size_cv=args.cluster_size_cv))
    return _print_plans(args, {"experiment": spec.name, "cluster_column": spec.cluster_column}, plans)


def _plan_switchback(args: argparse.Namespace, spec) -> int:
    """Power at the units and periods given and the periods needed (planning/switchback.py)."""
    from bayes_ab.metric import Role
    from bayes_ab.planning.switchback import plan_switchback

    _refuse_user_plan_flags(args, "a switchback spec")
    if args.units is None or args.periods is None or args.cell_sd is None:
        raise SpecError(f"{spec.source}: a switchback spec is planned by cells: give --units, --periods and --cell-sd "
                        "(the sd of a cell's mean around the unit and period levels)")
    declared = spec.per_user()
    baseline = _parse_baseline_arguments(declared, args.baseline)
    plans = []
    for metric in declared.metrics_in(Role.PRIMARY):
        raw = baseline.get(metric.name, None)
        if not isinstance(raw, (int, float)) and not (isinstance(raw, dict) and raw):
            raise SpecError(f"{spec.source}: give --baseline {metric.name}=VALUE (the control's mean per row)")
        value = float(raw) if isinstance(raw, (int, float)) else float(next(iter(raw.values())))
        effect = args.effect if args.effect is not None else 0.05
        plans.append(plan_switchback(metric.name, value, args.cell_sd, effect, args.units, args.periods,
                                     spec.decision.ship_beat, spec.switchback.washout))
    return _print_plans(args, {"experiment": spec.name, "switchback": spec.switchback.unit}, plans)


def _refuse_user_plan_flags(args: argparse.Namespace, design: str) -> None:
    """The planning options that simulate independent users, refused for a design whose units are groups."""
    for flag in ("novelty", "calibrate", "write"):
        if getattr(args, flag):
            raise SpecError(f"--{flag} is not available for {design}")


def _print_plans(args: argparse.Namespace, head: dict, plans: list) -> int:
    """A design's plans (one per primary): their documents under ``head`` with ``--json``, else their texts."""
    if args.json:
        from bayes_ab.documents import dumps

        print(dumps({**head, "plans": [p.document() for p in plans]}))
    else:
        print("\n\n".join(p.text() for p in plans))
    return 0


def _schedule(args: argparse.Namespace) -> int:
    """A randomised switchback schedule as CSV (planning/switchback.py)."""
    import pandas as pd

    from bayes_ab.files import write_atomically
    from bayes_ab.planning.switchback import schedule
    from bayes_ab.spec import period_seconds

    units = [u.strip() for u in args.units.split(",") if u.strip()]
    arms = tuple(a.strip() for a in args.arms.split(","))
    if len(arms) != 2 or not all(arms) or arms[0] == arms[1]:
        raise SpecError(f"--arms {args.arms!r}: give two different names, control first")
    if not 0 < args.share < 1:
        raise SpecError(f"--share: must be in (0, 1), got {args.share}")
    _writable_file(args.out, "--out")
    table = schedule(units, args.periods, seed=args.seed, share=args.share, arms=arms)
    if (args.start is None) != (args.period is None):
        raise SpecError("--start and --period go together (a period's start is the start plus its number of periods)")
    if args.start is not None:
        try:
            start = pd.Timestamp(args.start)
        except ValueError:
            raise SpecError(f"--start {args.start!r}: not a time (e.g. 2026-11-02T00:00)") from None
        seconds = period_seconds(args.period)
        table.insert(2, "starts", start + pd.to_timedelta(table["period"] * seconds, unit="s"))
    path = write_atomically(Path(args.out), lambda tmp: table.to_csv(tmp, index=False))
    treated = (table["arm"] == arms[1]).mean()
    print(f"written: {path} ({len(units)} units x {args.periods} periods, {treated:.0%} of cells on {arms[1]})")
    return 0


def _plan_novelty(args: argparse.Namespace, spec, baseline: dict) -> int:
    from bayes_ab.families import family_for, registry
    from bayes_ab.novelty.planning import plan_novelty
    from bayes_ab.spec import parse_baseline

    metric = spec.metric(args.novelty)
    if not family_for(metric).draws_from_means:
        simulated = ", ".join(name for name, family in registry().items() if family.draws_from_means)
        raise SpecError(f"--novelty {metric.name}: planning simulates {simulated} metrics, not {metric.family}")
    if args.early is None or args.long_run is None:
        raise SpecError("--novelty needs --early and --long-run (relative lifts, e.g. 0.08 and 0.015)")
    raw = baseline.get(metric.name, spec.plan.baseline.get(metric.name) if spec.plan else None)
    if raw is None:
        raise SpecError(f"--novelty {metric.name}: give --baseline {metric.name}=VALUE (the control's weekly rate, or "
                        "weekly mean count and dispersion)")
    base = raw if not isinstance(raw, (int, float, dict)) else parse_baseline(raw, metric, f"baseline {metric.name!r}")
    daily = args.daily_traffic or (spec.plan.daily_users if spec.plan else None)
    if not daily:
        raise SpecError("--novelty needs --daily-traffic (or the spec's plan.daily_users)")
    for name in ("half_life", "exposure_days", "max_weeks"):
        if getattr(args, name) <= 0:
            raise SpecError(f"--{name.replace('_', '-')} must be positive")
    plan = plan_novelty(metric, daily_users=daily, weekly_mean=base.value, dispersion=base.spread or 0.5,
                        early=args.early, long_run=args.long_run, half_life_weeks=args.half_life,
                        exposure_days=args.exposure_days, max_weeks=max(args.max_weeks, 2),
                        experiments=args.experiments or 200, seed=args.seed)
    print(plan.text())
    return 0


def _baseline_form(family) -> str:
    """How ``--baseline`` is written for ``family``, e.g. ``RATE`` or ``MEAN,SD``."""
    return ",".join(f.upper() for f in family.baseline_fields) or "RATE"


def _families(args: argparse.Namespace) -> int:
    from bayes_ab.families import registry

    declared = [(name, family) for name, family in registry().items() if family.declared]
    for index, (name, family) in enumerate(declared):
        if index:
            print()
        doc = (type(family).__doc__ or "").strip().splitlines()[0]
        fields = ", ".join(family.params_type.keys()) or "none"
        print(f"{name}: {doc}\n  its own spec fields: {fields}\n  planning baseline: --baseline METRIC="
              f"{_baseline_form(family)}\n  absolute differences: {family.unit}")
    return 0


def _parse_baseline_arguments(spec, values: list[str]) -> dict:
    """``--baseline`` values -> {metric: raw baseline as a spec file would hold it}."""
    from bayes_ab.families import family_for
    from bayes_ab.metric import Role

    primaries = spec.metrics_in(Role.PRIMARY)
    parsed = {}
    for value in values:
        name, _, number_text = value.rpartition("=")
        if not name:
            if len(primaries) != 1:
                raise SpecError(f"--baseline {value!r}: name the metric (METRIC=VALUE); the spec has "
                                f"{len(primaries)} primary metrics")
            name = primaries[0].name
        metric = spec.metric(name)
        try:
            numbers = [float(x) for x in number_text.split(",")]
        except ValueError:
            raise SpecError(f"--baseline {value!r}: {number_text!r} is not a number or a comma-separated pair") from None
        fields = family_for(metric).baseline_fields
        if not fields:
            if len(numbers) != 1:
                raise SpecError(f"--baseline {value!r}: {metric.family} metric {name!r} takes one rate")
            parsed[name] = numbers[0]
        else:
            if len(numbers) > len(fields):
                raise SpecError(f"--baseline {value!r}: give {','.join(f.upper() for f in fields)} for "
                                f"{metric.family} metric {name!r}")
            parsed[name] = dict(zip(fields, numbers))
    return parsed


def _simulate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bayes_ab.spec import load_spec
    from bayes_ab.stopping import compare_rules

    spec = load_spec(args.spec)
    if spec.grouped_units:
        raise SpecError(f"{spec.source}: simulate draws independent users; a cluster-randomised or switchback spec is "
                        "planned with `bayes-ab plan SPEC --icc RHO --cluster-size M` or `--units U --periods P "
                        "--cell-sd S`")
    if args.experiments is not None and args.experiments < 1:
        raise SpecError(f"--experiments must be at least 1, got {args.experiments}")
    compared = compare_rules(spec, experiments=args.experiments, seed=args.seed, workers=args.workers)
    out = _text_out(args)
    print(compared.text() + "\n", file=out)
    for figures in compared.rules:
        print(figures.text() + "\n", file=out)
    if spec.plan is not None and spec.plan.covariate_correlation:
        # the same experiments analysed without the covariates: what the adjustment buys, in days and error rates
        plain = compare_rules(spec, replace(spec.plan, covariate_correlation={}), rules=(compared.rules[0].rule,),
                              experiments=args.experiments, seed=args.seed, workers=args.workers)
        print("Without the covariates (" + ", ".join(f"{k} correlation {v:g}" for k, v in
                                                    spec.plan.covariate_correlation.items())
              + " ignored):\n" + plain.rules[0].text() + "\n", file=out)
    written = [str(p) for p in compared.save(args.models_dir)]
    print("written: " + ", ".join(written), file=out)
    if args.json:
        from bayes_ab.documents import dumps

        print(dumps(compared.document(spec.name, written)))
    return 0


def _stored_error_rates(spec_name: str, models_dir: str | Path, has_plan: bool | None = None) -> str:
    """The simulated error rates of the stopping rules, when `bayes-ab simulate` has stored them."""
    from bayes_ab.stopping import stored_operating_characteristics

    lines = [figures.text() for figures in stored_operating_characteristics(spec_name, models_dir)]
    if not lines:
        missing = {True: "run `bayes-ab simulate SPEC`",
                   False: "add a plan: to the spec and run `bayes-ab simulate SPEC`",
                   None: "run `bayes-ab simulate SPEC` on a spec with a plan:"}[has_plan]
        return f"Stopping rule error rates: not simulated yet ({missing})."
    return "\n".join(lines)


def _priors_learn(args: argparse.Namespace) -> int:
    from bayes_ab.priors import learn_prior

    _writable_folder(str(Path(args.out).parent), "--out")
    if Path(args.out).is_dir():
        raise SpecError(f"--out {args.out}: is a folder; name the prior file to write (e.g. {Path(args.out) / 'prior.yaml'})")
    models_dir = args.models_dir if args.models_dir or args.table else "models"
    learned, past, path = learn_prior(args.out, models_dir=models_dir, tables=args.table, metric=args.metric,
                                      family=args.family, role=args.role)
    print(learned_text(learned, past, path))
    return 0


def learned_text(learned, past, path) -> str:
    """What ``priors learn`` found: both fits, the choice, and what was skipped."""
    lines = [f"Learned from {learned.experiments} past result(s); written to {path}"]
    for d in (learned.normal, learned.student_t):
        shape = "normal   " if d.df is None else f"Student-t (df {d.df:.1f})"
        middle = d.quantile([0.05, 0.5, 0.95])
        lines.append(f"  {shape}: location {d.location:+.3%}, scale {d.scale:.3%}; 90% of true effects in "
                     f"{middle[0]:+.2%} to {middle[2]:+.2%}; leave-one-out {d.loo:.1f}, AIC {d.aic:.1f}")
    lines.append(f"  chosen: {learned.chosen.form} (higher leave-one-out score)")
    if learned.chosen.fitted_scale is not None:
        lines.append(f"  WARNING: these results cannot tell the spread of true effects from zero (maximum-likelihood "
                     f"scale {learned.chosen.fitted_scale:.2g}); the prior uses {learned.chosen.scale:.3%}, the "
                     "largest scale they fit as well (95% profile-likelihood interval), so that a new experiment's "
                     "data can still move it")
    lines += [f"  skipped {s}" for s in past.skipped]
    return "\n".join(lines)


def _portfolio(args: argparse.Namespace) -> int:
    from bayes_ab.report.portfolio import portfolio_document, portfolio_rows, write_portfolio

    _writable_folder(args.reports_dir, "--reports-dir")
    if not Path(args.models_dir).is_dir():      # an empty page would read as "no experiments"
        raise SpecError(f"--models-dir {args.models_dir}: no such folder (where analyze and checkin store experiments)")
    rows = portfolio_rows(args.models_dir, args.reports_dir)      # read once: for the page and for --json
    page = write_portfolio(args.models_dir, args.reports_dir, args.prior, rows)
    print(f"portfolio: {page}", file=_text_out(args))
    if args.json:
        from bayes_ab.documents import dumps

        print(dumps(portfolio_document(args.models_dir, rows, page)))
    return 0


def _history(args: argparse.Namespace) -> int:
    from bayes_ab.checkins import history
    from bayes_ab.documents import dumps

    found = history(args.experiment, args.models_dir)
    unknown = [m for m in args.metric if m not in found.known_metrics()]
    if unknown and found.looks:
        raise SpecError(f"--metric {unknown[0]}: no look of {args.experiment!r} records it (metrics: "
                        f"{', '.join(sorted(found.known_metrics()))})")
    if args.json:
        print(dumps(found.document(tuple(args.metric))))
        return 0
    print(found.text(tuple(args.metric)))
    print("\n" + _stored_error_rates(args.experiment, args.models_dir))
    return 0


def _target(args: argparse.Namespace) -> int:
    from bayes_ab.documents import document, dumps
    from bayes_ab.spec import load_spec
    from bayes_ab.targeting.experiment import analyze_targeting

    spec = load_spec(args.spec)
    if args.aggregated:
        raise SpecError("--aggregated: a targeting policy's value needs one row per user")
    result = analyze_targeting(spec, _source(args, spec), engine=_engine(args))
    print("\n".join(result.lines()), file=_text_out(args))
    if args.json:
        print(dumps(document("targeting", {"experiment": spec.name, **result.to_dict()})))
    return 0


def _policy_logs(args: argparse.Namespace) -> int:
    import pandas as pd

    from bayes_ab.documents import document, dumps
    from bayes_ab.spec import Learner
    from bayes_ab.targeting.logs import LogColumns, evaluate_logged, labelled_decisions

    features = tuple(f.strip() for f in args.feature_columns.split(",") if f.strip())
    if not features:
        raise SpecError("--feature-columns: name at least one feature column")
    if args.score is not None and args.score not in features:
        raise SpecError(f"--score {args.score!r}: must be one of --feature-columns")
    try:
        top = tuple(sorted({float(v) for v in args.top.split(",")}))
    except ValueError:
        raise SpecError(f"--top {args.top!r}: shares such as 0.1,0.2") from None
    if not all(0 < v < 1 for v in top):
        raise SpecError(f"--top {args.top!r}: each share must be in (0, 1)")
    if not 3 <= args.folds <= 21:
        raise SpecError(f"--folds {args.folds}: must be between 3 and 21")
    until = None
    if args.until is not None:
        try:
            until = pd.Timestamp(args.until)
        except ValueError:
            raise SpecError(f"--until {args.until!r}: not an ISO time") from None
    columns = LogColumns(args.user_column, args.decided_at_column, args.sent_column, args.propensity,
                         args.as_of_column, args.at_column, args.value)
    rows, notes = labelled_decisions(args.decisions, args.features, args.outcomes, features,
                                     window_days=args.window_days, columns=columns, observed_until=until)
    result = evaluate_logged(rows, features, score=args.score, top=top, learner=Learner(args.learner),
                             folds=args.folds, seed=args.seed, notes=notes)
    out = _text_out(args)
    print("\n".join(result.lines()), file=out)
    if args.json:
        print(dumps(document("offpolicy", result.to_dict())))
    return 0


def _sql(args: argparse.Namespace) -> int:
    from bayes_ab.aggregation.warehouse import warehouse_query
    from bayes_ab.spec import load_spec

    spec = load_spec(args.spec)
    kinds = None
    if args.url:
        from bayes_ab.data.engine import DatabaseSource
        from bayes_ab.data.sql_engine import SQLEngine

        table = SQLEngine(url=args.url).open(DatabaseSource(table=args.table))
        kinds = table.columns
        table.close()
    sys.stdout.write(warehouse_query(spec, args.table, args.dialect, kinds).text())
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from bayes_ab.analysis import analyze
    from bayes_ab.console import render_text
    from bayes_ab.decision import recommend
    from bayes_ab.spec import load_spec

    _check_outputs(args)
    spec = load_spec(args.spec)
    _check_stage(spec, args)
    webhook = webhook_url(args.webhook)
    _compile_on_every_core()
    result = analyze(spec, _source(args, spec), aggregated=args.aggregated, engine=_engine(args))
    out = _text_out(args)
    print(render_text(result), file=out)
    recommendation, outlook = None, None
    if args.stage is not None:
        recommendation = recommend(result, args.stage, args.days)
        print("\n" + recommendation.text(), file=out)
        outlook = _outlook(spec, result, recommendation, args)
        if outlook:
            print(outlook, file=out)
        print("\n" + _stored_error_rates(spec.name, args.models_dir, spec.plan is not None), file=out)
    written = result.save(args.models_dir, recommendation)
    print("\nwritten: " + ", ".join(str(p) for p in written), file=out)
    report = None
    if args.report:
        from bayes_ab.report import write_report

        report = write_report(result, Path(args.reports_dir), recommendation, args.models_dir, outlook)
        print(f"report: {report}", file=out)
    if args.json:
        from bayes_ab.documents import dumps

        doc = result.document(recommendation)
        doc["outputs"] = {"written": [str(p) for p in written], "report": None if report is None else str(report)}
        print(dumps(doc))
    return _alert(args, webhook, spec.name, recommendation, None, report) or _action_code(args, recommendation)


if __name__ == "__main__":
    sys.exit(main())
