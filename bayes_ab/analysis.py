"""One analysis: spec + data -> statistics -> fits -> effects, and where its results are written."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_ab.aggregation import aggregate
from bayes_ab.data.engine import Engine, Source
from bayes_ab.documents import document, dumps
from bayes_ab.effects import MetricEffects, compute_effects, sentence
from bayes_ab.metric import Role
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.files import one_writer, remove_stale_temporaries, sha256_of, write_atomically
from bayes_ab.posterior import Fit, ModelCache, fit
from bayes_ab.posterior.fit import DEFAULT_CACHE
from bayes_ab.posterior.warmup import compile_ahead
from bayes_ab.aggregation.panel import panel_metrics, panel_statistics
from bayes_ab.intervals import kind_of
from bayes_ab.compliance.effects import analyze_compliance
from bayes_ab.compliance.statistics import complier_metrics, received_statistics
from bayes_ab.spec import ExperimentSpec, SamplerSettings
from bayes_ab.data.stats import exposed_users
from bayes_ab.targeting.experiment import TargetingResult, TooFewUsers, analyze_targeting


@dataclass(frozen=True)
class Analysis:
    """Everything one analysis produced, by metric name."""

    spec: ExperimentSpec
    stats: dict[str, xr.Dataset]
    fits: dict[str, Fit]
    effects: dict[str, MetricEffects]
    targeting: TargetingResult | None = None     # the policy tables of ``spec.targeting`` (per-user rows only)
    targeting_note: str | None = None            # why the spec's targeting was not evaluated (too few users)

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

    def document(self, recommendation=None) -> dict:
        """The analysis as the versioned ``bayes-ab/analysis`` document (:mod:`bayes_ab.documents`): what
        ``summary.json`` holds, in the results folder and in every look's folder, and what ``--json`` prints.

        Per metric its setting, unit, diagnostics, warnings, sentences and every effect row (overall and per
        segment: lifts, intervals, probabilities with their Monte Carlo errors, losses); the unpooled closed
        form's rows when the fit failed; novelty and complier effects where analysed; the recommendation when
        one was made. The top-level ``sentences``, ``warnings``, ``novelty``, ``compliance`` and ``diagnostics``
        repeat what the metrics hold, as the first ``summary.json`` had them."""
        return document("analysis", self.document_body(recommendation))

    def document_body(self, recommendation=None) -> dict:
        """The fields of :meth:`document` (a check-in's document adds the look's)."""
        first = next(iter(self.stats.values()))
        metrics = {}
        for name, e in self.effects.items():
            metric, family = e.metric, family_for(e.metric)
            metrics[name] = {
                "family": metric.family, "role": str(metric.role), "direction": str(metric.direction),
                "unit": family.unit_of(metric), "unit_scale": family.unit_scale, "rope": metric.rope,
                "margin": metric.margin if metric.role == Role.GUARDRAIL else None,
                "backend": e.backend, "model_note": e.model_note, "warnings": list(e.warnings),
                "diagnostics": self.fits[name].diagnostics.to_dict(),
                "sentences": {arm: sentence(e, arm) for arm in e.treatments},
                "effects": [asdict(r) for r in e.rows],
                "data_only": [{**asdict(d), "shown": d.shown} for d in e.data_only],
                "unpooled_effects": None if e.unpooled is None else [asdict(r) for r in e.unpooled.rows],
                "novelty": None if e.novelty is None else _novelty_dict(e),
                "compliance": None if e.compliance is None else e.compliance.to_dict(),
                "adjustment": None if e.adjustment is None else {
                    **e.adjustment.to_dict(), "unadjusted": [asdict(d) for d in e.unadjusted]},
            }
        return {
            "experiment": self.spec.name,
            "about": self.spec.about(),
            "fingerprint": self.fingerprint,
            "interval": self.spec.interval,
            "interval_kind": str(kind_of(self.spec.interval)),
            "users": exposed_users(first),
            "arms": list(self.spec.arm_names),
            "control": self.spec.control.name,
            "metrics": metrics,
            "sentences": self.sentences(),
            "warnings": {n: list(e.warnings) for n, e in self.effects.items() if e.warnings},
            "novelty": {n: m["novelty"] for n, m in metrics.items() if m["novelty"] is not None},
            "compliance": {n: m["compliance"] for n, m in metrics.items() if m["compliance"] is not None},
            "diagnostics": {n: m["diagnostics"] for n, m in metrics.items()},
            "recommendation": None if recommendation is None else recommendation.to_dict(),
            "targeting": None if self.targeting is None else self.targeting.to_dict(),
            "targeting_note": self.targeting_note,
        }

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
        summary = self.document(recommendation)
        written.append(write_atomically(folder / SUMMARY_FILE,
                                        lambda tmp: Path(tmp).write_text(dumps(summary))))
        manifest = {"experiment": self.spec.name, "fingerprint": self.fingerprint,
                    "files": {p.name: sha256_of(p) for p in written}}
        written.append(write_atomically(folder / MANIFEST_FILE,
                                        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2))))
        return written


MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.json"


def _novelty_dict(effects: MetricEffects) -> dict:
    """Each treatment arm's novelty answers, JSON-ready."""
    return {a.arm: {"long_run": a.long_run, "long_run_low": a.long_run_low, "long_run_high": a.long_run_high,
                    "p_novelty": a.p_novelty, "p_primacy": a.p_primacy, "used": a.used,
                    "weeks": [[w.week, w.rel_lift, w.rel_low, w.rel_high] for w in a.weeks]}
            for a in effects.novelty.arms}


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
    result = analyze_stats(spec, stats, sampler=sampler, cache=cache, panels=panel_statistics(spec, source, engine),
                           received=received_statistics(spec, source, aggregated=aggregated, engine=engine))
    return with_targeting(result, source, aggregated=aggregated, engine=engine)


