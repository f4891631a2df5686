"""Compile structures ahead of the fits that use them, on several processes: every family's before any data
exist (``bayes-ab warmup --all``), and an analysis's missing ones at once before it fits (:func:`compile_ahead`).

An image build or a worker's first start runs it once, so that no check-in on that machine -- of any experiment,
any family, any arm or segment count -- waits for a compilation. Each family declares synthetic statistics that
lead it to each of its structures (:meth:`~bayes_ab.families.base.Family.warmup_cases`); they are compiled
size-free (:func:`~bayes_ab.posterior.fit.prepare`) at one size of every class of arm and segment counts
(:data:`~bayes_ab.models.hierarchy.CLASS_REPRESENTATIVES`), so the entries serve every size. Structures are
found first and compiled once each, on several processes: a compilation is one core's work for 10-30 s.

What it does not cover, and compiles on first use instead: retention horizons other than the default, learned
Student-t priors and covariate-adjusted (``covariates:``) conversion, count and retention metrics -- each a
structure of its own (its data differ) -- and the PyMC and public-API backends, which compile per process.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from itertools import product
from typing import Callable, Iterator, Mapping, Sequence

import xarray as xr

from bayes_ab.families import registry
from bayes_ab.families.base import WarmupCase
from bayes_ab.files import unwritable_reason
from bayes_ab.metric import Metric
from bayes_ab.models.compat import sampler_path
from bayes_ab.models.compiled import cache_root, has_entry
from bayes_ab.models.hierarchy import CLASS_REPRESENTATIVES
from bayes_ab.posterior.fit import ModelCache, model_sizes, nothing_to_compile, prepare, structure_of
from bayes_ab.progress import progress
from bayes_ab.sampling import Backend, SamplerSettings


@dataclass(frozen=True)
class WarmupTask:
    """One structure to compile: a family's warm-up case (by index) at one size of each class."""

    family: str
    case: int
    arms: int
    segments: int

    def build(self) -> WarmupCase:
        """The case's metric and statistics (recomputed where the task runs: statistics are cheap, and a
        process receives four numbers instead of a dataset)."""
        return registry()[self.family].warmup_cases(*_labels(self.arms, self.segments))[self.case]

    def text(self, case: WarmupCase) -> str:
        return f"{self.family} {case.label}, {self.arms} arms x {self.segments} segment(s)"


