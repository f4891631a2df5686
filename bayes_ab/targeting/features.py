"""Feature columns as a design matrix, and the two learners that predict an outcome (or a send) from it.

Numbers stay numbers (a missing one is NaN, which gradient boosting routes by itself and the linear learner
replaces by the mean plus a missing-indicator column); everything else is a category, with ``(missing)`` as a
category of its own. Categories are fixed on the whole frame before any split, so a fold never meets a level
its model has not been told about.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_ab.spec import Learner

MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"
MAX_LEVELS = 200
"""A category keeps its 199 most frequent levels and folds the rest into ``(other)``: gradient boosting bins a
category into at most 255 bins, and a level seen a handful of times carries no uplift signal."""

GBM_SETTINGS = dict(max_iter=150, learning_rate=0.05, min_samples_leaf=100, l2_regularization=1.0,
                    early_stopping=False)
"""Gradient boosting sized for a weak signal: an arm's outcome varies mostly with the user, its difference
between arms little, so shallow slow learning with large leaves ranks users more stably than a close fit."""


def design(frame: pd.DataFrame, features: tuple[str, ...]) -> pd.DataFrame:
    """``frame``'s feature columns: numbers as floats, the rest as categories (missing and rare levels named)."""
    out = {}
    for name in features:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            out[name] = column.astype(float)
        elif pd.api.types.is_numeric_dtype(column):
            out[name] = pd.to_numeric(column, errors="coerce").astype(float)
        else:
            text = column.astype("string").fillna(MISSING_LEVEL)
            counts = text.value_counts()
            if len(counts) > MAX_LEVELS:
                text = text.where(text.isin(counts.index[:MAX_LEVELS - 1]), OTHER_LEVEL)
            out[name] = pd.Categorical(text.astype(str))
    return pd.DataFrame(out, index=frame.index)


def _linear_matrix(X: pd.DataFrame, fit_rows: np.ndarray) -> np.ndarray:
    """Standardised numbers (missing -> the fitted rows' mean, plus an indicator) and one-hot categories."""
    blocks = []
    for name in X.columns:
        column = X[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            blocks.append(pd.get_dummies(column, dtype=float).to_numpy())
            continue
        values = column.to_numpy(float)
        missing = np.isnan(values)
        mean = np.nanmean(values[fit_rows]) if np.any(~missing[fit_rows]) else 0.0
        filled = np.where(missing, mean, values)
        sd = filled[fit_rows].std() or 1.0
        blocks.append(((filled - mean) / sd)[:, None])
        if missing.any():
            blocks.append(missing[:, None].astype(float))
    return np.hstack(blocks) if blocks else np.zeros((len(X), 0))


def fit_predict(learner: Learner, X: pd.DataFrame, y: np.ndarray, fit_rows: np.ndarray, predict_rows: np.ndarray,
                seed: int) -> np.ndarray:
    """An outcome model fitted on ``X[fit_rows]`` and its predictions at ``X[predict_rows]`` (boolean masks).

    scikit-learn is imported here, not with the module: every analysis imports this package, and only one with a
    ``targeting`` section needs it (a check-in's start would otherwise pay a quarter of a second)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    if learner == Learner.GBM:
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=seed, **GBM_SETTINGS)
        model.fit(X[fit_rows], y[fit_rows])
        return model.predict(X[predict_rows])
    matrix = _linear_matrix(X, fit_rows)
    model = Ridge(alpha=1.0).fit(matrix[fit_rows], y[fit_rows])
    return model.predict(matrix[predict_rows])


def fit_predict_probability(learner: Learner, X: pd.DataFrame, sent: np.ndarray, fit_rows: np.ndarray,
                            predict_rows: np.ndarray, seed: int) -> np.ndarray:
    """A model of P(sent | features) fitted on ``X[fit_rows]``, as probabilities at ``X[predict_rows]``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    if learner == Learner.GBM:
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed, **GBM_SETTINGS)
        model.fit(X[fit_rows], sent[fit_rows])
        return model.predict_proba(X[predict_rows])[:, 1]
    matrix = _linear_matrix(X, fit_rows)
    model = LogisticRegression(C=1.0, max_iter=2000).fit(matrix[fit_rows], sent[fit_rows])
    return model.predict_proba(matrix[predict_rows])[:, 1]
