"""Importance resampling of flat-prior draws by the effect prior: enough proposals for the fit's effective size."""

import numpy as np

from bayes_ab.models.diagnostics import MIN_ESS
from bayes_ab.models.hierarchy import PRIOR_EFFECT_SD
from bayes_ab.models.prior_resampling import (MAX_PROPOSALS_PER_DRAW, PROPOSALS_PER_DRAW, effective_size, resampled,
                                            resampled_enough, resampled_information)

PRIOR = {PRIOR_EFFECT_SD: np.array(0.1)}
WIDE = 10.0            # the flat-prior posterior's sd: a hundred times the prior's


def propose(rng):
    def draws(size):
        values = rng.normal(0.3, WIDE, (size, 1))
        return values, values
    return draws


def test_a_prior_much_narrower_than_the_data_gets_enough_proposals():
    """Normal proposals of sd 10 around 0.3 under a Normal(0, 0.1) prior: the posterior is Normal with variance
    1 / (1/10^2 + 1/0.1^2) and mean 0.3 times its share, in closed form. The fit's usual 4 proposals per kept draw
    give an effective size far below the 400 a fit needs; the rounds reach it, and the draws match the closed form
    within their Monte Carlo error."""
    kept = 4000
    proposals, effects = propose(np.random.default_rng(1))(kept * PROPOSALS_PER_DRAW)
    _, found = resampled(proposals, effects, PRIOR, np.random.default_rng(2), kept)
    assert resampled_information(kept, found) < MIN_ESS
    draws, information = resampled_enough(propose(np.random.default_rng(1)), PRIOR, np.random.default_rng(2), kept)
    assert draws.shape == (kept, 1) and MIN_ESS <= information <= kept
    variance = 1 / (1 / WIDE ** 2 + 1 / 0.1 ** 2)
    mean = variance * 0.3 / WIDE ** 2
    sd = np.sqrt(variance)
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(information)
    assert abs(draws.std() / sd - 1) < 4 / np.sqrt(2 * information)


def test_a_fit_with_enough_from_the_first_round_is_unchanged():
    """Where the prior barely weighs the draws, one round is enough: the draws are those of one call of
    :func:`resampled` on the usual number of proposals, from the same generators."""
    def wide_prior_draws(rng):
        def draws(size):
            values = rng.normal(0.0, 0.05, (size, 1))
            return values, values
        return draws

    kept = 1000
    draws, information = resampled_enough(wide_prior_draws(np.random.default_rng(3)), PRIOR,
                                          np.random.default_rng(4), kept)
    proposals, effects = wide_prior_draws(np.random.default_rng(3))(kept * PROPOSALS_PER_DRAW)
    again, found = resampled(proposals, effects, PRIOR, np.random.default_rng(4), kept)
    assert np.array_equal(draws, again) and information == resampled_information(kept, found)


def test_the_rounds_grow_fourfold_and_stop_at_the_cap():
    """A prior no proposal reaches (sd 1e-6 against proposals of sd 10): the rounds ask for 4, 16, 64, 256 and
    1,024 proposals per kept draw, then settle for the effective size they have."""
    asked = []
    rng = np.random.default_rng(5)

    def recording(size):
        asked.append(size)
        values = rng.normal(0.0, WIDE, (size, 1))
        return values, values

    kept = 10
    draws, information = resampled_enough(recording, {PRIOR_EFFECT_SD: np.array(1e-6)}, np.random.default_rng(6),
                                          kept)
    assert asked == [kept * 4 ** k for k in range(1, 6)] and asked[-1] == kept * MAX_PROPOSALS_PER_DRAW
    assert draws.shape == (kept, 1) and information < MIN_ESS


def test_the_effective_size_is_kishs():
    """(sum w)^2 / sum w^2: equal weights count fully, one weight alone counts once, 2:1:1 counts 16/6."""
    assert effective_size(np.ones(4)) == 4.0
    assert effective_size(np.array([1.0, 0.0, 0.0])) == 1.0
    assert abs(effective_size(np.array([2.0, 1.0, 1.0])) - 16 / 6) < 1e-12


def test_the_information_of_two_steps_combines_harmonically():
    """Kept draws resampled from proposals whose weights carry as much information as the kept draws hold: half
    of it (1 / (1/100 + 1/100)); from unlimited proposals, all of it."""
    assert resampled_information(100, 100.0) == 50.0
    assert resampled_information(100, np.inf) == 100.0
    assert resampled_information(300, 600.0) == 200.0
