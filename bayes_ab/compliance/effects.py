"""The complier effect of every treatment arm, overall and per segment, beside the intent-to-treat effect.

The decision reads the intent-to-treat (ITT) effect, the metric's own model: it is what a rollout delivers,
receipt failures included. The complier average causal effect (CACE) answers the product question beside it:
how much receiving the treatment changes the metric for users who receive it when assigned (the compliers).
It is :mod:`~bayes_ab.compliance.strata`'s posterior with flat priors, reported with the compliance share, the
ITT of the same model and the assumptions that make it the effect of receiving.

**Segments are not pooled.** The overall CACE is the strata model on all users: the average effect over all
compliers, whichever segment they are in. An average of pooled segment CACEs would weight segments by users
rather than by compliers and answer another question. Each segment's CACE is its own users' (flat prior,
unpooled), shown as a description; the decision's pooled segment effects stay the ITT model's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr
from scipy import special

from bayes_ab import format as fmt
from bayes_ab.compliance.strata import Group, StrataDraws, strata_draws
from bayes_ab.display import HtmlRepr
from bayes_ab.families import family_for
from bayes_ab.intervals import credible_interval
from bayes_ab.metric import Metric
from bayes_ab.spec import Compliance

OVERALL = "overall"
LOW_COMPLIANCE = 0.2
"""A complier share below this makes the CACE the ITT divided by a small number: its interval is more than five
times the ITT's, and small violations of the exclusion restriction are magnified as much. Warned about."""
MIX_SHIFT = 0.1
"""Total-variation distance between the segments' shares among compliers and among assigned users above which
(with compliance differing between segments beyond chance) the CACE describes a visibly different population."""
MIX_P_VALUE = 0.01
"""Chi-square test of equal compliance across segments: differences below this p-value are not chance."""
MIN_ESS = 400
"""Effective draws below which the importance weights (very low compliance) leave the CACE's tails noisy."""


@dataclass(frozen=True)
class ComplierEffect(HtmlRepr):
    """One treatment arm in one segment (or overall): the compliance share, the ITT and the complier effect.

    Intervals are credible intervals at the analysis' ``interval`` (of its kind); ``itt_*`` is the strata model's
    intent-to-treat effect (flat prior), of which ``cace_abs`` is ``itt_abs / complier_share`` draw by draw.
    ``complier_control`` is the compliers' mean without the treatment, the base of ``cace_rel``.
    """

    segment: str
    arm: str
    is_overall: bool
    users: int
    received: int
    complier_share: float
    complier_share_low: float
    complier_share_high: float
    itt_abs: float
    itt_rel: float
    itt_rel_low: float
    itt_rel_high: float
    cace_abs: float
    cace_abs_low: float
    cace_abs_high: float
    cace_rel: float
    cace_rel_low: float
    cace_rel_high: float
    complier_control: float
    p_helps: float
    ess: float


@dataclass(frozen=True)
class ComplianceEffects(HtmlRepr):
    """The complier analysis of one metric: a :class:`ComplierEffect` per treatment arm, overall first, then per
    segment; the assumptions in one sentence; warnings that change what the numbers mean."""

    metric: Metric
    interval: float
    compliance: Compliance
    rows: tuple[ComplierEffect, ...]
    assumptions: str
    warnings: tuple[str, ...]

    def overall(self, arm: str) -> ComplierEffect | None:
        """The overall row of ``arm`` (``None`` when it has no compliers to estimate for)."""
        return next((r for r in self.rows if r.is_overall and r.arm == arm), None)

    def to_dict(self) -> dict:
        """JSON-ready: the setting, the assumption sentence, the warnings and every row's numbers."""
        return {"compliance": str(self.compliance), "interval": self.interval, "assumptions": self.assumptions,
                "warnings": list(self.warnings), "rows": [asdict(r) for r in self.rows]}

    def sentence(self, arm: str) -> str | None:
        """One plain sentence of ``arm``'s overall complier effect, e.g. "Among the users who receive push when
        assigned to it (compliers, 78% of assigned users) push increases trade conversion by +5.2% ..."."""
        row = self.overall(arm)
        if row is None:
            return None
        metric, family = self.metric, family_for(self.metric)
        verb = "increases" if metric.increase_is_good else "decreases"
        name = metric.name.replace("_", " ")
        return (f"Among the users who receive {arm} when assigned to it (compliers, {fmt.share(row.complier_share)} of "
                f"assigned users), there is a {fmt.probability(row.p_helps)} probability that receiving it {verb} "
                f"{name}; most likely {fmt.relative(row.cace_rel)} ({self.interval:.0%} interval "
                f"{fmt.relative(row.cace_rel_low)} to {fmt.relative(row.cace_rel_high)}; "
                f"{family.format_absolute(row.cace_abs, signed=True, metric=metric)}). The decision rests on the "
                "effect of assigning it.")