def _labels(arms: int, segments: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (("control",) + tuple(f"treatment_{i}" for i in range(1, arms)),
            tuple(f"segment_{j}" for j in range(segments)))


def warmup_tasks(sampler: SamplerSettings = SamplerSettings()) -> tuple[list[WarmupTask], list[str]]:
    """The structures to compile, one task per distinct structure, and a line for each case that compiles
    nothing or shares a structure listed before it."""
    tasks, notes, seen = [], [], {}
    seconds = {}
    for name, family in registry().items():
        for arms, segments in product(CLASS_REPRESENTATIVES["arm"], CLASS_REPRESENTATIVES["segment"]):
            for index, case in enumerate(family.warmup_cases(*_labels(arms, segments))):
                task = WarmupTask(name, index, arms, segments)
                key = structure_of(case.stats, case.metric, sampler)
                if key is None:
                    notes.append(f"{task.text(case)}: {nothing_to_compile(case.stats, case.metric, sampler)}")
                elif key in seen:
                    notes.append(f"{task.text(case)}: the structure of {seen[key]}")
                else:
                    seen[key] = task.text(case)
                    tasks.append(task)
                    seconds[task] = case.compile_seconds
    # the longest first, so that no process is left compiling one alone at the end (the mean's 3-arm structures
    # take about 20 s, a count's 5 s)
    return sorted(tasks, key=lambda task: -seconds[task]), notes


def prepare_task(task: WarmupTask, sampler: SamplerSettings) -> tuple[str, str, float]:
    """Compile (or load) one task's structure: what it was, what was done and the seconds it took."""
    case = task.build()
    return (task.text(case), *_prepare(case.stats, case.metric, sampler))


def _prepare(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings,
             size_free: bool = True) -> tuple[str, float]:
    """:func:`~bayes_ab.posterior.fit.prepare` in a worker process of its own: what was done, and the seconds."""
    # PyTensor looks for a BLAS when a fresh process first compiles; the sampler's code is numba's, which needs none
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    started = time.perf_counter()
    done = prepare(stats, metric, sampler, ModelCache(), size_free)
    return done, time.perf_counter() - started


def warm_everything(sampler: SamplerSettings = SamplerSettings(), workers: int | None = None,
                    tell: Callable[[str], None] = print) -> int:
    """Compile every family's structures (:func:`warmup_tasks`) on ``workers`` processes (default: the cores),
    telling each as it ends; the number of structures. Idempotent: a second run loads every entry."""
    tasks, notes = warmup_tasks(sampler)
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    tell(f"{len(tasks)} structures to prepare on {workers} process(es); {len(notes)} more cases compile nothing "
         "(exact or integrated posteriors) or share one of them")
    for number, (text, done, seconds) in enumerate(_run(prepare_task, [(task, sampler) for task in tasks], workers),
                                                   start=1):
        tell(f"  [{number}/{len(tasks)}] {text}: {done} ({seconds:.1f} s)")
    return len(tasks)


def prepare_metrics(stats: Mapping[str, xr.Dataset], metrics: Sequence[Metric], sampler: SamplerSettings,
                    workers: int = 1, tell: Callable[[str], None] = print) -> None:
    """``bayes-ab warmup SPEC``: each metric's structure compiled size-free (or loaded), the distinct ones on
    ``workers`` processes at once, telling what was done for each metric: first those that compile nothing or share
    another's structure, then each compiled one as it ends."""
    owners, others = _by_structure(stats, metrics, sampler)
    for metric, note in others:
        tell(f"  {metric.name} ({metric.family}): {note}")
    calls = [(stats[metric.name], metric, sampler) for metric in owners.values()]
    for metric, (done, seconds) in _run(_prepare_metric, calls, max(1, min(workers, len(calls)))):
        tell(f"  {metric.name} ({metric.family}): {done} ({seconds:.1f} s)")


def _by_structure(stats: Mapping[str, xr.Dataset], metrics: Sequence[Metric],
                  sampler: SamplerSettings) -> tuple[dict[str, Metric], list[tuple[Metric, str]]]:
    """The first metric of each distinct structure, by key; and every other metric with why it compiles nothing
    of its own (no sampled model, or an earlier metric's structure)."""
    owners: dict[str, Metric] = {}
    others = []
    for metric in metrics:
        key = structure_of(stats[metric.name], metric, sampler)
        if key is None:
            others.append((metric, nothing_to_compile(stats[metric.name], metric, sampler)))
        elif key in owners:
            others.append((metric, f"the structure of an earlier metric ({owners[key].name})"))
        else:
            owners[key] = metric
    return owners, others


def _prepare_metric(stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> tuple[Metric, tuple[str, float]]:
    return metric, _prepare(stats, metric, sampler)


def compile_ahead(stats: Mapping[str, xr.Dataset], metrics: Sequence[Metric], sampler: SamplerSettings,
                  cache: ModelCache) -> int:
    """Compile the distinct structures ``metrics`` need that the disk cache lacks, on ``cache.compile_workers``
    processes at once, each for its sizes as an analysis compiles it; the number compiled. The fits then load
    them. An experiment's first analysis waits for its compilations one after the other otherwise (Group
    Stories: 3 structures of 10-15 s each).

    Does nothing with one worker or fewer than two missing structures (one compiles as fast here, without a
    process to start), off the native sampler path (the public and PyMC paths compile per process) and when the
    disk cache is not writable (what a worker compiled would be lost). A worker that fails leaves its structure
    to the fit, which compiles it here and reports any error as it always did.
    """
    if cache.compile_workers < 2 or sampler.backend != Backend.NUTPIE or not sampler_path().native:
        return 0
    owners, _ = _by_structure(stats, metrics, sampler)
    missing = [metric for key, metric in owners.items() if not has_entry(key, model_sizes(stats[metric.name]))]
    if len(missing) < 2 or unwritable_reason(cache_root()) is not None:
        return 0
    workers = min(cache.compile_workers, len(missing))
    with progress(f"compiling {len(missing)} models on {workers} processes"):
        for _ in _run(_prepare, [(stats[metric.name], metric, sampler, False) for metric in missing], workers,
                      quiet=True):
            pass
    return len(missing)


def _run(function: Callable, calls: list[tuple], workers: int, quiet: bool = False) -> Iterator:
    """``function``'s result for each of ``calls`` (argument tuples) as it ends: here with one worker, else on a
    pool of fresh processes (spawned: a forked copy of a process that has used numba's compiler is not safe to
    compile in). ``quiet``: a call that raises yields ``None`` instead of raising."""
    if workers == 1:
        yield from (function(*arguments) for arguments in calls)
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = [pool.submit(function, *arguments) for arguments in calls]
        for finished in as_completed(running):
            if quiet and finished.exception() is not None:
                yield None
            else:
                yield finished.result()
