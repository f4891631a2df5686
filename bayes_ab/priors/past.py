"""Past results a prior is learned from: a table an organisation imports, or the experiments under ``models/``.

Each result is one treatment arm's overall relative effect in one experiment, with its standard error.
From ``models/`` only *finished* experiments count (their last recorded decision is ship, roll back or stop):
a running experiment's estimate is still moving, and an unfinished history would overweight the changes
that are slow to decide. The standard error of a stored result is read off its interval, the
credible interval of the relative lift at the stored ``interval`` probability (equal-tailed, or highest-density
before 0.2 or with ``interval_kind: hdi``), as
``(high - low) / (2 z)``: exact for a normal posterior, and close at the sample sizes of finished tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from bayes_ab.errors import DataError

TABLE_COLUMNS = ("experiment", "metric", "estimate", "standard_error")
"""Columns of an imported history (``arm``, ``family`` and ``role`` are optional)."""


@dataclass(frozen=True)
class PastResult:
    """One arm's relative effect in one past experiment (0.012 is +1.2%)."""

    experiment: str
    metric: str
    arm: str
    estimate: float
    standard_error: float
    family: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class PastResults:
    """The results found, and what was left out and why (one line each)."""

    results: tuple[PastResult, ...]
    skipped: tuple[str, ...] = ()

    def select(self, metric: str | None = None, family: str | None = None, role: str | None = None) -> "PastResults":
        """The results of one metric (by name), or of one family and/or role."""
        kept = tuple(r for r in self.results if (metric is None or r.metric == metric)
                     and (family is None or r.family == family) and (role is None or r.role == role))
        return PastResults(kept, self.skipped)


def read_table(path: str | Path) -> PastResults:
    """Past results from a CSV or Parquet table with :data:`TABLE_COLUMNS`.

    Raises
    ------
    DataError
        A missing column, a value that is not a finite number, a standard error <= 0, or the same
        experiment, metric and arm twice: the message names the file, the row and the value.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = (pd.read_parquet(path) if path.suffix.lower() == ".parquet"
                 # as text: an "n/a" is reported as written, not turned into a NaN first
                 else pd.read_csv(path, dtype=str, keep_default_na=False))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as exc:           # pandas raises many types for unreadable files
        raise DataError(f"{path}: cannot read the table ({str(exc).splitlines()[0]})") from None
    missing = [c for c in TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column {', '.join(map(repr, missing))}; "
                        f"a history table has {', '.join(TABLE_COLUMNS)} (optional: arm, family, role)")
    results, seen = [], {}
    for index, row in enumerate(frame.to_dict("records")):
        line = index + 2 if path.suffix.lower() != ".parquet" else index + 1
        where = f"{path}: {'line' if path.suffix.lower() != '.parquet' else 'row'} {line}"
        estimate = _number(row["estimate"], f"{where}: estimate")
        error = _number(row["standard_error"], f"{where}: standard_error")
        if error <= 0:
            raise DataError(f"{where}: standard_error must be > 0, got {error!r}")
        arm = "treatment" if _blank(row.get("arm")) else str(row["arm"])
        key = (str(row["experiment"]), str(row["metric"]), arm)
        if key in seen:
            raise DataError(f"{where}: experiment {key[0]!r}, metric {key[1]!r}, arm {arm!r} also on "
                            f"line {seen[key]}; give each arm of an experiment one row")
        seen[key] = line
        results.append(PastResult(key[0], key[1], arm, estimate, error,
                                  None if _blank(row.get("family")) else str(row["family"]),
                                  None if _blank(row.get("role")) else str(row["role"])))
    return PastResults(tuple(results))


def from_models(models_dir: str | Path) -> PastResults:
    """The finished experiments under ``models_dir``: from each one's ledger (its last look) when it was
    run with check-ins, else from its last ``analyze`` (``summary.json`` and ``effects.csv``)."""
    from bayes_ab.checkins.latest import latest_result, nothing_stored

    root = Path(models_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of experiments")
    results, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            latest = latest_result(folder)
        except DataError as exc:
            skipped.append(f"{folder.name}: {exc}")
            continue
        found = nothing_stored(folder) if latest is None else _finished_rows(latest)
        if isinstance(found, str):
            skipped.append(f"{folder.name}: {found}")
        else:
            results.extend(found)
    return PastResults(tuple(results), tuple(skipped))


def _finished_rows(latest) -> list[PastResult] | str:
    """Every treatment arm's overall result of a finished experiment, or why it cannot be used."""
    if not latest.finished:
        if latest.checked_in:
            return f"still running ({latest.when}: {latest.action or 'no decision'})"
        return f"no final decision recorded ({latest.action or 'analysed without --stage'})"
    out = []
    for name, metric in latest.metrics.items():
        if metric["interval"] is None:
            return (f"{latest.when} was recorded without its interval (an older bayes-ab): not used" if latest.checked_in
                    else "summary.json has no interval (written by an older bayes-ab): re-run analyze to use it")
        out += _rows(latest.experiment, name, metric["rows"], metric["interval"], metric["family"], metric["role"])
    return out


def _rows(experiment: str, metric: str, rows: list[dict], interval: float, family: str | None,
          role: str | None) -> list[PastResult]:
    z = NormalDist().inv_cdf(0.5 + interval / 2)
    out = []
    for row in rows:
        if not row["is_overall"] or row["is_control"]:
            continue
        low, high, lift = float(row["rel_low"]), float(row["rel_high"]), float(row["rel_lift"])
        if all(math.isfinite(v) for v in (low, high, lift)) and high > low:
            out.append(PastResult(experiment, metric, str(row["arm"]), lift, (high - low) / (2 * z), family, role))
    return out


def _number(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise DataError(f"{where} must be a finite number, got {value!r}")
    return number


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""
