"""What one command costs in a fresh process: help, imports, compilation, sampling, analyze, checkin.

Every figure is measured in new Python processes (a check-in runs as its own process: cron, notebook, CI), as
min / median of ``--runs`` runs (default 3), on the push-notification example (its generator's 200,000 users,
3 metrics: conversion, count, guardrail conversion; 6 segments). Printed beside the figures before the
disk-cached sampler (issue 18, measured on the same machine).

- ``--help``: ``bayes-ab --help`` and ``bayes-ab analyze --help``;
- imports: what ``analyze`` imports before its first fit;
- compile: preparing the example's models with an empty model cache (first run on a machine), and again
  with the cache filled (every later process);
- sampling: the example's fits once prepared (all metrics, retries included);
- whole ``bayes-ab analyze`` and ``bayes-ab checkin`` on the example, model cache filled.

With ``--previous DIR`` (a checkout of an earlier bayes-ab, e.g. ``git worktree add /tmp/old <commit>``), the
whole commands (help, analyze, checkin) of that version are timed too, interleaved run by run with this
one's so that both see the same machine load.

Usage: ``.venv/bin/python benchmarks/cold_start.py [--runs 3] [--previous DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "push_notification"
SPEC = EXAMPLE / "spec.yaml"
DATA = EXAMPLE / "data" / "users.parquet"
CLI = [sys.executable, "-m", "bayes_ab.cli"]

# Issue 18's figures before the disk cache (same machine, push demo with 2 metrics then)
ISSUE = {"--help": "6.0", "imports": "5.1", "compile (empty cache)": "25-30", "compile (cache filled)": "25-30",
         "sampling": "~5", "analyze": "36 (33-42)"}

FITS = """
import json, sys, time
t0 = time.perf_counter()
from bayes_ab.analysis import analyze_stats
from bayes_ab.aggregation import aggregate
from bayes_ab.posterior import ModelCache, fit
from bayes_ab.posterior.fit import DEFAULT_CACHE
from bayes_ab.spec import load_spec
import bayes_ab.console, bayes_ab.decision
from bayes_ab.models.nuts import library
library()                                       # the sampler's extension, as a fit loads it
t1 = time.perf_counter()
spec = load_spec(sys.argv[1])
stats = aggregate(spec, sys.argv[2])
t2 = time.perf_counter()
prepare, sample = 0.0, 0.0
for metric in spec.metrics:
    s = time.perf_counter()
    fit(stats[metric.name], metric, spec.sampler)      # prepares (compiles or loads) the structure, then samples
    total = time.perf_counter() - s
    s = time.perf_counter()
    fit(stats[metric.name], metric, spec.sampler)      # the same fit again: sampling only
    again = time.perf_counter() - s
    prepare += total - again
    sample += again
print(json.dumps({"imports": t1 - t0, "aggregation": t2 - t1, "prepare": prepare, "sampling": sample,
                  "loaded": DEFAULT_CACHE.from_disk, "structures": DEFAULT_CACHE.compilations}))
"""


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def fits(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", FITS, str(SPEC), str(DATA)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def figure(values: list[float] | None) -> str:
    return "" if not values else f"{min(values):.2f} / {statistics.median(values):.2f}"


def row(name: str, values: list[float], previous: list[float] | None, note: str = "") -> str:
    return f"| {name} | {figure(values)} | {figure(previous)} | {ISSUE.get(name, '')} | {note} |"


def interleaved(commands: dict[str, list[str]], runs: int, env: dict[str, str], old_env: dict[str, str] | None,
                cwd: Path) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each command timed ``runs`` times with this version and (when given) the previous one, alternating."""
    now: dict[str, list[float]] = {name: [] for name in commands}
    before: dict[str, list[float]] = {name: [] for name in commands}
    for run in range(runs):
        for name, command in commands.items():
            command = [part.replace("{run}", str(run)) for part in command]
            now[name].append(timed(command, env, cwd))
            if old_env is not None:
                before[name].append(timed([part.replace("ledger-", "old-ledger-") for part in command],
                                          old_env, cwd))
    return now, before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previous", type=Path, help="checkout of an earlier bayes-ab to time beside this one")
    args = parser.parse_args()
    if not DATA.exists():
        subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--out", str(DATA)], check=True)
    work = Path(tempfile.mkdtemp(prefix="bayes-ab-cold-"))
    env = {**os.environ, "BAYES_AB_PROGRESS": "0"}
    warm_env = {**env, "BAYES_AB_CACHE_DIR": str(work / "cache")}
    old_env = None if args.previous is None else {**env, "PYTHONPATH": str(args.previous.resolve())}
    results: dict[str, list[float]] = {}
    previous: dict[str, list[float]] = {}
    notes: dict[str, str] = {}
    help_now, help_before = interleaved({"--help": [*CLI, "--help"], "analyze --help": [*CLI, "analyze", "--help"]},
                                        args.runs, env, old_env, work)
    results.update(help_now)
    previous.update(help_before)

    cold = [fits({**env, "BAYES_AB_CACHE_DIR": str(work / f"empty-{i}")}) for i in range(args.runs)]
    fits(warm_env)                                               # fills the cache the warm runs read
    warm = [fits(warm_env) for _ in range(args.runs)]
    results["imports"] = [r["imports"] for r in warm]
    results["aggregation"] = [r["aggregation"] for r in warm]
    results["compile (empty cache)"] = [r["prepare"] for r in cold]
    results["compile (cache filled)"] = [r["prepare"] for r in warm]
    results["sampling"] = [r["sampling"] for r in warm]
    notes["compile (cache filled)"] = f"{warm[-1]['loaded']} of {warm[-1]['structures']} structures loaded"
    notes["sampling"] = "all metrics, retries at target_accept 0.99 included"

    commands = {
        "analyze": [*CLI, "analyze", str(SPEC), "--data", str(DATA), "--models-dir", str(work / "models")],
        "checkin": [*CLI, "checkin", str(SPEC), "--data", str(DATA), "--stage", "25", "--days", "4",
                    "--models-dir", str(work / "ledger-{run}")],
    }
    whole_now, whole_before = interleaved(commands, args.runs, warm_env, old_env, work)
    results.update(whole_now)
    previous.update(whole_before)
    notes["checkin"] = "first look of a new ledger each run"

    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}; runs: {args.runs}")
    label = f"previous ({args.previous.name})" if args.previous else "previous"
    print(f"| step | now: min / median (s) | {label}: min / median (s) | issue 18's figure (s) | note |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        print(row(name, values, previous.get(name), notes.get(name, "")))


if __name__ == "__main__":
    main()
