"""Priors learned from past experiments: the distribution of true effects, fitted to past estimates."""

from __future__ import annotations

from pathlib import Path

from bayes_ab.learned_prior import load_prior
from bayes_ab.priors.learn import MIN_EXPERIMENTS, EffectDistribution, LearnedEffects, learn_effects
from bayes_ab.priors.past import PastResult, PastResults, from_models, read_table
from bayes_ab.priors.store import write_prior


def learn_prior(out: str | Path, models_dir: str | Path | None = None, tables: list[str] | tuple[str, ...] = (),
                metric: str | None = None, family: str | None = None,
                role: str | None = None) -> tuple[LearnedEffects, PastResults, Path]:
    """Learn the distribution of true relative effects from past results and write it to ``out``.

    Parameters
    ----------
    out
        The YAML prior file to write.
    models_dir
        Learn from the finished experiments stored there (:func:`from_models`).
    tables
        Tables of past results (:func:`read_table`), e.g. an organisation's history exported elsewhere.
    metric, family, role
        Which results to use: one metric by name, or the metrics of one family and/or role.

    Raises
    ------
    DataError
        Fewer than :data:`MIN_EXPERIMENTS` results after the selection, or unreadable sources.
    """
    from bayes_ab.errors import DataError

    results, skipped, sources = [], [], []
    if models_dir is not None:
        found = from_models(models_dir)
        results += found.results
        skipped += found.skipped
        sources.append(str(models_dir))
    for table in tables:
        results += read_table(table).results
        sources.append(str(table))
    past = PastResults(tuple(results), tuple(skipped)).select(metric, family, role)
    wanted = ", ".join(f"{k} {v!r}" for k, v in (("metric", metric), ("family", family), ("role", role)) if v)
    if len(past.results) < MIN_EXPERIMENTS:
        raise DataError(f"{len(past.results)} past result(s) in {', '.join(sources)}"
                        f"{' for ' + wanted if wanted else ''}: at least {MIN_EXPERIMENTS} are needed"
                        + (f" ({len(skipped)} experiment(s) skipped: {skipped[0]}{'; ...' if len(skipped) > 1 else ''})"
                           if skipped else ""))
    try:
        learned = learn_effects([r.estimate for r in past.results], [r.standard_error for r in past.results])
    except ValueError as exc:
        raise DataError(f"{', '.join(sources)}: {exc}") from None
    path = write_prior(out, learned, past, sources, {"metric": metric, "family": family, "role": role})
    return learned, past, path


__all__ = ["EffectDistribution", "LearnedEffects", "PastResult", "PastResults", "from_models",
           "learn_effects", "learn_prior", "load_prior", "read_table", "write_prior"]