def with_targeting(result: Analysis, source: Source, *, aggregated: bool = False,
                   engine: Engine | str | None = None) -> Analysis:
    """``result`` with the policy tables of its spec's ``targeting`` section, read from the per-user rows that
    ``result`` was aggregated from (and so checked); with too few users to cross-fit (early in a ramp) the note
    that says so instead.

    Raises
    ------
    DataError
        Aggregated rows, a missing feature column or a failed data check.
    """
    spec = result.spec
    if spec.targeting is None:
        return result
    if aggregated:
        raise DataError(f"{spec.source}: targeting needs one row per user (the policies rank users by their "
                        "features); aggregated rows cannot carry it")
    try:
        return replace(result, targeting=analyze_targeting(spec, source, engine=engine, checked=True))
    except TooFewUsers as exc:
        return replace(result, targeting_note=f"targeting not evaluated: {exc}")


def analyze_stats(
    spec: ExperimentSpec,
    stats: dict[str, xr.Dataset],
    *,
    sampler: SamplerSettings | None = None,
    cache: ModelCache = DEFAULT_CACHE,
    panels: dict[str, xr.Dataset] | None = None,
    received: dict[str, xr.Dataset] | None = None,
) -> Analysis:
    """Fit every metric of ``spec`` from sufficient statistics already built (one Dataset per metric,
    e.g. from :mod:`bayes_ab.data.stats` constructors or stored aggregates) and compute its effects.

    ``panels``: the statistics by week since exposure of metrics with ``novelty``
    (:func:`~bayes_ab.aggregation.panel.panel_statistics`); such a metric's effects then carry the novelty
    analysis, and read the long-run lift when it is used.

    ``received``: the statistics by received value of the metrics with a complier effect
    (:func:`~bayes_ab.compliance.statistics.received_statistics`); ``None`` analyses by assignment only (a replay
    of stored looks), a mapping without a complier metric's statistics says so in that metric's warnings.
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
    compile_ahead(stats, spec.metrics, settings, cache)     # with several compile workers (the command line)
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
        effects[name] = replace(effects[name], novelty=found, model_note=note, warnings=warnings,
                                data_only=() if any(a.used for a in found.arms) else effects[name].data_only)
    for metric in complier_metrics(spec) if received is not None else ():
        found = received.get(metric.name)
        if found is None:
            effects[metric.name] = replace(effects[metric.name], warnings=effects[metric.name].warnings + (
                f"no statistics by {spec.received_column!r} were given: the effect on users who received the "
                "treatment is not estimated",))
            continue
        whole = fits[metric.name]
        effects[metric.name] = replace(effects[metric.name], compliance=analyze_compliance(
            found, metric, interval=spec.interval, compliance=spec.compliance, received_column=spec.received_column,
            draws=whole.sampler.chains * whole.sampler.draws, seed=settings.seed))
    return Analysis(spec, {m.name: stats[m.name] for m in spec.metrics}, fits, effects)
