"""A check-in: analyse the data as of now, decide, and append the look to the experiment's ledger.

A look's posteriors are written first, complete, into a temporary folder named after the writing process;
then the ledger row that points at them is appended, in one transaction; then the folder is renamed into
place. So a look folder under ``looks/`` exists only for a recorded look (which is how a lost ledger is
recognised), and a check-in killed at any moment leaves a complete look or none: the next check-in moves a
recorded look's folder into place, and deletes the temporary folder of a look that was never recorded.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bayes_ab.analysis import SUMMARY_FILE, Analysis, analyze_stats, with_targeting
from bayes_ab.checkins.ledger import LOOKS_FOLDER, Ledger, LookRecord
from bayes_ab.documents import document, dumps
from bayes_ab.errors import LedgerError
from bayes_ab.checkins.look import TIME_FORMAT, look_payload, look_time
from bayes_ab.aggregation import aggregate
from bayes_ab.data.engine import Engine, Source
from bayes_ab.aggregation.incremental import IncrementalAggregation, PartialStore, aggregate_incrementally
from bayes_ab.aggregation.panel import panel_statistics
from bayes_ab.compliance.statistics import received_statistics
from bayes_ab.decision import TERMINAL_ACTIONS, Recommendation, recommend
from bayes_ab.files import is_stale_temporary, remove_stale_temporaries, temporary_path, temporary_target
from bayes_ab.posterior import ModelCache
from bayes_ab.posterior.fit import DEFAULT_CACHE
from bayes_ab.spec import ExperimentSpec, SamplerSettings

LEDGER_FILE = "ledger.sqlite"
AGGREGATES_FOLDER = "aggregates"


@dataclass(frozen=True)
class CheckIn:
    """One recorded look: the analysis, its recommendation and the ledger row."""

    analysis: Analysis
    recommendation: Recommendation | None
    record: LookRecord
    aggregation: IncrementalAggregation | None = None
    decided: LookRecord | None = None
    """The first earlier look that recommended a terminal action (ship, rollback, stop), if any: the experiment was
    decided then, and this look says only what the data say now."""

    def decided_text(self) -> str | None:
        """One sentence when an earlier look already decided the experiment (a terminal action is sticky)."""
        if self.decided is None:
            return None
        now = self.recommendation.action if self.recommendation is not None else "no recommendation"
        return (f"Already decided: look {self.decided.look} (as of {self.decided.as_of}) recommended "
                f"{self.decided.action}; this look is recorded for the trajectory, and the data now say {now}.")

    def document(self, report: str | Path | None = None) -> dict:
        """The look as the versioned ``bayes-ab/checkin`` document (:mod:`bayes_ab.documents`): the analysis'
        fields (:meth:`~bayes_ab.analysis.Analysis.document`) and the look's record, the earlier look that
        decided the experiment, what the incremental aggregation scanned, and the report written."""
        record = self.record
        body = self.analysis.document_body(self.recommendation)
        body["look"] = {"look": record.look, "as_of": record.as_of, "recorded_at": record.recorded_at,
                        "stage": record.payload.get("stage"), "days": record.payload.get("days"),
                        "posterior_dir": record.posterior_dir,
                        "decided": None if self.decided is None else {"look": self.decided.look,
                                                                      "as_of": self.decided.as_of,
                                                                      "action": self.decided.action},
                        "aggregation": None if self.aggregation is None else self.aggregation.to_dict(),
                        "report": None if report is None else str(report)}
        return document("checkin", body)

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
        Foreign or corrupted ledger, ``as_of`` earlier than the last look, or fewer ``days`` than the last look's
        at the same stage (checked before fitting).
    """
    ledger = ledger_for(spec.name, models_dir)
    moment = look_time(as_of)
    ledger.check_can_append(moment)
    _require_days_forward(ledger, stage, days)
    incremental = None
    # a panel's per-user totals and a cluster's totals change every day (a unit spans days): full scan
    if spec.day_column and not spec.activity_column and not spec.grouped_units:
        incremental = aggregate_incrementally(spec, source, aggregates_for(spec.name, models_dir),
                                              aggregated=aggregated, engine=engine, rescan=rescan)
        stats = incremental.stats
    else:
        stats = aggregate(spec, source, aggregated=aggregated, engine=engine)
    analysis = analyze_stats(spec, stats, sampler=sampler, cache=cache,
                             panels=panel_statistics(spec, source, engine),
                             received=received_statistics(spec, source, aggregated=aggregated, engine=engine))
    analysis = with_targeting(analysis, source, aggregated=aggregated, engine=engine)
    return record_look(analysis, stage=stage, days=days, as_of=moment, models_dir=models_dir, ledger=ledger,
                       aggregation=incremental)


