"""Compile every family's sampled structures before any data exist: ``bayes-ab warmup --all``.

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
from typing import Callable, Iterator

from bayes_ab.families import registry
from bayes_ab.families.base import WarmupCase
from bayes_ab.models.hierarchy import CLASS_REPRESENTATIVES
from bayes_ab.posterior.fit import ModelCache, nothing_to_compile, prepare, structure_of
from bayes_ab.sampling import SamplerSettings


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
    # the longest first, so that no process is left compiling one alone at the end: several treatments' models
    # take 2-3 times as long as one treatment's (the mean's 40-50 s against 15-30 s)
    return sorted(tasks, key=lambda task: -task.arms), notes


def prepare_task(task: WarmupTask, sampler: SamplerSettings) -> tuple[str, str, float]:
    """Compile (or load) one task's structure: what it was, what was done and the seconds it took."""
    # PyTensor looks for a BLAS when a fresh process first compiles; the sampler's code is numba's, which needs none
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    started = time.perf_counter()
    case = task.build()
    done = prepare(case.stats, case.metric, sampler, ModelCache())
    return task.text(case), done, time.perf_counter() - started


def warm_everything(sampler: SamplerSettings = SamplerSettings(), workers: int | None = None,
                    tell: Callable[[str], None] = print) -> int:
    """Compile every family's structures (:func:`warmup_tasks`) on ``workers`` processes (default: the cores),
    telling each as it ends; the number of structures. Idempotent: a second run loads every entry."""
    tasks, notes = warmup_tasks(sampler)
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    tell(f"{len(tasks)} structures to prepare on {workers} process(es); {len(notes)} more cases compile nothing "
         "(exact or integrated posteriors) or share one of them")
    for number, (text, done, seconds) in enumerate(_run(tasks, sampler, workers), start=1):
        tell(f"  [{number}/{len(tasks)}] {text}: {done} ({seconds:.1f} s)")
    return len(tasks)


def _run(tasks: list[WarmupTask], sampler: SamplerSettings, workers: int) -> Iterator[tuple[str, str, float]]:
    """Each task's outcome as it ends: here with one worker, else on a pool of fresh processes (spawned: a forked
    copy of a process that has used numba's compiler is not safe to compile in)."""
    if workers == 1:
        yield from (prepare_task(task, sampler) for task in tasks)
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        running = [pool.submit(prepare_task, task, sampler) for task in tasks]
        for finished in as_completed(running):
            yield finished.result()
