"""A learned prior in a spec: read relative to the spec, refused where it cannot apply, mapped to the link
scale, and honoured by the exact integration, by NUTS (Student-t) and by the simulations' importance weights.
References: direct 2-D integration of the model's joint density with the mapped prior (SciPy)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import yaml
from scipy import integrate, stats

from bayes_ab.effects.compute import compute_effects
from bayes_ab.errors import SpecError
from bayes_ab.families import family_for
from bayes_ab.families.conversion import BASELINE_LOGIT_SD, conversion_stats
from bayes_ab.metric import EffectPrior, LearnedEffectPrior
from bayes_ab.models import ModelCache, fit
from bayes_ab.report.sections import _prior
from bayes_ab.sampling import EXACT, SamplerSettings
from bayes_ab.spec import Metric, load_spec

from conftest import FAST

SPEC = """name: learned
arm_column: arm
arms: [{name: control, control: true}, {name: treatment}]
metrics:
  - name: converted
    family: conversion
    column: converted
    prior: {learned: priors/conversion.yaml}
"""


def _prior_file(path, form="normal", location=0.05, scale=0.01, df=None):
    distribution = {"form": form, "location": location, "scale": scale, **({"df": df} if df else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"bayes_ab_prior": 1, "effect": "relative", "distribution": distribution,
                                    "provenance": {"experiments": 42, "learned_at": "2026-11-30T00:00:00Z"}}))


def test_a_spec_reads_its_learned_prior_relative_to_itself(tmp_path):
    _prior_file(tmp_path / "priors" / "conversion.yaml")
    (tmp_path / "spec.yaml").write_text(SPEC)
    learned = load_spec(tmp_path / "spec.yaml").metric("converted").prior.learned
    assert learned.experiments == 42 and learned.location == 0.05 and learned.df is None
    (tmp_path / "spec.yaml").write_text(SPEC.replace("conversion.yaml", "missing.yaml"))
    with pytest.raises(SpecError, match=r"spec.yaml: metrics\[0\].prior.learned: .*missing.yaml: no such prior file"):
        load_spec(tmp_path / "spec.yaml")
    (tmp_path / "spec.yaml").write_text(SPEC.replace("{learned: priors/conversion.yaml}",
                                                     "{learned: priors/conversion.yaml, effect_sd: 0.3}"))
    with pytest.raises(SpecError, match=r"prior.effect_sd: cannot be given with 'learned'"):
        load_spec(tmp_path / "spec.yaml")
    ratio = SPEC.replace("family: conversion\n    column: converted", "family: ratio\n    numerator: a\n    denominator: b")
    (tmp_path / "spec.yaml").write_text(ratio)
    with pytest.raises(SpecError, match=r"prior.learned: the ratio family cannot use a learned prior yet"):
        load_spec(tmp_path / "spec.yaml")


def _reference_p_beat(yc, nc, yt, nt, location, scale, df=None):
    """P(a > b) by 2-D integration of Normal(b; 0, 2.5) prior(a - b) L(b) L(a)."""
    def log_lik(x, y, n):
        return -y * np.logaddexp(0, -x) - (n - y) * np.logaddexp(0, x)

    prior = (lambda d: stats.norm.logpdf(d, location, scale)) if df is None else \
        (lambda d: stats.t.logpdf(d, df, location, scale))
    b0 = np.log((yc + 0.5) / (nc - yc + 0.5))
    a0 = np.log((yt + 0.5) / (nt - yt + 0.5))
    sb, sa = 1 / np.sqrt((yc + 1) * (nc - yc + 1) / (nc + 2)), 1 / np.sqrt((yt + 1) * (nt - yt + 1) / (nt + 2))
    top = -0.5 * (b0 / BASELINE_LOGIT_SD) ** 2 + prior(a0 - b0) + log_lik(b0, yc, nc) + log_lik(a0, yt, nt)

    def density(a, b):
        return np.exp(-0.5 * (b / BASELINE_LOGIT_SD) ** 2 + prior(a - b) + log_lik(b, yc, nc) + log_lik(a, yt, nt) - top)

    blo, bhi, alo, ahi = b0 - 12 * sb, b0 + 12 * sb, a0 - 12 * sa, a0 + 12 * sa
    options = dict(epsabs=1e-13, epsrel=1e-9)
    total = integrate.dblquad(density, blo, bhi, alo, ahi, **options)[0]
    above = integrate.dblquad(density, blo, bhi, lambda b: min(max(b, alo), ahi), ahi, **options)[0]
    return above / total


def _stats(yc=1000, yt=1060, n=10_000):
    return conversion_stats(["control", "treatment"], ["all users"], np.array([[n], [n]]), np.array([[yc], [yt]]),
                            "converted")


def _metric(form="normal", location=0.05, scale=0.01, df=None):
    learned = LearnedEffectPrior(form, location, scale, df, 42, "priors/conversion.yaml", "2026-11-30")
    return Metric(name="converted", family="conversion", column="converted", prior=EffectPrior(learned=learned))


def test_conversion_maps_relative_effects_by_one_over_one_minus_p():
    stats = _stats()
    assert family_for(_metric()).link_per_relative(stats) == pytest.approx(1 / (1 - 0.1))
    count = Metric(name="trades", family="count", column="trades")
    assert family_for(count).link_per_relative(stats) == 1.0


def test_a_learned_normal_prior_is_integrated_exactly_with_its_location():
    """+6% observed, a confident learned prior at +5% +/- 1%: P(beat) as the 2-D integral has it (and far
    from the default prior's answer)."""
    stats = _stats()
    metric = _metric()
    result = fit(stats, metric, SamplerSettings())
    assert result.backend == EXACT
    k = 1 / (1 - 0.1)
    expected = _reference_p_beat(1000, 10_000, 1060, 10_000, k * 0.05, k * 0.01)
    arm = compute_effects(result).overall("treatment")
    assert abs(arm.p_beat_control - expected) < 4 * arm.p_beat_control_mcse + 1e-4
    default = compute_effects(fit(stats, replace(metric, prior=EffectPrior()), SamplerSettings())).overall("treatment")
    assert arm.p_beat_control > default.p_beat_control + 0.05
    assert "learned from 42 experiments" in compute_effects(result).model_note
    figure, note = _prior(result)
    assert figure.startswith("data:image/png") and "learned from 42 experiments" in note and "Normal(0.0556" in note


def test_a_learned_student_t_prior_is_sampled_and_agrees_with_the_2d_integral():
    """A fat-tailed prior is not log-concave: NUTS samples it (a separate compiled structure). The prior's
    scale here is comparable to the experiment's own error; a prior far narrower than it, with an estimate far
    in its tail, gives two modes NUTS does not mix (the fit then fails its diagnostics and is not acted on)."""
    stats = _stats(yc=1000, yt=1120)
    metric = _metric("student_t", location=0.0, scale=0.03, df=3.0)
    cache = ModelCache()
    result = fit(stats, metric, replace(FAST, draws=1000, tune=1000), cache)
    assert result.backend != EXACT and result.diagnostics.passed and cache.compilations == 1
    expected = _reference_p_beat(1000, 10_000, 1120, 10_000, 0.0, 0.03 / 0.9, 3.0)
    arm = compute_effects(result).overall("treatment")
    assert abs(arm.p_beat_control - expected) < 4 * arm.p_beat_control_mcse + 1e-3
    # the t's tails let a clear +12% through, where a normal of the same scale pulls it further to 0
    normal = compute_effects(fit(stats, _metric("normal", 0.0, 0.03), SamplerSettings())).overall("treatment")
    assert arm.rel_lift > normal.rel_lift + 0.005


def test_simulated_posteriors_are_weighted_by_the_learned_prior():
    from bayes_ab.families.conversion import _Conversions
    from bayes_ab.stopping.rules import with_effect_prior

    metric = _metric(location=0.10, scale=0.005)
    acc = _Conversions(metric, ("control", "treatment"), None)
    rng = np.random.default_rng(0)
    arms = rng.integers(0, 2, 4000)
    acc.add(arms, (rng.random(4000) < 0.1).astype(float))
    draws = acc.posterior(rng, 20_000)
    weighted = with_effect_prior(acc, metric, draws, rng)
    lift = weighted[:, 1] / weighted[:, 0] - 1
    assert abs(np.median(lift) - 0.10) < 0.02
