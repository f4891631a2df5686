"""The value of a sending policy from logs of past sends that were not randomised (off-policy evaluation).

Three tables, each with the user id:

- ``decisions``: one row per decision -- when it was made (``decided_at``), whether the message was sent
  (``sent``, 0/1) and, if the sender logged it, the probability it had of sending (``propensity``);
- ``features``: snapshots of each user's features, each stamped with the time it describes (``as_of``);
- ``outcomes``: events after which the outcome is counted (``at``, and ``value``; without a value column an
  event counts 1).

How leakage is ruled out, by construction rather than by care: a decision's features are the user's latest
snapshot stamped strictly *before* the decision (an as-of join: a snapshot at or after the decision time is
never read), and its outcome is the sum of the events strictly after the decision and no later than the end of
the window. A decision whose window has not closed by the end of the outcome log is left out (named in the
notes): its outcome is not yet known, and counting it as zero would bias every policy toward not sending.

The propensity is the logged one when the sender logged it, else a cross-fitted model of sending from the
features. The estimators are then inverse-propensity weighting and the doubly-robust score
(:mod:`~bayes_ab.targeting.value`), each decision one unit of the Bayesian bootstrap. Both need overlap -- users
of every kind both sent and not sent -- and are refused, with the numbers, when it is too poor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from bayes_ab.data.duckdb_engine import DuckDBEngine
from bayes_ab.data.engine import Source
from bayes_ab.data.sql import quote_ident
from bayes_ab.errors import DataError
from bayes_ab.models.prior_resampling import effective_size
from bayes_ab.spec import Learner
from bayes_ab.targeting.crossfit import assign_folds, cross_fit, cross_fit_propensity
from bayes_ab.targeting.features import design
from bayes_ab.targeting.value import Candidate, PolicyTable, candidates, dr_scores, evaluate, ipw_scores, top_share

EXTREME_PROPENSITY = 0.02
"""A propensity below 2% or above 98% gives a weight over 50: such users carry the estimate alone."""
MAX_EXTREME_SHARE = 0.05
MIN_ESS_SHARE = 0.10
"""Refused when more than 5% of decisions have an extreme propensity, or when the inverse-propensity weights of
the sent (or of the not sent) leave an effective sample size (Kish) under 10% of their number: the estimate
then rests on a few users whose weights the propensity model guessed."""
MIN_DECISIONS = 200


@dataclass(frozen=True)
class LogColumns:
    """Column names of the three logs."""

    user: str = "user"
    decided_at: str = "decided_at"
    sent: str = "sent"
    propensity: str | None = None
    as_of: str = "as_of"
    at: str = "at"
    value: str | None = None


@dataclass(frozen=True)
class Overlap:
    """Whether sent and not-sent users overlap in their propensities."""

    decisions: int
    sent_share: float
    minimum: float
    maximum: float
    extreme_share: float
    ess_sent: float
    ess_not_sent: float

    @classmethod
    def of(cls, propensity: np.ndarray, sent: np.ndarray) -> "Overlap":
        """The overlap diagnostics of ``propensity`` for the decisions ``sent``."""
        def kish(w: np.ndarray) -> float:
            return effective_size(w) / len(w) if len(w) else 0.0
        extreme = (propensity < EXTREME_PROPENSITY) | (propensity > 1 - EXTREME_PROPENSITY)
        return cls(len(sent), float(sent.mean()), float(propensity.min()), float(propensity.max()),
                   float(extreme.mean()), kish(1 / propensity[sent]), kish(1 / (1 - propensity[~sent])))

    def problems(self) -> list[str]:
        """What makes the overlap too poor to estimate from (empty when it is good enough)."""
        out = []
        if self.extreme_share > MAX_EXTREME_SHARE:
            out.append(f"{100 * self.extreme_share:.1f}% of decisions have a propensity below "
                       f"{EXTREME_PROPENSITY:g} or above {1 - EXTREME_PROPENSITY:g} (at most "
                       f"{100 * MAX_EXTREME_SHARE:g}%)")
        for name, ess in (("sent", self.ess_sent), ("not sent", self.ess_not_sent)):
            if ess < MIN_ESS_SHARE:
                out.append(f"the weights of the {name} leave an effective sample size of {100 * ess:.1f}% of them "
                           f"(at least {100 * MIN_ESS_SHARE:g}%)")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"decisions": self.decisions, "sent_share": self.sent_share, "propensity_min": self.minimum,
                "propensity_max": self.maximum, "extreme_share": self.extreme_share,
                "ess_share_sent": self.ess_sent, "ess_share_not_sent": self.ess_not_sent}


@dataclass(frozen=True)
class LoggedPolicies:
    """Policy values from logs: the doubly-robust and the IPW tables, the overlap and what was left out."""

    doubly_robust: PolicyTable
    ipw: PolicyTable
    overlap: Overlap
    propensity: str
    notes: tuple[str, ...]

    def lines(self) -> list[str]:
        """The console form: the overlap, then the doubly-robust and the IPW tables."""
        o = self.overlap
        out = [f"Policies from {o.decisions:,} logged decisions ({100 * o.sent_share:.0f}% sent); propensity: "
               f"{self.propensity}",
               f"  overlap: propensities {o.minimum:.3f} to {o.maximum:.3f}, {100 * o.extreme_share:.1f}% extreme; "
               f"effective sample size {100 * o.ess_sent:.0f}% of the sent, {100 * o.ess_not_sent:.0f}% of the "
               "not sent"]
        out += [f"  note: {n}" for n in self.notes]
        if self.propensity != "logged":
            out.append("  note: IPW rests on the modelled propensity alone (in the benchmarks it was off by several "
                       "standard errors where the doubly-robust value was not): read the doubly-robust table")
        return out + ["", *self.doubly_robust.lines(), "", *self.ipw.lines()]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"doubly_robust": self.doubly_robust.to_dict(), "ipw": self.ipw.to_dict(),
                "overlap": self.overlap.to_dict(), "propensity": self.propensity, "notes": list(self.notes)}


def labelled_decisions(decisions: Source, features: Source, outcomes: Source, feature_columns: tuple[str, ...], *,
                       window_days: float, columns: LogColumns = LogColumns(),
                       observed_until: pd.Timestamp | None = None) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One row per decision whose window has closed: ``__sent``, ``__outcome``, ``__propensity`` (when logged)
    and the features of the latest snapshot strictly before the decision; and notes on what was left out.

    Raises
    ------
    DataError
        A missing column, a ``sent`` other than 0/1, a logged propensity outside (0, 1), a decision with no
        feature snapshot before it, or no decision with a closed window.
    """
    if not window_days > 0:
        raise DataError(f"outcome window must be a positive number of days, got {window_days}")
    con = duckdb.connect()
    engine = DuckDBEngine(con)
    c = columns
    tables = []
    try:
        d, f, o = (engine.open(s) for s in (decisions, features, outcomes))
        tables = [d, f, o]
        d.require_columns({c.user: "user id", c.decided_at: "decision time", c.sent: "sent (0/1)",
                           **({c.propensity: "logged propensity"} if c.propensity else {})})
        f.require_columns({c.user: "user id", c.as_of: "snapshot time",
                           **{name: "feature" for name in feature_columns}})
        o.require_columns({c.user: "user id", c.at: "event time", **({c.value: "outcome value"} if c.value else {})})
        q = quote_ident
        user, when = q(c.user), q(c.decided_at)
        not_binary = f"{q(c.sent)} IS NULL OR CAST({q(c.sent)} AS DOUBLE) NOT IN (0, 1)"
        outside = (f"{q(c.propensity)} IS NULL OR {q(c.propensity)} <= 0 OR {q(c.propensity)} >= 1" if c.propensity
                   else "FALSE")
        bad = d.run(f"SELECT SUM(CASE WHEN {not_binary} THEN 1 ELSE 0 END) AS sent, "
                    f"CAST(MIN(CASE WHEN {not_binary} THEN {user} END) AS VARCHAR) AS sent_example, "
                    f"SUM(CASE WHEN {outside} THEN 1 ELSE 0 END) AS propensity, "
                    f"CAST(MIN(CASE WHEN {outside} THEN {user} END) AS VARCHAR) AS propensity_example "
                    f"FROM {d.relation}").iloc[0]
        if int(bad["sent"] or 0):
            raise DataError(f"{d.label}: column {c.sent!r} must be 0/1; {int(bad['sent']):,} row(s) are not, e.g. "
                            f"user {bad['sent_example']!r}")
        if int(bad["propensity"] or 0):
            raise DataError(f"{d.label}: column {c.propensity!r} (logged propensity) must be strictly between 0 "
                            f"and 1; {int(bad['propensity']):,} row(s) are not, e.g. user "
                            f"{bad['propensity_example']!r}")
        value = f"CAST(o.{q(c.value)} AS DOUBLE)" if c.value else "1.0"
        end = (f"TIMESTAMP '{pd.Timestamp(observed_until).isoformat(sep=' ')}'" if observed_until is not None
               else f"(SELECT MAX(CAST({q(c.at)} AS TIMESTAMP)) FROM {o.relation})")
        window = int(round(window_days * 86400))
        feats = ", ".join(f"s.{q(name)}" for name in feature_columns)
        sql = f"""
        WITH dec AS (
            SELECT ROW_NUMBER() OVER () AS __row, CAST({user} AS VARCHAR) AS __user,
                   CAST({when} AS TIMESTAMP) AS __at, CAST({q(c.sent)} AS INTEGER) AS __sent
                   {f', CAST({q(c.propensity)} AS DOUBLE) AS __propensity' if c.propensity else ''}
            FROM {d.relation}),
        snap AS (SELECT CAST({user} AS VARCHAR) AS __user, CAST({q(c.as_of)} AS TIMESTAMP) AS __as_of,
                        {', '.join(q(name) for name in feature_columns)} FROM {f.relation}),
        ev AS (SELECT CAST({user} AS VARCHAR) AS __user, CAST({q(c.at)} AS TIMESTAMP) AS __at, {value} AS __value
               FROM {o.relation} AS o),
        labelled AS (
            SELECT dec.*, s.__as_of, {feats} FROM dec ASOF LEFT JOIN snap AS s
            ON dec.__user = s.__user AND s.__as_of < dec.__at)
        SELECT l.*, epoch(l.__at) + {window} <= epoch({end}) AS __closed,
               COALESCE((SELECT SUM(ev.__value) FROM ev WHERE ev.__user = l.__user AND ev.__at > l.__at
                         AND epoch(ev.__at) <= epoch(l.__at) + {window}), 0) AS __outcome
        FROM labelled AS l ORDER BY l.__row"""
        rows = d.run(sql)
    finally:
        for t in tables:
            t.close()
        con.close()
    unmatched = rows["__as_of"].isna()
    if unmatched.any():
        raise DataError(f"{d.label}: {int(unmatched.sum()):,} decision(s) have no feature snapshot in {f.label} "
                        f"stamped before the decision, e.g. user {rows.loc[unmatched, '__user'].iloc[0]!r}; a "
                        "policy can only use what was known when it decided")
    open_windows = ~rows["__closed"].astype(bool)
    notes = []
    if open_windows.any():
        notes.append(f"{int(open_windows.sum()):,} decision(s) left out: their {window_days:g}-day outcome window "
                     "had not closed by the end of the outcome log")
        rows = rows[~open_windows].reset_index(drop=True)
    if len(rows) < MIN_DECISIONS:
        raise DataError(f"{d.label}: {len(rows):,} decision(s) with a closed outcome window; at least "
                        f"{MIN_DECISIONS:,} are needed")
    return rows, tuple(notes)


