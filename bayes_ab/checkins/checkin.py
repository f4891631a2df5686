"""A check-in: analyse the data as of now, decide, and append the look to the experiment's ledger.

A look's posteriors are written first, into a temporary folder renamed into place when complete;
the ledger row that points at them is appended last, in one transaction. A check-in killed at any
moment therefore leaves either a complete look or no look (at worst an unreferenced temporary folder).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bayes_ab.analysis import Analysis, analyze_stats
from bayes_ab.checkins.ledger import Ledger, LookRecord
from bayes_ab.checkins.look import TIME_FORMAT, look_payload, look_time
from bayes_ab.data import aggregate
from bayes_ab.data.engine import Engine, Source
from bayes_ab.data.incremental import IncrementalAggregation, PartialStore, aggregate_incrementally
from bayes_ab.decision import Recommendation, recommend
from bayes_ab.models import ModelCache
from bayes_ab.models.fit import DEFAULT_CACHE
from bayes_ab.spec import ExperimentSpec, SamplerSettings

LEDGER_FILE = "ledger.sqlite"
LOOKS_FOLDER = "looks"
AGGREGATES_FOLDER = "aggregates"


@dataclass(frozen=True)
class CheckIn:
    """One recorded look: the analysis, its recommendation and the ledger row."""

    analysis: Analysis
    recommendation: Recommendation | None
    record: LookRecord
    aggregation: IncrementalAggregation | None = None

    def _repr_html_(self) -> str:
        parts = [self.analysis._repr_html_()]
        if self.recommendation is not None:
            parts.insert(0, self.recommendation._repr_html_())
        return "".join(parts)


def ledger_for(experiment: str, models_dir: str | Path = "models") -> Ledger:
    """The ledger of ``experiment`` under ``models_dir`` (``<models_dir>/<experiment>/ledger.sqlite``)."""
    return Ledger(Path(models_dir) / experiment / LEDGER_FILE, experiment)


def checkin(
    spec: ExperimentSpec,
    source: Source,
    *,
    stage: float | None,
    days: float | None,
    as_of: str | datetime | None = None,
    models_dir: str | Path = "models",
    aggregated: bool = False,
    engine: Engine | str | None = None,
    rescan: bool = False,
    sampler: SamplerSettings | None = None,
    cache: ModelCache = DEFAULT_CACHE,
) -> CheckIn:
    """Analyse ``source``, recommend at ``stage`` after ``days`` (when a stage is given) and record the look.

    With ``spec.day_column`` the aggregation is incremental: per-day partial aggregates are kept in
    ``<models_dir>/<experiment>/aggregates`` and only days not stored yet (or whose row count changed)
    are scanned; ``rescan`` aggregates every day again. Re-fits reuse ``cache``: looks in one process
    compile each model structure once.

    Raises
    ------
    LedgerError
        Foreign or corrupted ledger, or ``as_of`` earlier than the last look (checked before fitting).
    """
    ledger = ledger_for(spec.name, models_dir)
    moment = look_time(as_of)
    ledger.check_can_append(moment)
    incremental = None
    if spec.day_column:
        incremental = aggregate_incrementally(spec, source, aggregates_for(spec.name, models_dir),
                                              aggregated=aggregated, engine=engine, rescan=rescan)
        stats = incremental.stats
    else:
        stats = aggregate(spec, source, aggregated=aggregated, engine=engine)
    analysis = analyze_stats(spec, stats, sampler=sampler, cache=cache)
    return record_look(analysis, stage=stage, days=days, as_of=moment, models_dir=models_dir, ledger=ledger,
                       aggregation=incremental)


def aggregates_for(experiment: str, models_dir: str | Path = "models") -> PartialStore:
    """The per-day partial aggregates of ``experiment`` (``<models_dir>/<experiment>/aggregates``)."""
    return PartialStore(Path(models_dir) / experiment / AGGREGATES_FOLDER)


def record_look(
    analysis: Analysis,
    *,
    stage: float | None,
    days: float | None,
    as_of: str | datetime | None = None,
    models_dir: str | Path = "models",
    ledger: Ledger | None = None,
    aggregation: IncrementalAggregation | None = None,
) -> CheckIn:
    """Decide on an analysis already made and append it as a look (posteriors + ledger row);
    ``aggregation`` (what an incremental aggregation scanned and reused) is kept with the look."""
    ledger = ledger or ledger_for(analysis.spec.name, models_dir)
    moment = look_time(as_of)
    ledger.check_can_append(moment)
    recommendation = recommend(analysis, stage, days or 0.0) if stage is not None else None
    folder = _write_posteriors(analysis, Path(models_dir) / analysis.spec.name / LOOKS_FOLDER, moment)
    payload = look_payload(analysis, recommendation, stage, days)
    if aggregation is not None:
        payload["aggregation"] = aggregation.to_dict()
    try:
        record = ledger.append(
            as_of=moment, recorded_at=datetime.now(timezone.utc).strftime(TIME_FORMAT),
            fingerprint=analysis.fingerprint, action=recommendation.action if recommendation else None,
            posterior_dir=str(folder.relative_to(ledger.path.parent)),
            payload=payload)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)     # no ledger row points at it
        raise
    return CheckIn(analysis, recommendation, record, aggregation)


def _write_posteriors(analysis: Analysis, parent: Path, moment: str) -> Path:
    """Each metric's posterior as netCDF in a new folder named after the look time, made atomically."""
    parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    tmp = parent / f".tmp-{token}"
    final = parent / f"{moment.replace(':', '')}-{token}"
    tmp.mkdir()
    try:
        for name, fitted in analysis.fits.items():
            fitted.to_netcdf(tmp / f"{name}.nc")
        with os.scandir(tmp) as entries:          # flush the files before the folder becomes visible
            for entry in entries:
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