def _require_days_forward(ledger: Ledger, stage: float | None, days: float | None) -> None:
    """Days at one stage only grow: a look at the last look's stage with fewer days is a typo (``--days 1`` after
    ``--days 3``) that would let the rule's minimum exposure be met twice. Checked before any data is read."""
    looks = ledger.looks()
    if not looks or stage is None or days is None:
        return
    last = looks[-1].payload
    if last.get("stage") == stage and last.get("days") is not None and days < last["days"]:
        raise LedgerError(f"{ledger.path}: --days {days:g} at stage {stage:g}% is fewer than look {looks[-1].look}'s "
                          f"{last['days']:g} days at the same stage; days at a stage only grow (a new stage starts "
                          "again from 0)")


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
    tidy_looks(ledger)
    decided = next((r for r in ledger.looks() if r.action in TERMINAL_ACTIONS), None)
    recommendation = recommend(analysis, stage, days or 0.0) if stage is not None else None
    parent = ledger.path.parent / LOOKS_FOLDER
    final = parent / f"{moment.replace(':', '')}-{uuid.uuid4().hex[:8]}"
    tmp = _write_posteriors(analysis, final, recommendation)
    payload = look_payload(analysis, recommendation, stage, days)
    if aggregation is not None:
        payload["aggregation"] = aggregation.to_dict()
    try:
        record = ledger.append(
            as_of=moment, recorded_at=datetime.now(timezone.utc).strftime(TIME_FORMAT),
            fingerprint=analysis.fingerprint, action=recommendation.action if recommendation else None,
            posterior_dir=str(final.relative_to(ledger.path.parent)),
            payload=payload)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)     # no ledger row points at it
        raise
    os.replace(tmp, final)
    return CheckIn(analysis, recommendation, record, aggregation, decided)


def tidy_looks(ledger: Ledger) -> None:
    """Finish what killed check-ins left: move a recorded look's folder into place, delete unrecorded ones.

    A check-in killed after its ledger row was committed but before its folder was renamed left the
    complete folder under its temporary name; one killed earlier left a folder no look points at.
    """
    parent = ledger.path.parent / LOOKS_FOLDER
    if not parent.is_dir():
        return
    recorded = {ledger.path.parent / d for d in ledger.posterior_dirs()}
    for entry in parent.iterdir():
        final = temporary_target(entry)
        if final in recorded and not final.exists() and is_stale_temporary(entry):
            os.replace(entry, final)
    remove_stale_temporaries(parent)


def _write_posteriors(analysis: Analysis, final: Path, recommendation: Recommendation | None) -> Path:
    """Each metric's posterior as netCDF, and the analysis' ``summary.json`` (the same document ``analyze``
    writes, :meth:`~bayes_ab.analysis.Analysis.document`), in a complete, flushed temporary folder beside
    ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    tmp.mkdir()
    try:
        for name, fitted in analysis.fits.items():
            fitted.to_netcdf(tmp / f"{name}.nc")
        (tmp / SUMMARY_FILE).write_text(dumps(analysis.document(recommendation)))
        with os.scandir(tmp) as entries:          # flush the files before the folder becomes visible
            for entry in entries:
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp
