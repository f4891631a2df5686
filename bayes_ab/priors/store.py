"""A learned prior as a small versioned YAML file, with where it came from.

The file holds the chosen distribution of true relative effects, both fitted forms with their scores (so a
reader can see how close the choice was), and its provenance: when it was learned, from which sources and
selection, every experiment used with its estimate and standard error, and what was skipped and why. It is
read back with YAML's safe loader and checked field by field (errors name the file and the field).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bayes_ab.errors import SpecError
from bayes_ab.files import write_atomically
from bayes_ab.metric import LearnedEffectPrior
from bayes_ab.priors.learn import FORMS, EffectDistribution, LearnedEffects
from bayes_ab.priors.past import PastResults

FORMAT_VERSION = 1


def write_prior(path: str | Path, learned: LearnedEffects, past: PastResults, sources: list[str],
                selection: dict[str, str | None]) -> Path:
    """Write ``learned`` (fitted to ``past``) to ``path`` as YAML; returns the path."""
    import yaml

    chosen = learned.chosen
    document = {
        "bayes_ab_prior": FORMAT_VERSION,
        "effect": "relative",
        "distribution": _distribution(chosen),
        "alternatives": {d.form: {**_distribution(d), "log_likelihood": round(d.log_likelihood, 4),
                                  "aic": round(d.aic, 4), "loo": round(d.loo, 4)}
                         for d in (learned.normal, learned.student_t)},
        "chosen_by": "leave-one-out log predictive density (higher is better); AIC shown beside it",
        "provenance": {
            "learned_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sources": list(sources),
            "selection": {k: v for k, v in selection.items() if v is not None},
            "experiments": learned.experiments,
            "results": [{k: v for k, v in asdict(r).items() if v is not None} for r in past.results],
            "skipped": list(past.skipped),
        },
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(target, lambda tmp: Path(tmp).write_text(yaml.safe_dump(document, sort_keys=False)))


def load_prior(path: str | Path) -> LearnedEffectPrior:
    """Read a learned prior written by :func:`write_prior` (what a spec's ``prior: {learned: FILE}`` holds).

    Raises
    ------
    SpecError
        The file is missing, not YAML, of another format version, or a field is absent or invalid.
    """
    return parse_prior(read_prior_document(path), path)


def read_prior_document(path: str | Path) -> Any:
    """The prior file's YAML as written (safe loader), unchecked: :func:`parse_prior` checks it."""
    import yaml

    source = Path(path)
    try:
        return yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise SpecError(f"{source}: no such prior file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{source}: not a readable YAML prior file ({str(exc).splitlines()[0]})") from None


def parse_prior(document: Any, path: str | Path) -> LearnedEffectPrior:
    """Check a prior file's ``document`` field by field (errors name ``path`` and the field)."""
    source = Path(path)
    if not isinstance(document, dict) or document.get("bayes_ab_prior") != FORMAT_VERSION:
        raise SpecError(f"{source}: bayes_ab_prior: expected format version {FORMAT_VERSION} "
                        "(a file written by `bayes-ab priors learn`)")
    if document.get("effect") != "relative":
        raise SpecError(f"{source}: effect: must be 'relative', got {document.get('effect')!r}")
    raw = document.get("distribution")
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: distribution: missing or not a mapping")
    form = raw.get("form")
    if form not in FORMS:
        raise SpecError(f"{source}: distribution.form: must be one of {', '.join(FORMS)}, got {form!r}")
    location = _finite(raw, "location", source)
    scale = _finite(raw, "scale", source)
    if scale <= 0:
        raise SpecError(f"{source}: distribution.scale: must be > 0, got {scale!r}")
    df = None
    if form == "student_t":
        df = _finite(raw, "df", source)
        if df <= 0:
            raise SpecError(f"{source}: distribution.df: must be > 0, got {df!r}")
    provenance = document.get("provenance") or {}
    experiments = provenance.get("experiments")
    if not isinstance(experiments, int) or isinstance(experiments, bool) or experiments < 1:
        raise SpecError(f"{source}: provenance.experiments: must be a positive integer, got {experiments!r}")
    return LearnedEffectPrior(form, location, scale, df, experiments, str(source),
                              str(provenance.get("learned_at", "unknown date")))


def _distribution(d: EffectDistribution) -> dict[str, Any]:
    out = {"form": d.form, "location": float(d.location), "scale": float(d.scale)}
    if d.df is not None:
        out["df"] = float(d.df)
    return out


def _finite(raw: dict, key: str, source: Path) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{source}: distribution.{key}: must be a finite number, got {value!r}")
    return float(value)
