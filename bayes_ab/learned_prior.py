"""The learned-prior file format: read and check a prior written by ``bayes-ab priors learn``.

A spec's ``prior: {learned: FILE}`` names such a file, so reading one belongs with the vocabulary the spec is
made of, below everything that learns priors (:mod:`bayes_ab.priors` writes them). The file is YAML read with
the guarded safe loader (:mod:`bayes_ab.yaml_files`) and checked field by field; every error names the file
and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import special

from bayes_ab.errors import SpecError
from bayes_ab.metric import LearnedEffectPrior
from bayes_ab.yaml_files import read_yaml_file

FORMAT_VERSION = 1
"""The ``bayes_ab_prior`` field of the files this version reads and writes."""

Form = Literal["normal", "student_t"]
FORMS: tuple[Form, ...] = ("normal", "student_t")
"""The distributions of true effects a prior file may hold."""

LOG_LAMBDA = np.linspace(-25.0, 25.0, 801)
"""Grid of ``u = log(lambda)`` for the Student-t's scale-mixture form, ``Normal(mu, scale * sqrt(lambda))`` with
``lambda ~ InverseGamma(df / 2, df / 2)``: an estimate's density or tail is a 1-D integral of normal ones,
accurate whatever the ratio of the scale to the estimate's standard error."""
TRAPEZOID = np.log(np.where((np.arange(LOG_LAMBDA.size) % (LOG_LAMBDA.size - 1)) == 0, 0.5, 1.0))
"""Log trapezoid weights on :data:`LOG_LAMBDA` (times its step)."""

CONFLICT_P = 0.01
"""A new experiment's estimate in the outer 1% of what the learned prior predicts is a prior-data conflict."""


def log_mixing(half: float, u: np.ndarray = LOG_LAMBDA) -> np.ndarray:
    """Log density of ``u = log(lambda)`` (on :data:`LOG_LAMBDA` by default) for ``lambda ~ InverseGamma(half,
    half)`` (``half`` = df / 2): the mixing weights of the Student-t's scale-mixture form."""
    return half * np.log(half) - special.gammaln(half) - half * u - half * np.exp(-u)


MIXTURE_DROP = 40.0
"""The nodes of :func:`scale_mixture` cover ``log lambda`` where its density is within this many nats of its
peak: beyond, a node could matter only to data more than ~9 standard errors from everything the rest allow."""
MIXTURE_REACH = 1000.0
"""How many prior scales out :func:`scale_mixture` reproduces the t's density (a data estimate that far from a
narrow prior still meets the t's own tail, not a normal's)."""
MIXTURE_SPACING = 0.5
"""Largest spacing of :func:`scale_mixture`'s nodes (half the sd of ``log lambda`` where that is smaller, at
large df). The integrand -- the mixing density times a Gaussian marginal likelihood whose variance
grows with ``lambda`` -- is smooth on that scale, and the trapezoid rule on a smooth integrand over the real line
converges geometrically (tested against the t's own density and a direct 2-D integration)."""


@dataclass(frozen=True)
class ScaleMixture:
    """A prior ``Normal(m, s sqrt(lambda))`` mixed over ``lambda``: nodes ``multipliers`` and their log weights
    (summing to 1)."""

    multipliers: np.ndarray
    log_weights: np.ndarray


def scale_mixture(df: float) -> ScaleMixture:
    """The Student-t(``df``) as a finite scale mixture of normals, for integrations that take a normal prior
    given ``lambda`` and sum over it: ``lambda ~ InverseGamma(df / 2, df / 2)`` on a grid of ``u = log lambda``
    inside :data:`LOG_LAMBDA`'s range, trapezoid weights (60 nodes at df 1 to 5, 130 at df 50 and beyond).

    Fewer nodes than :data:`LOG_LAMBDA` (an integration pays for each). The density of ``u`` (:func:`log_mixing`,
    ``a log a - lgamma(a) - a u - a exp(-u)`` with ``a = df / 2``, peak at ``u = 0``) is covered between the points
    :data:`MIXTURE_DROP` nats below its peak, on the right at least as far as the t's density
    :data:`MIXTURE_REACH` scales out comes from (``lambda ~ reach^2 / (df + 1)``), at half the sd of ``u`` (at
    most :data:`MIXTURE_SPACING`).
    """
    a = 0.5 * df

    def drop(u: float) -> float:
        return a * (math.exp(-u) + u - 1.0)

    def point(outside: float, nats: float) -> float:
        """Where the density of ``u`` is ``nats`` below its peak, between 0 and ``outside`` (``outside`` if not)."""
        if drop(outside) <= nats:
            return outside
        inside = 0.0
        for _ in range(100):
            middle = 0.5 * (inside + outside)
            inside, outside = (inside, middle) if drop(middle) > nats else (middle, outside)
        return outside

    top = float(LOG_LAMBDA[-1])
    low = point(float(LOG_LAMBDA[0]), MIXTURE_DROP)
    # a far tail only while its density is a number at all (exp(-700) is near the smallest double)
    high = max(point(top, MIXTURE_DROP), min(math.log(MIXTURE_REACH ** 2 / (df + 1.0)) + 2.0, point(top, 700.0)))
    spacing = min(MIXTURE_SPACING, 0.5 * math.sqrt(float(special.polygamma(1, a))))
    u = np.linspace(low, high, int(math.ceil((high - low) / spacing)) + 1)
    log_weights = log_mixing(a, u)
    return ScaleMixture(np.exp(u), log_weights - np.logaddexp.reduce(log_weights))


def predictive_tail(prior: LearnedEffectPrior, estimate: float, standard_error: float) -> float:
    """How surprising ``estimate`` (relative effect, with its ``standard_error``) is under ``prior``.

    The prior predicts an estimate ``theta + e`` with ``theta`` from the prior and ``e ~ Normal(0, standard_error)``;
    that prediction is symmetric and unimodal about the prior's location, so the share of it at least as far from
    the location as ``estimate`` is the probability of a less likely estimate (Evans & Moshonov's prior-data
    conflict check). Small values say the data sit where the prior expected almost nothing: the posterior is then
    the prior's word against the data's, and the data-only answer must be read beside it.
    """
    distance = abs(estimate - prior.location)
    if prior.df is None:
        return float(2 * special.ndtr(-distance / math.hypot(prior.scale, standard_error)))
    sd = np.sqrt(prior.scale ** 2 * np.exp(LOG_LAMBDA) + standard_error ** 2)
    log_weights = log_mixing(0.5 * prior.df) + TRAPEZOID + np.log(LOG_LAMBDA[1] - LOG_LAMBDA[0])
    return float(min(1.0, np.sum(np.exp(log_weights) * 2 * special.ndtr(-distance / sd))))


def load_prior(path: str | Path) -> LearnedEffectPrior:
    """Read a learned prior written by :func:`write_prior` (what a spec's ``prior: {learned: FILE}`` holds).

    Raises
    ------
    SpecError
        The file is missing, not YAML, of another format version, or a field is absent or invalid.
    """
    return parse_prior(read_prior_document(path), path)


def read_prior_document(path: str | Path) -> Any:
    """The prior file's YAML as written, unchecked (:func:`parse_prior` checks it), read with the guards of
    :func:`~bayes_ab.yaml_files.read_yaml_file`: a regular file of at most 1 MB, UTF-8, no aliases."""
    return read_yaml_file(path, "prior file")


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