def assumption_sentence(arm_names: tuple[str, ...], received_column: str, compliance: Compliance) -> str:
    """What makes the CACE the effect of receiving the treatment, in one sentence."""
    treatments = ", ".join(arm_names[1:])
    text = (f"The effect on compliers assumes that being assigned to {treatments} changes the metric only through "
            f"receiving it ({received_column} = 1; the exclusion restriction)")
    if compliance == Compliance.ONE_SIDED:
        return text + f" and that users of {arm_names[0]} cannot receive it (one-sided compliance)."
    return (text + f"; users of {arm_names[0]} may receive it (two-sided compliance), and no user receives it only "
                   "when not assigned to it (monotonicity).")


def analyze_compliance(stats: xr.Dataset, metric: Metric, *, interval: float, compliance: Compliance,
                       received_column: str, draws: int, seed: int | None) -> ComplianceEffects:
    """The complier analysis of ``metric`` from its statistics by received value
    (:func:`~bayes_ab.compliance.statistics.received_statistics`)."""
    family = family_for(metric)
    rng = np.random.default_rng(seed)
    arms = tuple(str(a) for a in stats["arm"].values)
    segments = [str(s) for s in stats["segment"].values]
    sign = 1.0 if metric.increase_is_good else -1.0
    n, total, squares = (stats[v].transpose("arm", "segment", "received").values for v in ("n", "sum", "sumsq"))
    scopes = [(OVERALL, slice(None))] + ([(s, [i]) for i, s in enumerate(segments)] if len(segments) > 1 else [])
    rows, warnings = [], []
    for a, arm in enumerate(arms[1:], start=1):
        for segment, where in scopes:
            def groups(k: int) -> tuple[Group, Group]:
                return tuple(Group(float(n[k, where, r].sum()), float(total[k, where, r].sum()),
                                   float(squares[k, where, r].sum())) for r in (0, 1))
            found = strata_draws(rng, groups(0), groups(a), binary=family.binary, lower=family.min_mean,
                                 upper=family.max_mean, size=draws)
            if found is None:
                if segment == OVERALL:
                    warnings.append(f"no complier effect of {arm!r} is estimated: nobody assigned to it received it, "
                                    "every control user did, or the groups' means contradict the exclusion "
                                    "restriction (no compliers' mean in the metric's range fits them)")
                continue
            rows.append(_row(found, segment, arm, int(n[a, where].sum()), int(n[a, where, 1].sum()), interval, sign,
                             draws))
    overall = {r.arm: r for r in rows if r.is_overall}
    for arm, row in overall.items():
        if row.complier_share < LOW_COMPLIANCE:
            warnings.append(f"only {fmt.share(row.complier_share)} of users assigned to {arm!r} are compliers: the "
                            f"complier effect is the effect of assignment divided by {row.complier_share:.2f}, its "
                            "interval as many times wider, and any effect of assignment that does not go through "
                            "receiving it is magnified as much")
        if row.ess < MIN_ESS:
            warnings.append(f"the complier effect of {arm!r} rests on {row.ess:.0f} effective draws (low compliance "
                            "makes the posterior's weights uneven): its interval's ends are rough")
        warning = _mix_warning(arm, arms.index(arm), n, segments, compliance)
        if warning:
            warnings.append(warning)
    return ComplianceEffects(metric, interval, compliance, tuple(rows),
                             assumption_sentence(arms, received_column, compliance), tuple(warnings))


