"""Targeting policies on a randomised experiment's per-user rows (``targeting`` in the spec).

The rows are checked as the analysis checks them (every metric's data checks, in the one aggregation query),
then read once more as one row per user of the control and the chosen treatment arm: the treatment indicator,
each targeted metric's per-user value (the family's own SQL: :meth:`~bayes_ab.families.base.Family.unit_values`),
the features and the segment columns. A policy's value needs users one by one -- who would be treated depends on
each user's features -- so this is the one analysis that reads more than sufficient statistics.

The propensity is the treated share of the two arms' users, which the randomisation fixed: the doubly-robust
score is then unbiased whatever the outcome models are, and the models only make it less noisy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from bayes_ab.aggregation.scan import ScanPlan, segment_labels
from bayes_ab.data.engine import Engine, Source, Table
from bayes_ab.data.engines import resolve_engine
from bayes_ab.data.sql import quote_ident, quote_literal
from bayes_ab.errors import DataError, SpecError
from bayes_ab.families import family_for
from bayes_ab.metric import Direction
from bayes_ab.spec import ExperimentSpec
from bayes_ab.targeting.crossfit import assign_folds, cross_fit
from bayes_ab.targeting.features import design
from bayes_ab.targeting.value import PolicyTable, candidates, dr_scores, evaluate, pooled_helps, segment_helps

class TooFewUsers(DataError):
    """Too few users in an arm to cross-fit: early in a ramp, the analysis goes on without the policy tables."""


MIN_USERS_PER_FOLD = 20
"""Each arm needs this many users per fold: fewer, and a fold's models are fitted on a handful of users."""
DRAWS = 4000
"""Bayesian-bootstrap draws: the Monte-Carlo error of a 90% interval's end is then about 2% of the value's
posterior sd, and of P(better than treat-all) at most 0.8 points."""


@dataclass(frozen=True)
class TargetingResult:
    """The policy tables of the targeted metrics of one experiment (treatment arm against control)."""

    treatment: str
    control: str
    features: tuple[str, ...]
    learner: str
    folds: int
    tables: tuple[PolicyTable, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the body of the ``bayes-ab/targeting`` document)."""
        return {"treatment": self.treatment, "control": self.control, "features": list(self.features),
                "learner": self.learner, "folds": self.folds, "metrics": [t.to_dict() for t in self.tables]}

    def lines(self) -> list[str]:
        """The console form: per metric, the policy table, the uplift ranking's areas and the sentence."""
        out = [f"Targeting {self.treatment} against {self.control}: {self.learner} T-learner on "
               f"{', '.join(self.features)}, {self.folds}-fold cross-fitted, doubly-robust values"]
        for table in self.tables:
            out += ["", *table.lines()]
        return out


def analyze_targeting(spec: ExperimentSpec, source: Source, *, engine: Engine | str | None = None,
                      draws: int = DRAWS, checked: bool = False) -> TargetingResult:
    """The policy tables of ``spec.targeting`` on per-user rows.

    ``checked``: the rows already passed the spec's data checks (an analysis aggregated them a moment ago), so
    they are not scanned for them again.

    Raises
    ------
    SpecError
        The spec has no ``targeting`` section.
    DataError
        A failed data check, a missing feature column, or too few users to cross-fit.
    """
    if spec.targeting is None:
        raise SpecError(f"{spec.source}: targeting: is required (features known before assignment, and the "
                        "policies to evaluate)")
    table = resolve_engine(engine, source).open(source)
    try:
        if not checked:
            ScanPlan.for_table(spec, table).scan(table)
        frame = table.run(_rows_query(spec, table))
    finally:
        table.close()
    return targeting_from_rows(spec, frame, draws=draws, label=table.label)


def _rows_query(spec: ExperimentSpec, table: Table) -> str:
    """One row per user of control and the treatment: ``__treated``, ``__y<i>`` per metric, the features, and the
    segment columns cast to text as ``seg<i>`` (as the aggregation casts them, so segments are named alike);
    ordered by the unit id when the spec names one, so that the folds (drawn by position) and every number after
    them are the same on every engine and every run (without ids, in the order the engine reads the rows)."""
    t = spec.targeting
    table.require_columns({f: "targeting feature" for f in t.features})
    arm = f"CAST({quote_ident(spec.arm_column)} AS VARCHAR)"
    by_name = {m.name: m for m in spec.metrics}
    select = [f"CASE WHEN {arm} = {quote_literal(t.treatment)} THEN 1 ELSE 0 END AS __treated"]
    for i, name in enumerate(t.metrics):
        value, _ = family_for(by_name[name]).unit_values(by_name[name], table.columns)
        select.append(f"CAST({value} AS DOUBLE) AS __y{i}")
    select += [quote_ident(f) for f in t.features]
    select += [f"CAST({quote_ident(c)} AS VARCHAR) AS seg{i}" for i, c in enumerate(spec.segment_columns)]
    order = f" ORDER BY {quote_ident(spec.unit_column)}" if spec.unit_column else ""
    return (f"SELECT {', '.join(select)} FROM {table.relation} WHERE {arm} IN ({quote_literal(spec.control.name)}, "
            f"{quote_literal(t.treatment)}){order}")


def targeting_from_rows(spec: ExperimentSpec, frame: pd.DataFrame, *, draws: int = DRAWS,
                        label: str = "rows") -> TargetingResult:
    """The policy tables from the rows :func:`analyze_targeting` reads (``__treated``, ``__y<i>``, features,
    ``seg<i>``)."""
    t = spec.targeting
    treated = frame["__treated"].to_numpy().astype(bool)
    per_arm = min(int(treated.sum()), int((~treated).sum()))
    if per_arm < MIN_USERS_PER_FOLD * t.folds:
        raise TooFewUsers(f"{label}: targeting needs at least {MIN_USERS_PER_FOLD * t.folds:,} users in each of "
                        f"{spec.control.name!r} and {t.treatment!r} to cross-fit {t.folds} folds; the smaller has "
                        f"{per_arm:,}")
    X = design(frame, t.features)
    segment = (segment_labels(frame, len(spec.segment_columns)).to_numpy().astype(str) if spec.segment_columns
               else None)
    fold = assign_folds(treated, t.folds, t.seed)
    propensity = float(treated.mean())
    by_name = {m.name: m for m in spec.metrics}
    tables = []
    for i, name in enumerate(t.metrics):
        metric, family = by_name[name], family_for(by_name[name])
        y = frame[f"__y{i}"].to_numpy(float)
        fit = cross_fit(X, y, treated, fold, t.learner, t.seed + 1000 * i)
        scores = dr_scores(y, treated, propensity, fit)
        sign = -1.0 if metric.direction == Direction.DECREASE else 1.0
        p_helps = segment_helps(sign * scores, segment, fold) if segment is not None and t.helps else None
        policies = candidates(fit.uplift, fold, t.top, sign, t.helps, p_helps)
        tables.append(evaluate(scores, policies, fit.uplift, fold, metric=name, unit=family.unit_of(metric),
                               scale=family.unit_scale, sign=sign, estimator="doubly robust (cross-fitted)",
                               level=spec.interval, draws=draws, seed=t.seed + 7 + i, population=t.population,
                               randomised=(y, treated),
                               segment_p_helps=None if p_helps is None else pooled_helps(sign * scores, segment)))
    return TargetingResult(t.treatment, spec.control.name, t.features, str(t.learner), t.folds, tuple(tables))
