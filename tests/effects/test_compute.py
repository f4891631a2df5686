"""Effects from posterior draws against closed forms and numerical integration."""

import numpy as np
import pytest
from scipy import stats as st

from bayes_ab.families.conversion import conversion_stats
from bayes_ab.effects import compute_effects, sentence
from bayes_ab.posterior import fit
from bayes_ab.models.conjugate import beta_posterior, prob_beta_greater
from bayes_ab.spec import Metric, SamplerSettings

DRAWS = SamplerSettings(draws=50_000, chains=2, seed=8, backend="conjugate")
N = DRAWS.draws * DRAWS.chains


def metric(direction="increase", rope=0.05):
    return Metric(name="converted", family="conversion", column="converted", direction=direction, rope=rope)


def two_arms(successes=((90,), (110,)), users=((1000,), (1000,)), segments=("all users",)):
    return conversion_stats(["control", "treatment"], list(segments), np.array(users), np.array(successes),
                            "converted")


def grid(a, b, points=200_001):
    lo, hi = st.beta(a, b).ppf(1e-9), st.beta(a, b).isf(1e-9)
    return np.linspace(lo, hi, points)


def test_p_beat_matches_closed_form_and_flips_with_direction():
    stats = two_arms()
    exact = prob_beta_greater(*beta_posterior(110, 1000), *beta_posterior(90, 1000))
    tol = 4 * np.sqrt(exact * (1 - exact) / N)
    up = compute_effects(fit(stats, metric("increase"), DRAWS)).overall("treatment")
    down = compute_effects(fit(stats, metric("decrease"), DRAWS)).overall("treatment")
    assert abs(up.p_beat_control - exact) < tol
    assert abs(down.p_beat_control - (1 - exact)) < tol
    assert up.p_best == pytest.approx(up.p_beat_control)


def expected_positive_part(x_dist, y_dist, points=200_001):
    """E[max(0, X - Y)] = integral of f_Y(y) * G(y) dy with G(y) = integral from y of S_X(x) dx."""
    x = np.linspace(0.0, 0.3, points)
    survival = x_dist.sf(x)
    step = x[1] - x[0]
    tail = np.concatenate([np.cumsum(((survival[1:] + survival[:-1]) / 2 * step)[::-1])[::-1], [0.0]])
    return np.trapezoid(y_dist.pdf(x) * tail, x)


def test_expected_losses_match_numerical_integration():
    stats = two_arms()
    (a_c, b_c), (a_t, b_t) = beta_posterior(90, 1000), beta_posterior(110, 1000)
    loss_ship = expected_positive_part(st.beta(a_c, b_c), st.beta(a_t, b_t))
    loss_keep = expected_positive_part(st.beta(a_t, b_t), st.beta(a_c, b_c))
    effect = compute_effects(fit(stats, metric(), DRAWS)).overall("treatment")
    sd_c, sd_t = st.beta(a_c, b_c).std(), st.beta(a_t, b_t).std()
    tol = 4 * np.hypot(sd_c, sd_t) / np.sqrt(N)
    assert abs(effect.loss_ship_abs - loss_ship) < tol
    assert abs(effect.loss_keep_abs - loss_keep) < tol
    # E[max(0, d)] - E[max(0, -d)] = E[d]
    assert effect.loss_keep_abs - effect.loss_ship_abs == pytest.approx(a_t / (a_t + b_t) - a_c / (a_c + b_c),
                                                                        abs=tol)


def test_p_best_with_three_arms_matches_integration():
    users = np.full((3, 1), 2000)
    successes = np.array([[200], [215], [230]])
    stats = conversion_stats(["a", "b", "c"], ["all users"], users, successes, "converted")
    effects = compute_effects(fit(stats, metric(), DRAWS))
    dists = [st.beta(*beta_posterior(s, 2000)) for s in successes[:, 0]]
    x = np.linspace(0.05, 0.2, 200_001)
    for k, arm in enumerate(["a", "b", "c"]):
        others = np.prod([d.cdf(x) for j, d in enumerate(dists) if j != k], axis=0)
        exact = np.trapezoid(dists[k].pdf(x) * others, x)
        got = effects.overall(arm).p_best
        assert abs(got - exact) < 4 * np.sqrt(exact * (1 - exact) / N) + 1e-4
    assert sum(effects.overall(a).p_best for a in "abc") == pytest.approx(1.0)


