"""The learned-prior file format: read and check a prior written by ``bayes-ab priors learn``.

A spec's ``prior: {learned: FILE}`` names such a file, so reading one belongs with the vocabulary the spec is
made of, below everything that learns priors (:mod:`bayes_ab.priors` writes them). The file is YAML read with
the safe loader and checked field by field; every error names the file and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from bayes_ab.errors import SpecError
from bayes_ab.metric import LearnedEffectPrior

FORMAT_VERSION = 1
"""The ``bayes_ab_prior`` field of the files this version reads and writes."""

Form = Literal["normal", "student_t"]
FORMS: tuple[Form, ...] = ("normal", "student_t")
"""The distributions of true effects a prior file may hold."""


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


def _finite(raw: dict, key: str, source: Path) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{source}: distribution.{key}: must be a finite number, got {value!r}")
    return float(value)
