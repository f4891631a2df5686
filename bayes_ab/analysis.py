"""One analysis: spec + data -> statistics -> fits -> effects, and where its results are written."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.aggregation import aggregate
from bayes_ab.data.engine import Engine, Source
from bayes_ab.effects import MetricEffects, compute_effects, sentence
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.files import one_writer, remove_stale_temporaries, sha256_of, write_atomically
from bayes_ab.posterior import Fit, ModelCache, fit
from bayes_ab.posterior.fit import DEFAULT_CACHE
from bayes_ab.aggregation.panel import panel_metrics, panel_statistics
from bayes_ab.spec import ExperimentSpec, SamplerSettings


@dataclass(frozen=True)
class Analysis:
    """Everything one analysis produced, by metric name."""

    spec: ExperimentSpec
    stats: dict[str, xr.Dataset]
    fits: dict[str, Fit]
    effects: dict[str, MetricEffects]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the sufficient statistics (same data -> same fingerprint), first 16 hex digits."""
        digest = hashlib.sha256()
        for name in sorted(self.stats):
            ds = self.stats[name]
            digest.update(name.encode())
            for coord in ("arm", "segment"):
                digest.update("\x1f".join(map(str, ds[coord].values)).encode())
            for var in sorted(ds.data_vars):
                digest.update(var.encode())
                digest.update(np.ascontiguousarray(ds[var].values).tobytes())
        return digest.hexdigest()[:16]

    def sentences(self) -> list[str]:
        """The plain-language sentence of every metric and treatment arm."""
        return [sentence(e, arm) for e in self.effects.values() for arm in e.treatments]

    def to_pandas(self) -> pd.DataFrame:
        """All metrics' effects in one table."""
        return pd.concat([e.to_pandas() for e in self.effects.values()], ignore_index=True)

    def _repr_html_(self) -> str:
        sentences = "".join(f"<p>{html.escape(s)}</p>" for s in self.sentences())
        return sentences + self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}")

    def save(self, models_dir: str | Path = "models", recommendation=None) -> list[Path]:
        """Write each metric's posterior as ArviZ netCDF plus the effects table and a summary, as one unit.

        Files go to ``models_dir/<experiment>/``: ``<metric>.nc``, ``effects.csv``, ``summary.json``, and last
        ``manifest.json``, naming every file of this run with its SHA-256 and the data's fingerprint. The old
        manifest is removed first, so a run killed part way leaves files of two runs *without* a manifest (or
        with one whose checksums no longer match): :func:`read_manifest` tells a complete set from a mixed one.
        Each file is written to a temporary name and renamed, so a crash never leaves half a file, and a
        killed run's temporaries are removed by the next. One process writes a folder at a time
        (:func:`~bayes_ab.files.one_writer`): a second ``analyze`` into the same folder waits for the first. A :class:`~bayes_ab.decision.Recommendation`, when
        given, is stored in the summary.
        """
        folder = Path(models_dir) / self.spec.name
        with one_writer(folder):
            return self._save(folder, recommendation)

    def _save(self, folder: Path, recommendation) -> list[Path]:
        remove_stale_temporaries(folder)
        (folder / MANIFEST_FILE).unlink(missing_ok=True)
        written = []
        for name, metric_fit in self.fits.items():
            written.append(write_atomically(folder / f"{name}.nc", lambda tmp, f=metric_fit: f.to_netcdf(tmp)))
        written.append(write_atomically(folder / "effects.csv",
                               lambda tmp: self.to_pandas().to_csv(tmp, index=False)))
        summary = {
            "experiment": self.spec.name,
            "fingerprint": self.fingerprint,
            "interval": self.spec.interval,
            "metrics": {n: {"family": e.metric.family, "role": str(e.metric.role)} for n, e in self.effects.items()},
            "sentences": self.sentences(),
            "warnings": {n: list(e.warnings) for n, e in self.effects.items() if e.warnings},
            "novelty": {n: {a.arm: {"long_run": a.long_run, "long_run_low": a.long_run_low,
                                    "long_run_high": a.long_run_high, "p_novelty": a.p_novelty,
                                    "p_primacy": a.p_primacy, "used": a.used,
                                    "weeks": [[w.week, w.rel_lift, w.rel_low, w.rel_high] for w in a.weeks]}
                            for a in e.novelty.arms}
                        for n, e in self.effects.items() if e.novelty is not None},
            "diagnostics": {n: f.diagnostics.to_dict() for n, f in self.fits.items()},
        }
        if recommendation is not None:
            summary["recommendation"] = recommendation.to_dict()
        written.append(write_atomically(folder / "summary.json",
                                        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2))))
        manifest = {"experiment": self.spec.name, "fingerprint": self.fingerprint,
                    "files": {p.name: sha256_of(p) for p in written}}
        written.append(write_atomically(folder / MANIFEST_FILE,
                                        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2))))
        return written


