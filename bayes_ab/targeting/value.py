"""Doubly-robust scores, candidate policies, and the posterior of their values.

For user *i* with outcome *Y*, treatment indicator *T*, propensity *e* (the chance of being treated: the
planned split in an experiment, the logged or modelled chance of a send in logs) and out-of-fold predictions
*m0*, *m1* of each arm's outcome, the doubly-robust score

    G = m1 - m0 + T (Y - m1) / e - (1 - T) (Y - m0) / (1 - e)

has mean equal to the user's effect whenever either the propensity or the outcome models are right (with a
known propensity, always). A policy *p* (1 = treat) is then worth ``mean(p * G)`` per user against treating
nobody; the inverse-propensity score (the same with *m0 = m1 = 0*) gives the IPW estimate.

The posterior of every policy's value comes from one Bayesian bootstrap (Rubin 1981): Dirichlet(1, ..., 1)
weights over users, the same weights for every policy, so differences between policies (P(better than
treat-all), P(best)) keep their correlation. It is the posterior of a mean under a noninformative prior on the
users' distribution, and needs no normal approximation for skewed outcomes such as spend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr

from bayes_ab import format as fmt
from bayes_ab.intervals import credible_interval
from bayes_ab.targeting.crossfit import CrossFit, training_rows

CURVE_SHARES = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))
"""The uplift curve's points: the share of users treated, best-ranked first, in steps of 5%."""
BOOTSTRAP_CELLS = 20_000_000
"""Weights drawn at once (draws x users): about 160 MB, whatever the number of users."""


def dr_scores(y: np.ndarray, treated: np.ndarray, propensity: np.ndarray | float, fit: CrossFit) -> np.ndarray:
    """Each user's doubly-robust score of the effect (see the module's docstring)."""
    t = treated.astype(float)
    return (fit.treated - fit.control + t * (y - fit.treated) / propensity
            - (1 - t) * (y - fit.control) / (1 - propensity))


def ipw_scores(y: np.ndarray, treated: np.ndarray, propensity: np.ndarray | float) -> np.ndarray:
    """Each user's inverse-propensity score of the effect (Horvitz-Thompson)."""
    t = treated.astype(float)
    return t * y / propensity - (1 - t) * y / (1 - propensity)


def top_share(uplift: np.ndarray, fold: np.ndarray, share: float) -> np.ndarray:
    """Treat the ``share`` of each fold's users with the largest predicted uplift (ties broken by order).

    Ranked within each fold because each fold was scored by its own models, whose scales differ a little."""
    treat = np.zeros(len(uplift), dtype=bool)
    for k in np.unique(fold):
        rows = np.flatnonzero(fold == k)
        n_treat = int(round(share * len(rows)))
        if n_treat:
            order = np.argsort(-uplift[rows], kind="stable")
            treat[rows[order[:n_treat]]] = True
    return treat


def pooled_helps(scores: np.ndarray, segment: np.ndarray) -> dict[str, float]:
    """P(the segment's effect > 0) per segment from ``scores`` (larger is better), pooled across segments.

    Per segment the mean score and its standard error; the segments are pooled by a normal-normal model whose
    between-segment variance is the method-of-moments estimate (DerSimonian & Laird 1986): a segment that looks
    good by noise alone is pulled to the others, as the product's hierarchical models pull it."""
    names, codes = np.unique(segment, return_inverse=True)
    n = np.bincount(codes).astype(float)
    mean = np.bincount(codes, scores) / n
    var = np.bincount(codes, scores ** 2) / n - mean ** 2
    se2 = np.maximum(var, 1e-12) / np.maximum(n - 1, 1)
    w = 1 / se2
    grand = np.sum(w * mean) / np.sum(w)
    between = max(0.0, float(np.var(mean, ddof=1) - np.mean(se2))) if len(n) > 1 else 0.0
    if between > 0:
        post_var = 1 / (1 / se2 + 1 / between)
        post_mean = post_var * (mean / se2 + grand / between)
    else:
        post_var, post_mean = np.full(len(n), 1 / np.sum(w)), np.full(len(n), grand)
    return {str(name): float(p) for name, p in zip(names, ndtr(post_mean / np.sqrt(post_var)))}


