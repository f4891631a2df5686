"""An experiment's latest stored result: its last check-in look when it has a ledger, else its last ``analyze``.

Why one reader: the portfolio page and the learned priors both ask "where does this experiment stand and
what did it estimate", and the two places an answer can be stored (the ledger's last look, or
``summary.json`` with ``effects.csv``) hold it in different shapes. This module gives both one shape.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_ab.decision import TERMINAL_ACTIONS
from bayes_ab.errors import DataError


@dataclass(frozen=True)
class LatestResult:
    """What an experiment folder holds last.

    ``when`` describes it ("look 3, <as of>, stage 50%" or "analysed <time>"); ``recommendation`` is the stored
    decision (empty when none was asked for); ``metrics`` maps each metric to its ``family``, ``role``,
    ``interval`` (``None`` when stored by an older bayes-ab) and effect ``rows`` (dicts, as ``ArmEffect``).
    """

    experiment: str
    checked_in: bool
    when: str
    recommendation: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=dict)
    """The spec's description, hypothesis and owner as stored (empty when stored by an older bayes-ab)."""

    @property
    def action(self) -> str | None:
        return self.recommendation.get("action")

    @property
    def finished(self) -> bool:
        """The last decision ended the experiment (ship, roll back, stop)."""
        return self.action in TERMINAL_ACTIONS

    def primary(self) -> str | None:
        """The first primary metric (the first metric when none is marked primary)."""
        return next((n for n, m in self.metrics.items() if m.get("role") == "primary"), next(iter(self.metrics), None))


def nothing_stored(folder: Path) -> str:
    """Why :func:`latest_result` found nothing in ``folder``."""
    return "no looks recorded" if (folder / "ledger.sqlite").exists() else "no summary.json (never analysed)"


def latest_result(folder: str | Path) -> LatestResult | None:
    """The latest stored result of the experiment in ``folder`` (``models/<experiment>``); ``None`` when nothing
    is stored yet (see :func:`nothing_stored`).

    Raises
    ------
    LedgerError
        The ledger is foreign, corrupted or altered.
    DataError
        ``summary.json`` or ``effects.csv`` cannot be read.
    SpecError
        The files of an ``analyze`` are not those its manifest lists (a truncated or edited file, a mixed run).
    """
    folder = Path(folder)
    if (folder / "ledger.sqlite").exists():
        return _from_ledger(folder)
    return _from_analysis(folder)


def parse_time(text: str) -> dt.datetime:
    """A look's ISO 8601 time (``2026-03-01T09:00:00Z``, as the ledger stores it) as a datetime; ``ValueError`` when
    it is not one."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def readable_time(moment: str | dt.datetime) -> str:
    """A time as a reader writes it: ``1 Mar 2026, 09:00 UTC`` (from ISO 8601 text or a datetime); text that is not
    ISO 8601 is returned as it is."""
    if isinstance(moment, str):
        try:
            moment = parse_time(moment)
        except ValueError:
            return moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _from_ledger(folder: Path) -> LatestResult | None:
    from bayes_ab.checkins.history import history

    looks = history(folder.name, folder.parent).looks
    if not looks:
        return None
    last = looks[-1]
    payload = last.payload
    stage = payload.get("stage")
    when = f"look {last.look}, {readable_time(last.as_of)}" + (f", stage {stage:g}%" if stage is not None else "")
    metrics = {name: {"family": m.get("family"), "role": m.get("role"), "interval": m.get("interval"),
                      "rows": m["rows"]} for name, m in payload["metrics"].items()}
    return LatestResult(folder.name, True, when, payload.get("recommendation") or {}, metrics,
                        payload.get("about") or {})


def _from_analysis(folder: Path) -> LatestResult | None:
    import pandas as pd

    from bayes_ab.analysis import read_manifest

    summary_path = folder / "summary.json"
    if not summary_path.exists():
        return None
    read_manifest(folder)         # one complete run, every file as written: a truncated posterior or an edited
    try:                          # summary is named, never read as results
        summary = json.loads(summary_path.read_text())
        effects = pd.read_csv(folder / "effects.csv")
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable results ({str(exc).splitlines()[0]})") from None
    when = "analysed " + readable_time(dt.datetime.fromtimestamp(summary_path.stat().st_mtime, dt.timezone.utc))
    about = summary.get("metrics", {})
    metrics = {}
    for name, rows in effects.groupby(effects["metric"].astype(str), sort=False):
        metrics[name] = {"family": about.get(name, {}).get("family"), "role": about.get(name, {}).get("role"),
                         "interval": summary.get("interval"), "rows": rows.to_dict("records")}
    return LatestResult(folder.name, False, when, summary.get("recommendation") or {}, metrics,
                        summary.get("about") or {})
