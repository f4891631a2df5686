"""Replay a finished experiment look by look from its cumulative checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import xarray as xr

from bayes_ab.analysis import analyze_stats
from bayes_ab.checkins.checkin import CheckIn, ledger_for, record_look
from bayes_ab.checkins.look import utc_timestamp
from bayes_ab.decision import TERMINAL_ACTIONS
from bayes_ab.display import HtmlRepr
from bayes_ab.errors import LedgerError
from bayes_ab.posterior import ModelCache
from bayes_ab.posterior.fit import DEFAULT_CACHE
from bayes_ab.spec import ExperimentSpec, SamplerSettings



@dataclass(frozen=True)
class Checkpoint(HtmlRepr):
    """Cumulative statistics of every metric at one moment, ``days`` after the start of the stage."""

    as_of: str
    days: float
    stats: Mapping[str, xr.Dataset]


@dataclass(frozen=True)
class Replay(HtmlRepr):
    """Every recorded look of a replay, and the first one at which the rule would have stopped."""

    looks: tuple[CheckIn, ...]

    @property
    def stopped_at(self) -> CheckIn | None:
        """The first look whose action ends the experiment, or ``None`` if the rule never stopped it."""
        ended = (c for c in self.looks if c.recommendation and c.recommendation.action in TERMINAL_ACTIONS)
        return next(ended, None)


def replay(
    spec: ExperimentSpec,
    checkpoints: Iterable[Checkpoint],
    *,
    stage: float,
    models_dir: str | Path = "models",
    sampler: SamplerSettings | None = None,
    cache: ModelCache = DEFAULT_CACHE,
) -> Replay:
    """Record one look per checkpoint, in order, into ``spec.name``'s ledger (re-fitting compiled models).

    The ledger must not hold looks yet: a replay is a complete trajectory, not an addition to one.
    """
    ledger = ledger_for(spec.name, models_dir)
    if ledger.looks():
        raise LedgerError(f"{ledger.path}: already holds looks; replay into an empty models folder")
    looks = []
    for point in checkpoints:
        analysis = analyze_stats(spec, dict(point.stats), sampler=sampler, cache=cache)
        looks.append(record_look(analysis, stage=stage, days=point.days, as_of=utc_timestamp(point.as_of),
                                 models_dir=models_dir, ledger=ledger))
    return Replay(tuple(looks))
