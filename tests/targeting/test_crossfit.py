"""Cross-fitting never lets a user's own outcome into its predictions; the design matrix keeps every level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_ab.spec import Learner
from bayes_ab.targeting.crossfit import assign_folds, cross_fit, cross_fit_propensity, training_folds
from bayes_ab.targeting.features import MAX_LEVELS, MISSING_LEVEL, OTHER_LEVEL, design


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", None], n)})
    treated = rng.random(n) < 0.5
    x = frame["x"].to_numpy()
    y = np.where(treated, x, -x) + rng.normal(size=n)        # control -x, treated +x: uplift 2x, level 0
    return frame, treated, y


def test_folds_are_balanced_within_each_arm():
    treated = np.r_[np.ones(503, bool), np.zeros(297, bool)]
    fold = assign_folds(treated, 5, seed=0)
    for arm in (True, False):
        counts = np.bincount(fold[treated == arm], minlength=5)
        assert counts.max() - counts.min() <= 1


def test_training_folds_never_learn_from_each_other():
    for folds in range(3, 12):
        for k in range(folds):
            train = training_folds(k, folds)
            assert len(train) == (folds - 1) // 2 and k not in train
            assert all(k not in training_folds(j, folds) for j in train)       # at most one way between two folds


@pytest.mark.parametrize("learner", list(Learner))
def test_a_fold_learns_only_from_its_training_folds(learner):
    frame, treated, y = _frame(2_500, 1)
    X = design(frame, ("x", "c"))
    fold = assign_folds(treated, 5, seed=0)
    first = cross_fit(X, y, treated, fold, learner, seed=0)
    changed = y.copy()
    changed[(fold == 2) & treated] += 100.0          # fold 2's treated outcomes change
    second = cross_fit(X, changed, treated, fold, learner, seed=0)
    for k in range(5):
        moved = not np.allclose(first.uplift[fold == k], second.uplift[fold == k])
        assert moved == (2 in training_folds(k, 5)), k          # folds 0 and 1 learn from fold 2; 2, 3, 4 do not
    # the models learn the truth: the uplift is 2x (the difference of the arms, not their level, which is flat)
    assert np.corrcoef(first.uplift, frame["x"])[0, 1] > 0.7


def test_propensity_model_is_cross_fitted_and_recovers_a_known_propensity():
    rng = np.random.default_rng(3)
    n = 6_000
    frame = pd.DataFrame({"x": rng.normal(size=n)})
    truth = 1 / (1 + np.exp(-(0.3 + 0.8 * frame["x"].to_numpy())))
    sent = rng.random(n) < truth
    p = cross_fit_propensity(design(frame, ("x",)), sent, assign_folds(sent, 5, 0), Learner.LINEAR, seed=0)
    assert np.max(np.abs(p - truth)) < 0.05


def test_design_keeps_missing_and_folds_rare_levels():
    frame = pd.DataFrame({"n": [1, None, 3.5], "b": [True, False, True], "c": ["x", None, "y"]})
    X = design(frame, ("n", "b", "c"))
    assert np.isnan(X["n"][1]) and X["b"].tolist() == [1.0, 0.0, 1.0]
    assert MISSING_LEVEL in X["c"].cat.categories
    many = pd.DataFrame({"c": [f"l{i}" for i in range(MAX_LEVELS + 50)] * 2})
    Xm = design(many, ("c",))
    assert len(Xm["c"].cat.categories) == MAX_LEVELS and OTHER_LEVEL in Xm["c"].cat.categories
