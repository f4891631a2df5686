"""A learned prior as a small versioned YAML file, with where it came from.

The file holds the chosen distribution of true relative effects, both fitted forms with their scores (so a
reader can see how close the choice was), and its provenance: when it was learned, from which sources and
selection, every experiment used with its estimate and standard error, and what was skipped and why. It is
read back by :mod:`bayes_ab.learned_prior` (the spec reads it there, without importing this package).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bayes_ab.files import write_atomically
from bayes_ab.learned_prior import FORMAT_VERSION
from bayes_ab.priors.learn import EffectDistribution, LearnedEffects
from bayes_ab.priors.past import PastResults


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


def _distribution(d: EffectDistribution) -> dict[str, Any]:
    out = {"form": d.form, "location": float(d.location), "scale": float(d.scale)}
    if d.df is not None:
        out["df"] = float(d.df)
    if d.fitted_scale is not None:
        out["fitted_scale"] = float(d.fitted_scale)
        out["scale_note"] = (f"the past results cannot tell the spread of true effects from zero: the scale is the "
                             f"upper end of its 95% profile-likelihood interval, not the maximum-likelihood "
                             f"{d.fitted_scale:.3g}")
    return out