def _row(found: StrataDraws, segment: str, arm: str, users: int, received: int, interval: float, sign: float,
         draws: int) -> ComplierEffect:
    def summary(values: np.ndarray) -> tuple[float, float, float]:
        finite = values[np.isfinite(values)]
        low, high = credible_interval(finite, interval)
        return float(np.mean(finite)) if finite.size else float("nan"), low, high

    share, itt_rel, cace_abs, cace_rel = (summary(v) for v in (found.complier_share, found.itt_rel, found.cace_abs,
                                                               found.cace_rel))
    return ComplierEffect(segment=segment, arm=arm, is_overall=segment == OVERALL, users=users, received=received,
                          complier_share=share[0], complier_share_low=share[1], complier_share_high=share[2],
                          itt_abs=float(np.mean(found.itt_abs)), itt_rel=itt_rel[0], itt_rel_low=itt_rel[1],
                          itt_rel_high=itt_rel[2], cace_abs=cace_abs[0], cace_abs_low=cace_abs[1],
                          cace_abs_high=cace_abs[2], cace_rel=cace_rel[0], cace_rel_low=cace_rel[1],
                          cace_rel_high=cace_rel[2], complier_control=float(np.mean(found.complier_control)),
                          p_helps=float(np.mean(sign * found.cace_abs > 0)), ess=min(found.ess, float(draws)))


def independence_p_value(table: np.ndarray) -> float:
    """Pearson's chi-square test of independence of a table with no empty row or column, without continuity
    correction: ``scipy.stats.chi2_contingency(table, correction=False)[1]``, from scipy.special (scipy.stats
    costs every check-in that reads a complier effect 0.7 s of imports)."""
    table = np.asarray(table, dtype=float)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(special.chdtrc((table.shape[0] - 1) * (table.shape[1] - 1), statistic))


def _mix_warning(arm: str, a: int, n: np.ndarray, segments: list[str], compliance: Compliance) -> str | None:
    """A warning when the segments' compliance differs beyond chance and enough that compliers are a visibly
    different mix of segments than assigned users (:data:`MIX_SHIFT`, :data:`MIX_P_VALUE`)."""
    if len(segments) < 2:
        return None
    assigned = n[a].sum(axis=1)                  # users per segment in the arm
    received = n[a, :, 1]
    if compliance == Compliance.TWO_SIDED:       # compliers: the arm's received share minus the control's
        control = n[0].sum(axis=1)
        share = received / np.maximum(assigned, 1) - n[0, :, 1] / np.maximum(control, 1)
    else:
        share = received / np.maximum(assigned, 1)
    present = assigned > 0
    if present.sum() < 2 or received.sum() == 0:
        return None
    table = np.stack([received[present], assigned[present] - received[present]])
    if (table.sum(axis=1) == 0).any():
        return None
    p_value = independence_p_value(table)
    users = assigned / assigned.sum()
    compliers = users * np.clip(share, 0.0, None)
    if compliers.sum() <= 0:
        return None
    compliers = compliers / compliers.sum()
    shift = 0.5 * float(np.abs(compliers - users).sum())
    if p_value >= MIX_P_VALUE or shift < MIX_SHIFT:
        return None
    order = np.argsort(share[present])
    shown = [segments[i] for i in np.flatnonzero(present)[[order[0], order[-1]]]]
    low, high = (share[segments.index(s)] for s in shown)
    most = int(np.argmax(np.abs(compliers - users)))
    return (f"compliance with {arm!r} differs between segments ({shown[0]} {fmt.share(low)}, {shown[1]} "
            f"{fmt.share(high)}): compliers are {fmt.share(compliers[most])} {segments[most]} against "
            f"{fmt.share(users[most])} of assigned users, so the complier effect describes another mix of users than "
            "a rollout reaches; read it per segment")