def test_intervals_and_rope_match_simulated_relative_lift():
    stats = two_arms()
    rng = np.random.default_rng(99)
    (a_c, b_c), (a_t, b_t) = beta_posterior(90, 1000), beta_posterior(110, 1000)
    rel = rng.beta(a_t, b_t, 400_000) / rng.beta(a_c, b_c, 400_000) - 1
    effect = compute_effects(fit(stats, metric(rope=0.05), DRAWS), interval=0.9).overall("treatment")
    inside = np.mean((rel > effect.rel_low) & (rel < effect.rel_high))
    assert abs(inside - 0.9) < 0.01
    p_rope = np.mean(np.abs(rel) < 0.05)
    assert abs(effect.p_rope - p_rope) < 4 * np.sqrt(p_rope * (1 - p_rope) / N) + 4 * np.sqrt(p_rope * (1 - p_rope) / rel.size)
    assert effect.rel_lift == pytest.approx(np.median(rel), abs=0.01)


def test_overall_weights_segments_by_traffic():
    # segment s1 has 3x the users of s2; the overall posterior mean is their traffic-weighted mean
    stats = two_arms(successes=((300, 50), (330, 60)), users=((3000, 1000), (3000, 1000)), segments=("s1", "s2"))
    effects = compute_effects(fit(stats, metric(), DRAWS))
    a = beta_posterior(stats["successes"].values, stats["n"].values)
    means = a[0] / (a[0] + a[1])
    for k, arm in enumerate(["control", "treatment"]):
        expected = 0.75 * means[k, 0] + 0.25 * means[k, 1]
        assert effects.overall(arm).mean == pytest.approx(expected, abs=1e-3)
        assert effects.overall(arm).observed_mean == pytest.approx((stats["successes"][k].sum() / 4000).item())
    assert effects.overall("treatment").users == 4000


def test_sentence_reads_like_the_product_review_wants():
    effects = compute_effects(fit(two_arms(), metric(), DRAWS))
    text = sentence(effects, "treatment")
    row = effects.overall("treatment")
    assert text.startswith(f"There is a {100 * row.p_beat_control:.0f}% probability that treatment increases converted")
    assert "90% interval" in text and "expected loss if shipped" in text and "percentage points" in text
    down = sentence(compute_effects(fit(two_arms(), metric("decrease"), DRAWS)), "treatment")
    assert "treatment decreases converted" in down


def test_effects_table_and_html():
    effects = compute_effects(fit(two_arms(segments=("<script>alert(1)</script>",)), metric(), DRAWS))
    frame = effects.to_pandas()
    assert list(frame["segment"]) == ["overall", "overall", "<script>alert(1)</script>",
                                      "<script>alert(1)</script>"]
    html = effects._repr_html_()
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_mc_standard_errors_match_the_spread_of_repeated_estimates_on_autocorrelated_chains():
    """AR(1) chains (autocorrelation 0.8, as a sampler's draws are) of a lift whose P(> 0) is 0.9: the
    reported MC standard error of P(beat) must equal the standard deviation of the estimate across
    independent repetitions (known truth by simulation), not the naive sqrt(p(1-p)/N), which is 3x smaller."""
    from bayes_ab.effects.compute import lift_probabilities

    rng = np.random.default_rng(8)
    chains, draws, phi = 4, 1000, 0.8
    estimates, reported = [], []
    for _ in range(300):
        z = np.empty((chains, draws))
        z[:, 0] = rng.normal(size=chains)
        for t in range(1, draws):
            z[:, t] = phi * z[:, t - 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=chains)
        diff = (1.2816 + z).ravel()                              # P(diff > 0) = 0.9
        out = lift_probabilities(diff, diff, 1.0, 0.01, chains, margin=0.02)
        estimates.append(out["p_beat_control"])
        reported.append(out["p_beat_control_mcse"])
    spread = np.std(estimates, ddof=1)
    # the spread's own sampling error at 300 repetitions is 1 / sqrt(2 x 299) = 4.1% of it; three of those
    # (the average of 300 reported errors is far steadier; measured ratio 0.997)
    assert abs(np.mean(reported) / spread - 1) < 3 / np.sqrt(2 * 299), (np.mean(reported), spread)
    assert np.mean(reported) > 2 * np.sqrt(0.9 * 0.1 / (chains * draws))
    assert abs(np.mean(estimates) - 0.9) < 3 * spread / np.sqrt(300)


