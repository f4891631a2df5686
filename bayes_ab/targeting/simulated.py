"""Experiments and logs with a known effect for every user: what the targeting estimators are checked against.

``policy_experiment`` draws a randomised conversion experiment whose effect depends on the features (some
users gain a lot, some are harmed); ``sending_logs`` turns any covariates (Hillstrom's customers in the tests
and benchmarks) into logs of sends that were *not* randomised -- the chance of a send rises with the same
features that raise the outcome, so a naive comparison of sent and not-sent users is biased -- with the three
tables :func:`~bayes_ab.targeting.logs.labelled_decisions` reads, including feature snapshots written after the
decision that reveal the outcome (which the as-of join must never read).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

CONTROL, TREATMENT = "control", "treatment"


def _effect(x1: np.ndarray, x4: np.ndarray) -> np.ndarray:
    """The true effect on the conversion probability: +4 points per sd of x1 above 0, +3 with x4, -1.5 base."""
    return 0.04 * np.maximum(x1, 0) + 0.03 * x4 - 0.015


def policy_experiment(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A randomised 50/50 conversion experiment of ``n`` users with features ``x1`` (normal), ``x2`` (uniform,
    no effect), ``x3`` (category), ``x4`` (0/1), and each user's true effect."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(size=n)
    x3 = rng.choice(np.array(["north", "south", "west"]), size=n, p=[0.5, 0.3, 0.2])
    x4 = (rng.uniform(size=n) < 0.4).astype(int)
    base = expit(-1.6 + 0.5 * x1 + 0.4 * (x3 == "south") + 0.3 * x2)
    tau = np.clip(base + _effect(x1, x4), 0, 1) - base
    treated = rng.uniform(size=n) < 0.5
    y = (rng.uniform(size=n) < base + treated * tau).astype(int)
    frame = pd.DataFrame({"arm": np.where(treated, TREATMENT, CONTROL), "x1": x1, "x2": x2, "x3": x3, "x4": x4,
                          "converted": y})
    return frame, tau


def segmented_experiment(n: int, seed: int, effects: dict[str, float], shares: dict[str, float],
                         base: float = 0.3) -> pd.DataFrame:
    """A randomised 50/50 conversion experiment whose effect (in probability) differs by segment ``seg``, with a
    feature ``noise`` that carries nothing: what the rule's targeted rollout is simulated on."""
    rng = np.random.default_rng(seed)
    names = list(effects)
    segment = rng.choice(np.array(names), n, p=[shares[s] for s in names])
    treated = rng.random(n) < 0.5
    effect = pd.Series(segment).map(effects).to_numpy(float)
    y = (rng.random(n) < base + treated * effect).astype(int)
    return pd.DataFrame({"arm": np.where(treated, TREATMENT, CONTROL), "seg": segment,
                         "noise": rng.normal(size=n), "converted": y})


@dataclass(frozen=True)
class SendingLogs:
    """The three log tables and the truth: each decision's effect, and its propensity."""

    decisions: pd.DataFrame
    features: pd.DataFrame
    outcomes: pd.DataFrame
    effect: np.ndarray
    propensity: np.ndarray
    score: np.ndarray


def sending_logs(covariates: pd.DataFrame, seed: int, *, randomised: bool = False,
                 window_days: int = 14) -> SendingLogs:
    """Logs of sends to the users of ``covariates`` (Hillstrom's columns: recency, history, womens, newbie).

    The sender sends with probability ``expit(-0.3 + 0.9 z(log history) + 0.8 womens - 0.6 newbie)`` (clipped
    to [0.05, 0.95]), or 0.5 when ``randomised``; it logs that probability. A visit within the window follows
    ``base + sent x effect``, both rising with past spend. ``score`` is the sender's own ranking score (the
    propensity's linear part), a feature of the snapshots."""
    rng = np.random.default_rng(seed)
    n = len(covariates)
    history = np.log1p(covariates["history"].to_numpy(float))
    z = (history - history.mean()) / history.std()
    womens, newbie = covariates["womens"].to_numpy(int), covariates["newbie"].to_numpy(int)
    recency = covariates["recency"].to_numpy(float)
    score = -0.3 + 0.9 * z + 0.8 * womens - 0.6 * newbie
    propensity = np.full(n, 0.5) if randomised else np.clip(expit(score), 0.05, 0.95)
    base = expit(-2.0 + 0.5 * z - 0.05 * (recency - 6) + 0.3 * womens)
    effect = np.clip(base + 0.06 * expit(2 * z) * (1 + womens) - 0.02, 0, 1) - base
    sent = rng.uniform(size=n) < propensity
    visited = rng.uniform(size=n) < base + sent * effect
    users = np.array([f"u{i}" for i in range(n)])
    start = pd.Timestamp("2026-03-01")
    decided = start + pd.to_timedelta(rng.integers(0, 10 * 24, size=n), unit="h")
    decisions = pd.DataFrame({"user": users, "decided_at": decided, "sent": sent.astype(int),
                              "propensity": propensity})
    features = pd.DataFrame({"user": users, "as_of": decided - pd.Timedelta(days=1), "history": covariates["history"],
                             "recency": recency, "womens": womens, "newbie": newbie, "score": score})
    # snapshots written after the decision, whose features give the outcome away: never to be read
    leaky = features.assign(as_of=decided + pd.Timedelta(hours=1), history=visited * 1000.0, score=visited * 10.0)
    at = decided + pd.to_timedelta(rng.uniform(0.1, window_days - 0.1, size=n), unit="D")
    outcomes = pd.DataFrame({"user": users[visited], "at": at[visited]})
    before = pd.DataFrame({"user": users, "at": decided - pd.Timedelta(hours=2)})    # visits before: not outcomes
    return SendingLogs(decisions, pd.concat([features, leaky], ignore_index=True),
                       pd.concat([outcomes, before], ignore_index=True), effect, propensity, score)