MANIFEST_FILE = "manifest.json"


def read_manifest(folder: str | Path) -> dict:
    """The manifest of the outputs in ``folder`` (``models/<experiment>``), verified against the files.

    Raises
    ------
    SpecError
        No manifest (a run was interrupted, or none finished), or a listed file is missing or differs from
        the one the run wrote: the folder does not hold one run's outputs.
    """
    path = Path(folder) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: missing; the outputs in {folder} are not one complete run "
                        "(an analysis was interrupted): analyse again") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: unreadable ({exc})") from None
    for name, digest in manifest["files"].items():
        file = Path(folder) / name
        if not file.exists() or sha256_of(file) != digest:
            raise SpecError(f"{file}: not the file of the run in {path.name} (fingerprint "
                            f"{manifest['fingerprint']}): the outputs in {folder} are mixed; analyse again")
    return manifest


def analyze(
    spec: ExperimentSpec,
    source: Source,
    *,
    aggregated: bool = False,
    engine: Engine | str | None = None,
    sampler: SamplerSettings | None = None,
    cache: ModelCache = DEFAULT_CACHE,
) -> Analysis:
    """Aggregate ``source``, fit every metric of ``spec`` and compute its effects.

    Parameters
    ----------
    spec
        Validated experiment spec.
    source
        Per-user rows (or aggregates with ``aggregated=True``, or a daily panel with ``spec.activity_column``):
        Parquet/CSV path, pandas DataFrame, Spark DataFrame or a database table or query
        (:class:`~bayes_ab.data.engine.DatabaseSource`).
    engine
        Where the aggregation runs: ``"duckdb"`` (default), ``"spark"``, ``"sql"`` or an engine object
        (e.g. ``SparkEngine(master=...)``, ``SQLEngine(url)``); a Spark DataFrame selects Spark by itself.
    sampler
        Overrides ``spec.sampler`` (e.g. small settings in tests).
    cache
        Compiled models, re-used across analyses of the same structure.
    """
    stats = aggregate(spec, source, aggregated=aggregated, engine=engine)
    return analyze_stats(spec, stats, sampler=sampler, cache=cache, panels=panel_statistics(spec, source, engine))


def analyze_stats(
    spec: ExperimentSpec,
    stats: dict[str, xr.Dataset],
    *,
    sampler: SamplerSettings | None = None,
    cache: ModelCache = DEFAULT_CACHE,
    panels: dict[str, xr.Dataset] | None = None,
) -> Analysis:
    """Fit every metric of ``spec`` from sufficient statistics already built (one Dataset per metric,
    e.g. from :mod:`bayes_ab.data.stats` constructors or stored aggregates) and compute its effects.

    ``panels``: the statistics by week since exposure of metrics with ``novelty``
    (:func:`~bayes_ab.aggregation.panel.panel_statistics`); such a metric's effects then carry the novelty
    analysis, and read the long-run lift when it is used.
    """
    missing = [m.name for m in spec.metrics if m.name not in stats]
    if missing:
        raise SpecError(f"{spec.source}: no statistics for metric(s) {', '.join(map(repr, missing))}")
    for metric in spec.metrics:
        value = family_for(metric).constant_value(stats[metric.name])
        if value is not None:
            raise DataError(f"metric {metric.name!r} (column {metric.column!r}): every user of every arm has the "
                            f"value {value:g}: there is nothing to compare; check the column or remove the metric")
    settings = sampler or spec.sampler
    fits = {m.name: fit(stats[m.name], m, settings, cache) for m in spec.metrics}
    novelty = {}
    for metric in panel_metrics(spec):
        from bayes_ab.novelty.effects import analyze_novelty, long_run_fit   # scipy.stats: only when asked for

        if metric.name not in (panels or {}):
            raise SpecError(f"{spec.source}: metric {metric.name!r} has novelty but no statistics by week since "
                            "exposure were given")
        whole = fits[metric.name]
        novelty[metric.name], posteriors = analyze_novelty(
            panels[metric.name], metric, spec.interval, whole.sampler.chains * whole.sampler.draws, settings.seed)
        fits[metric.name] = long_run_fit(whole, posteriors, novelty[metric.name])
    effects = {name: compute_effects(f, spec.interval) for name, f in fits.items()}
    for name, found in novelty.items():
        note = effects[name].model_note + f" [{found.note}]"
        if any(a.used for a in found.arms):
            note += " [the lift shown is the long-run lift]"
        missing = [arm for arm in effects[name].treatments if found.arm(arm) is None]
        warnings = effects[name].warnings + tuple(
            f"no complete week since exposure with users of {arm!r} and control yet: the lift by week and the "
            "long-run lift are not estimated, the numbers are the whole test's" for arm in missing)
        effects[name] = replace(effects[name], novelty=found, model_note=note, warnings=warnings)
    return Analysis(spec, {m.name: stats[m.name] for m in spec.metrics}, fits, effects)
