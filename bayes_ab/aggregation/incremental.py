"""Incremental aggregation: keep per-day partial aggregates, scan only the days not yet stored.

Users are grouped by ``day_column`` (the day of their first exposure), so each day's partial
aggregates are sums over its own users and add up across days. A check-in counts rows per day
(one narrow scan of the day column), aggregates only the days that are new or whose row count
changed (late rows), stores them, and adds the stored days to them. The result equals a full
rescan as long as a stored day's rows do not change without changing their number.

Store layout: ``<folder>/<plan fingerprint>/<day>/`` with ``cells.parquet``, one Parquet file per
metric with a finer key, and ``day.json`` (label, rows, and the SHA-256 of every file). A day folder is
written under a temporary name and renamed, so a crash leaves the day either complete or absent (then it
is rescanned), and the next save removes a killed writer's temporaries. The checksums are verified on
every load: a stored file edited or damaged on disk is refused (``--rescan`` rebuilds the store from the
data) instead of silently entering a look. The fingerprint covers every query, so a changed spec or
changed column types start afresh.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import xarray as xr

from bayes_ab.data.engine import Engine, Source
from bayes_ab.data.engines import resolve_engine
from bayes_ab.aggregation.scan import Partials, ScanPlan
from bayes_ab.display import HtmlRepr
from bayes_ab.errors import DataError
from bayes_ab.files import remove_stale_temporaries, sha256_of, temporary_path
from bayes_ab.spec import ExperimentSpec

DAY_FILE = "day.json"
CELLS_FILE = "cells.parquet"


@dataclass(frozen=True)
class IncrementalAggregation(HtmlRepr):
    """What an incremental aggregation did, with the statistics it produced."""

    stats: dict[str, xr.Dataset]
    engine: str
    scanned_days: tuple[str, ...]       # aggregated from the source now (new, or changed since stored)
    changed_days: tuple[str, ...]       # stored days whose row count differed: re-aggregated
    reused_days: tuple[str, ...]        # taken from the store
    dropped_days: tuple[str, ...]       # stored, but no longer in the source: left out
    rows_scanned: int
    rows_total: int

    def text(self) -> str:
        """One line for the console: what was scanned and what was reused."""
        scanned = _days_text(self.scanned_days)
        line = (f"Aggregation ({self.engine}, incremental): scanned {len(self.scanned_days)} day(s){scanned} "
                f"({self.rows_scanned:,} rows), reused {len(self.reused_days)} stored day(s) "
                f"({self.rows_total - self.rows_scanned:,} rows)")
        if self.changed_days:
            line += f"; re-aggregated {len(self.changed_days)} day(s) whose row count changed{_days_text(self.changed_days)}"
        if self.dropped_days:
            line += f"; {len(self.dropped_days)} stored day(s) no longer in the data were left out{_days_text(self.dropped_days)}"
        return line

    def to_dict(self) -> dict:
        """The JSON-ready record kept with the look (statistics left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "stats"}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _days_text(days: tuple[str, ...]) -> str:
    if not days:
        return ""
    return f" ({days[0]})" if len(days) == 1 else f" ({days[0]} .. {days[-1]})"