def segment_helps(scores: np.ndarray, segment: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """P(helps) of each user's segment (:func:`pooled_helps`) from the training folds' scores only
    (:func:`~bayes_ab.targeting.crossfit.training_folds`): the segment policies are then evaluated on users their
    choice never saw. A segment absent from the training folds gets their pooled mean's P(helps)."""
    out = np.empty(len(scores))
    for k in np.unique(fold):
        train, held = training_rows(fold, int(k)), fold == k
        lookup = pooled_helps(scores[train], segment[train])
        fallback = float(ndtr(scores[train].mean() / (scores[train].std() / np.sqrt(train.sum()))))
        out[held] = [lookup.get(str(s), fallback) for s in segment[held]]
    return out


def bayesian_bootstrap(values: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """Posterior draws of the column means of ``values`` (users x columns): ``draws x columns``."""
    rng = np.random.default_rng(seed)
    out = np.empty((draws, values.shape[1]))
    chunk = max(1, BOOTSTRAP_CELLS // max(1, values.shape[0]))
    for start in range(0, draws, chunk):
        stop = min(draws, start + chunk)
        weights = rng.standard_exponential((stop - start, values.shape[0]))
        out[start:stop] = (weights @ values) / weights.sum(axis=1, keepdims=True)
    return out


def difference_in_means(y: np.ndarray, treated: np.ndarray, treat: np.ndarray) -> float | None:
    """``share treated x (mean of the treated arm - mean of control)`` among the users ``treat`` selects."""
    if not treat.any():
        return 0.0
    a, b = y[treat & treated], y[treat & ~treated]
    return float(treat.mean() * (a.mean() - b.mean())) if len(a) and len(b) else None


@dataclass(frozen=True)
class PolicyValue:
    """One candidate policy: whom it treats and what it is worth per user against treating nobody."""

    name: str
    rule: str
    treated_share: float
    value: float
    low: float
    high: float
    p_better_than_all: float | None
    p_best: float
    total: float | None = None
    difference: float | None = None
    helps: float | None = None
    """For a segment policy: the P(helps) a segment needs to be treated."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "rule": self.rule, "treated_share": self.treated_share, "value": self.value,
                "interval": [self.low, self.high], "p_better_than_all": self.p_better_than_all,
                "p_best": self.p_best, "total": self.total, "difference_in_means": self.difference,
                "helps_threshold": self.helps}


@dataclass(frozen=True)
class UpliftCurve:
    """Value per user of treating the top share by predicted uplift, at each share, with its band; and its areas.

    ``auuc``: the area under the curve (mean value over shares from 0 to 1); ``qini``: the area between the
    curve and the line of treating users at random (``auuc - value(all) / 2``), positive when the ranking
    finds the users who gain most."""

    shares: tuple[float, ...]
    value: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    auuc: tuple[float, float, float]
    qini: tuple[float, float, float]
    p_qini_positive: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"shares": list(self.shares), "value": list(self.value), "low": list(self.low),
                "high": list(self.high), "auuc": list(self.auuc), "qini": list(self.qini),
                "p_qini_positive": self.p_qini_positive}


@dataclass(frozen=True)
class PolicyTable:
    """The candidate policies of one metric, their values' posterior summaries and the uplift curve."""

    metric: str
    unit: str
    scale: float
    estimator: str
    users: int
    level: float
    policies: tuple[PolicyValue, ...]
    curve: UpliftCurve
    population: int | None = None
    notes: tuple[str, ...] = field(default=())
    segment_helps: dict[str, float] = field(default_factory=dict)
    """P(helps) per segment from all users, pooled: the segments a targeted rollout would treat."""
    assignments: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)
    """Per policy, whom it treats (one boolean per user, in the rows' order): not in the JSON form."""

    def policy(self, name: str) -> PolicyValue:
        """The policy called ``name``."""
        return next(p for p in self.policies if p.name == name)

    def best(self) -> PolicyValue:
        """The policy most probably best."""
        return max(self.policies, key=lambda p: p.p_best)

    def amount(self, value: float) -> str:
        """A value per user in the metric's display unit, signed."""
        return fmt.amount(value * self.scale, signed=True)

    def sentence(self) -> str:
        """One sentence: the most probably best policy, its value, and how sure it beats treating everyone."""
        best, everyone = self.best(), self.policy("treat_all")
        value = f"{self.amount(best.value)} {self.unit} ({self.amount(best.low)} to {self.amount(best.high)})"
        if best.name == "treat_all":
            return (f"{self.metric}: treating everyone is most probably best ({fmt.probability(best.p_best)}), "
                    f"worth {value}; no targeting rule found users who gain clearly more.")
        if best.name == "treat_none":
            return (f"{self.metric}: treating nobody is most probably best ({fmt.probability(best.p_best)}); "
                    f"treating everyone is worth {self.amount(everyone.value)} {self.unit}.")
        return (f"{self.metric}: {best.rule} is most probably best ({fmt.probability(best.p_best)}), worth {value}, "
                f"better than treating everyone with {fmt.probability(best.p_better_than_all or 0.0)}.")

    def lines(self) -> list[str]:
        """The console form: the policy table, the uplift ranking's area and the sentence."""
        level = f"{round(100 * self.level):d}%"
        plain = any(p.difference is not None for p in self.policies)
        out = [f"{self.metric}: value against treating nobody, {self.unit} ({self.estimator}; {level} intervals; "
               f"{self.users:,} users)",
               f"  {'policy':<44} {'treats':>7} {'value':>9} {level + ' interval':>22} {'P(>all)':>8} {'P(best)':>8}"
               + (f" {'plain':>9}" if plain else "") + ("" if self.population is None else f" {'total':>12}")]
        for p in self.policies:
            better = "" if p.p_better_than_all is None else fmt.probability(p.p_better_than_all)
            row = (f"  {p.rule:<44} {100 * p.treated_share:>6.0f}% {self.amount(p.value):>9} "
                   f"{self.amount(p.low) + ' to ' + self.amount(p.high):>22} {better:>8} "
                   f"{fmt.probability(p.p_best):>8}")
            if plain:
                row += f" {'' if p.difference is None else self.amount(p.difference):>9}"
            out.append(row + ("" if p.total is None else f" {p.total:>12,.0f}"))
        q = self.curve.qini
        out.append(f"  uplift ranking: Qini {self.amount(q[0])} ({self.amount(q[1])} to {self.amount(q[2])}), "
                   f"P(ranking beats random) {fmt.probability(self.curve.p_qini_positive)}")
        if plain:
            out.append("  plain: the difference in means between the arms among the users a policy treats, times "
                       "their share (no model)")
        if self.population is not None:
            out.append(f"  total: the value for a population of {self.population:,} users")
        out.append("  " + self.sentence())
        return out + [f"  note: {n}" for n in self.notes]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"metric": self.metric, "unit": self.unit, "unit_scale": self.scale, "estimator": self.estimator,
                "users": self.users,
                "interval": self.level, "population": self.population, "sentence": self.sentence(),
                "policies": [p.to_dict() for p in self.policies], "uplift_curve": self.curve.to_dict(),
                "segment_p_helps": self.segment_helps,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class Candidate:
    """A policy to evaluate: its name, its rule in words, whom it treats (and a segment policy's threshold)."""

    name: str
    rule: str
    treat: np.ndarray
    helps: float | None = None


def candidates(uplift: np.ndarray, fold: np.ndarray, top: tuple[float, ...], sign: float,
               helps: tuple[float, ...] = (), p_helps: np.ndarray | None = None) -> list[Candidate]:
    """Treat all, treat none, the top shares by predicted uplift (``sign``: -1 when lower is better), and the
    segments whose P(helps) reaches each threshold."""
    n = len(uplift)
    out = [Candidate("treat_all", "treat everyone", np.ones(n, bool)),
           Candidate("treat_none", "treat nobody", np.zeros(n, bool))]
    out += [Candidate(f"top_{share:g}", f"treat the top {fmt.share(share)} by predicted uplift",
                      top_share(sign * uplift, fold, share)) for share in top]
    if p_helps is not None:
        out += [Candidate(f"helps_{x:g}", f"treat the segments with P(helps) >= {fmt.share(x)}", p_helps >= x, x)
                for x in helps]
    return out


def evaluate(scores: np.ndarray, policies: list[Candidate], uplift: np.ndarray, fold: np.ndarray, *, metric: str,
             unit: str, scale: float, sign: float, estimator: str, level: float, draws: int, seed: int,
             population: int | None = None, notes: tuple[str, ...] = (),
             randomised: tuple[np.ndarray, np.ndarray] | None = None,
             segment_p_helps: dict[str, float] | None = None) -> PolicyTable:
    """Every policy's value and the uplift curve from one Bayesian bootstrap of the users' scores.

    ``randomised``: the outcomes and treatment indicators of a randomised experiment, for each policy's plain
    estimate beside the model's -- the difference in means between the arms among the users it treats, times
    their share (no model, no cross-fitting: the check a reviewer can redo by hand)."""
    curve_treat = [top_share(sign * uplift, fold, s) for s in CURVE_SHARES]
    columns = np.column_stack([p.treat * scores for p in policies] + [t * scores for t in curve_treat])
    posterior = bayesian_bootstrap(columns, draws, seed)
    k = len(policies)
    values, curve = posterior[:, :k], posterior[:, k:]
    good = sign * values                        # larger is better
    best = np.bincount(np.argmax(good, axis=1), minlength=k) / draws
    all_index = next(i for i, p in enumerate(policies) if p.name == "treat_all")
    rows = []
    for i, p in enumerate(policies):
        low, high = credible_interval(values[:, i], level)
        better = None if i == all_index else float(np.mean(good[:, i] > good[:, all_index]))
        mean = float(values[:, i].mean())
        rows.append(PolicyValue(p.name, p.rule, float(p.treat.mean()), mean, float(low), float(high), better,
                                float(best[i]), None if population is None else mean * population,
                                None if randomised is None else difference_in_means(*randomised, p.treat), p.helps))
    band = [credible_interval(curve[:, j], level) for j in range(curve.shape[1])]
    shares = np.asarray(CURVE_SHARES)
    area = np.trapezoid(curve, shares, axis=1)
    qini = area - curve[:, -1] / 2
    summary = lambda d: (float(d.mean()), *map(float, credible_interval(d, level)))  # noqa: E731
    return PolicyTable(metric, unit, scale, estimator, len(scores), float(level), tuple(rows), UpliftCurve(
        tuple(float(s) for s in shares), tuple(float(v) for v in curve.mean(axis=0)),
        tuple(float(b[0]) for b in band), tuple(float(b[1]) for b in band), summary(area), summary(qini),
        float(np.mean(sign * qini > 0))), population, notes, segment_p_helps or {},
        {p.name: p.treat for p in policies})


@dataclass(frozen=True)
class SegmentRollout:
    """A targeted rollout a segment policy supports: the policy, the segments to treat and those left out."""

    policy: PolicyValue
    segments: tuple[str, ...]
    excluded: tuple[str, ...]


def segment_rollout(table: PolicyTable, better: float) -> SegmentRollout | None:
    """The targeted rollout the policy table supports, if any.

    Among the segment policies that leave some users untreated, the one most probably better than treating
    everyone, when that probability reaches ``better``; it treats the segments whose P(helps) on all users
    reaches its threshold. ``None`` when no such policy reaches ``better`` or when the segments it would treat
    on all users are none or all of them."""
    chosen = [p for p in table.policies if p.helps is not None and 0 < p.treated_share < 1
              and p.p_better_than_all is not None and p.p_better_than_all >= better]
    if not chosen or not table.segment_helps:
        return None
    policy = max(chosen, key=lambda p: p.p_better_than_all)
    treat = tuple(s for s, p in table.segment_helps.items() if p >= policy.helps)
    excluded = tuple(s for s in table.segment_helps if s not in treat)
    if not treat or not excluded:
        return None
    return SegmentRollout(policy, treat, excluded)