def test_a_failed_fit_carries_the_unpooled_closed_form_beside_it():
    """Too few draws fail the diagnostics: the effects then hold the family's unpooled closed form (the Beta
    posteriors of each cell) and the sentence gives it, labelled, after the UNRELIABLE warning. A fit that
    passes carries none."""
    stats = two_arms(successes=((90, 40), (110, 55)), users=((1000, 500), (1000, 500)), segments=("a", "b"))
    failed = compute_effects(fit(stats, metric(), SamplerSettings(draws=30, tune=30, chains=2, seed=1)))
    assert not failed.diagnostics.passed and failed.unpooled is not None
    assert failed.unpooled.backend == "conjugate"
    a, b = beta_posterior(90 + 40, 1500), beta_posterior(110 + 55, 1500)
    exact = prob_beta_greater(*b, *a)      # one segment's worth of data per arm, weighted alike: the pooled cells
    flat = failed.unpooled.overall("treatment")
    assert flat.p_beat_control == pytest.approx(exact, abs=0.02)
    text = sentence(failed, "treatment")
    assert text.startswith("UNRELIABLE") and "Unpooled closed form instead" in text
    assert f"{flat.rel_lift:+.1%}" in text
    assert compute_effects(fit(stats, metric(), DRAWS)).unpooled is None


def test_a_prior_that_moves_the_lift_is_shown_beside_what_the_data_alone_say():
    """A sceptical prior (effect sd 0.05 on the logit scale, exact one-segment posterior) on a +40% lift from 800
    users per arm pulls the answer far from the data's; the data-only lift is the flat-prior closed form's, the
    distance is in posterior sds, and the sentence says both. The default prior on 20,000 users moves nothing."""
    from dataclasses import replace as swap

    from bayes_ab.metric import EffectPrior

    stats = two_arms(successes=((80,), (112,)), users=((800,), (800,)))
    sceptical = swap(metric(), prior=EffectPrior(effect_sd=0.05))
    effects = compute_effects(fit(stats, sceptical, SamplerSettings(draws=20_000, chains=2, seed=3)))
    alone = effects.data_only[0]
    flat = compute_effects(fit(stats, sceptical, DRAWS)).overall("treatment")
    assert alone.rel_lift == pytest.approx(flat.rel_lift, abs=0.01)            # the closed form's lift
    row = effects.overall("treatment")
    z = st.norm.ppf(0.95)
    assert alone.apart == pytest.approx((row.rel_lift - alone.rel_lift) / ((row.rel_high - row.rel_low) / (2 * z)))
    assert alone.shown and alone.apart < -1
    text = sentence(effects, "treatment")
    assert f"the data alone say {100 * alone.rel_lift:+.1f}%" in text and "the difference is the effect prior's" in text
    plain = compute_effects(fit(two_arms(successes=((2000,), (2200,)), users=((20_000,), (20_000,))), metric(),
                                SamplerSettings(draws=20_000, chains=2, seed=3)))
    assert not plain.data_only[0].shown and "the data alone" not in sentence(plain, "treatment")
    # a fit that is the closed form already has nothing to set beside itself
    assert compute_effects(fit(stats, sceptical, DRAWS)).data_only == ()


def test_one_segment_shows_each_arm_once_and_several_show_every_segment():
    """With one segment its rows repeat the overall ones: tables show each arm once; the rows stay stored."""
    from bayes_ab.analysis import Analysis
    from bayes_ab.console import render_text
    from conftest import make_spec

    fitted = fit(two_arms(), metric(), DRAWS)
    one = compute_effects(fitted)
    assert [(r.segment, r.arm) for r in one.shown_rows] == [("overall", "control"), ("overall", "treatment")]
    assert len(one.rows) == 4
    text = render_text(Analysis(make_spec(), {"converted": two_arms()}, {"converted": fitted}, {"converted": one}))
    assert "all users" not in text and text.count("overall") == 2
    two = compute_effects(fit(two_arms(((90, 40), (110, 50)), ((1000, 500), (1000, 500)), ("a", "b")), metric(),
                              DRAWS))
    assert two.shown_rows == two.rows and len(two.rows) == 6