class PartialStore:
    """Per-day partial aggregates on disk, under ``folder/<fingerprint>/<day>/``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def load(self, fingerprint: str) -> dict[str, tuple[int, Partials]]:
        """Every stored day of ``fingerprint``: day label -> (rows, partials)."""
        root = self.folder / fingerprint
        stored = {}
        if not root.is_dir():
            return stored
        for day_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                meta = json.loads((day_dir / DAY_FILE).read_text())
                files = [CELLS_FILE, *(f"{file}.parquet" for file in meta["details"].values())]
                modified = next((f for f in files if sha256_of(day_dir / f) != meta["sha256"][f]), None)
                if modified is None:
                    cells = pd.read_parquet(day_dir / CELLS_FILE)
                    details = {name: pd.read_parquet(day_dir / f"{file}.parquet")
                               for name, file in meta["details"].items()}
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{day_dir}: stored partial aggregates are unreadable ({exc}); "
                                f"check in with --rescan to rebuild them from the data") from None
            if modified is not None:
                raise DataError(f"{day_dir / modified}: stored partial aggregates were modified on disk "
                                "(checksum mismatch); check in with --rescan to rebuild them from the data")
            stored[meta["day"]] = (int(meta["rows"]), Partials(cells, details))
        return stored

    def save(self, fingerprint: str, day: str, rows: int, partials: Partials) -> Path:
        """Store one day's partials (replacing an older version of that day) atomically."""
        root = self.folder / fingerprint
        root.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(root)
        final = root / quote(day, safe="")
        tmp = temporary_path(final)
        tmp.mkdir()
        try:
            partials.cells.to_parquet(tmp / CELLS_FILE, index=False)
            files = {}
            for i, (name, table) in enumerate(sorted(partials.details.items())):
                files[name] = f"detail-{i}"
                table.to_parquet(tmp / f"detail-{i}.parquet", index=False)
            checksums = {file: sha256_of(tmp / file) for file in [CELLS_FILE, *(f"{f}.parquet" for f in files.values())]}
            (tmp / DAY_FILE).write_text(json.dumps({"day": day, "rows": rows, "details": files, "sha256": checksums}))
            old = None
            if final.exists():
                old = temporary_path(final.with_name(final.name + ".old"))
                final.rename(old)
            tmp.rename(final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final


def aggregate_incrementally(
    spec: ExperimentSpec,
    source: Source,
    store: PartialStore | str | Path,
    *,
    aggregated: bool = False,
    engine: Engine | str | None = None,
    rescan: bool = False,
) -> IncrementalAggregation:
    """Statistics of every metric of ``spec``, scanning only days not already in ``store``.

    Parameters
    ----------
    spec
        Must name ``day_column``: the day of each unit's first exposure (DATE, integer or text).
    source, aggregated, engine
        As for :func:`~bayes_ab.aggregation.aggregate`.
    store
        A :class:`PartialStore` or its folder (check-ins use ``models/<experiment>/aggregates``).
    rescan
        Aggregate every day again, replacing what is stored.

    Returns
    -------
    IncrementalAggregation
        The statistics (equal to those of a full :func:`~bayes_ab.aggregation.aggregate`) and what was
        scanned and reused.
    """
    store = store if isinstance(store, PartialStore) else PartialStore(store)
    resolved = resolve_engine(engine, source)
    table = resolved.open(source)
    try:
        plan = ScanPlan.for_table(spec, table, aggregated=aggregated, by_day=True)
        fingerprint = plan.fingerprint()
        rows = plan.rows_by_day(table)
        if not rows:
            raise DataError(f"{table.label}: the input has no rows")
        stored = {} if rescan else store.load(fingerprint)
        changed = tuple(d for d in sorted(rows) if d in stored and stored[d][0] != rows[d])
        to_scan = tuple(d for d in sorted(rows) if d not in stored or d in changed)
        reused = tuple(d for d in sorted(rows) if d not in to_scan)
        parts = [stored[d][1] for d in reused]
        if to_scan:
            fresh = plan.scan(table, None if len(to_scan) == len(rows) else to_scan)
            for day in to_scan:
                day_part = fresh.day(day)
                store.save(fingerprint, day, rows[day], day_part)
                parts.append(day_part)
        stats = plan.statistics(Partials.concat(parts), table.label)
    finally:
        table.close()
    return IncrementalAggregation(
        stats=stats, engine=resolved.name, scanned_days=to_scan, changed_days=changed, reused_days=reused,
        dropped_days=tuple(sorted(set(stored) - set(rows))),
        rows_scanned=sum(rows[d] for d in to_scan), rows_total=sum(rows.values()))