def evaluate_logged(rows: pd.DataFrame, feature_columns: tuple[str, ...], *, score: str | None = None,
                    top: tuple[float, ...] = (0.2,), learner: Learner = Learner.GBM, folds: int = 5, seed: int = 0,
                    level: float = 0.9, draws: int = 4000, unit: str = "per decision",
                    notes: tuple[str, ...] = ()) -> LoggedPolicies:
    """The values of treat-all, treat-none, the top shares by cross-fitted predicted uplift and (with ``score``, a
    feature) by that score, from labelled decisions (:func:`labelled_decisions`).

    Raises
    ------
    DataError
        Overlap too poor for weighting (see :class:`Overlap`), or both arms not present.
    """
    sent = rows["__sent"].to_numpy().astype(bool)
    if sent.all() or not sent.any():
        raise DataError("every decision in the logs " + ("sent" if sent.all() else "did not send") + ": a policy's "
                        "value needs decisions of both kinds")
    y = rows["__outcome"].to_numpy(float)
    X = design(rows, feature_columns)
    fold = assign_folds(sent, folds, seed)
    logged = "__propensity" in rows
    propensity = (rows["__propensity"].to_numpy(float) if logged
                  else cross_fit_propensity(X, sent, fold, learner, seed + 500))
    overlap = Overlap.of(propensity, sent)
    problems = overlap.problems()
    if problems:
        raise DataError("overlap too poor to evaluate policies from these logs: " + "; ".join(problems)
                        + ". Sent and not-sent users differ too much; randomise some sends")
    fit = cross_fit(X, y, sent, fold, learner, seed)
    policies = candidates(fit.uplift, fold, top, 1.0)
    if score is not None:
        values = pd.to_numeric(rows[score], errors="coerce").fillna(-np.inf).to_numpy(float)
        whole = np.zeros(len(values), dtype=int)
        policies += [Candidate(f"score_top_{s:g}", f"send to the top {100 * s:g}% by {score}",
                               top_share(values, whole, s)) for s in top]
    doubly_robust, ipw = (
        evaluate(scores, policies, fit.uplift, fold, metric="outcome", unit=unit, scale=1.0, sign=1.0,
                 estimator=name, level=level, draws=draws, seed=seed + 7)
        for name, scores in (("doubly robust (cross-fitted)", dr_scores(y, sent, propensity, fit)),
                             ("inverse propensity weighting", ipw_scores(y, sent, propensity))))
    return LoggedPolicies(doubly_robust, ipw, overlap,
                          "logged" if logged else f"{learner} model of sending, cross-fitted", notes)
