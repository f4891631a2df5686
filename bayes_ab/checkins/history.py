"""The trajectory of an experiment's looks: P(beat control), expected loss, lift interval, action."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayes_ab.checkins.checkin import ledger_for
from bayes_ab.checkins.ledger import LookRecord
from bayes_ab import format as fmt
from bayes_ab.documents import document
from bayes_ab.errors import LedgerError
from bayes_ab.families import registry
from bayes_ab.metric import Role


@dataclass(frozen=True)
class History:
    """Every look of one experiment, oldest first."""

    experiment: str
    looks: tuple[LookRecord, ...]
    head: str | None = None
    """The chain digest of the last look (see :mod:`bayes_ab.checkins.ledger`): keep it elsewhere to detect a
    ledger rewritten together with its seal."""

    def to_pandas(self, roles: tuple[str, ...] = (Role.PRIMARY,), metrics: tuple[str, ...] = ()) -> pd.DataFrame:
        """One row per look x metric (of the given roles, or the named ``metrics``) x treatment arm, overall
        effects."""
        rows = []
        for look in self.looks:
            payload = look.payload
            rec = payload.get("recommendation") or {}
            for name, metric in payload["metrics"].items():
                if (name not in metrics) if metrics else (metric["role"] not in roles):
                    continue
                for row in metric["rows"]:
                    if not row["is_overall"] or row["is_control"]:
                        continue
                    rows.append({
                        "look": look.look, "as_of": look.as_of, "users": payload["users"],
                        "stage": payload.get("stage"), "days": payload.get("days"), "metric": name,
                        "role": metric["role"], "arm": row["arm"],
                        "p_beat_control": row["p_beat_control"], "loss_ship_rel": row["loss_ship_rel"],
                        "loss_ship_abs": row["loss_ship_abs"], "family": metric.get("family"),
                        "unit": metric.get("unit"),
                        "rel_lift": row["rel_lift"], "rel_low": row["rel_low"], "rel_high": row["rel_high"],
                        "p_beyond_margin": row.get("p_beyond_margin"),
                        "diagnostics_passed": metric["diagnostics"]["passed"],
                        "action": rec.get("action"),
                    })
        return pd.DataFrame(rows)

    def known_metrics(self) -> set[str]:
        """Every metric name recorded in any look."""
        return {name for look in self.looks for name in look.payload["metrics"]}

    def text(self, metrics: tuple[str, ...] = ()) -> str:
        """The trajectory as a console table, one line per look, metric (primaries and guardrails, or the named
        ``metrics``) and treatment arm, with the stage. A guardrail's line gives P(worse by more than its margin),
        what the rule reads, where a primary's gives P(beat control)."""
        table = self.to_pandas((Role.PRIMARY, Role.GUARDRAIL), metrics)
        if table.empty:
            return f"Experiment {self.experiment}: no looks recorded."
        lines = [f"Experiment {self.experiment}: {len(self.looks)} look(s); ledger chain head {self.head or '-'}",
                 f"{'look':>4}  {'as of':<20} {'stage':>6} {'users':>11}  {'metric':<22} {'arm':<12} "
                 f"{'reads':<22} {'loss if shipped':<36}  {'lift (interval)':<28} action"]
        for r in table.itertuples():
            interval = f"{fmt.relative(r.rel_lift)} ({fmt.relative(r.rel_low)} to {fmt.relative(r.rel_high)})"
            flag = "" if r.diagnostics_passed else " [fit failed diagnostics]"
            stage = "-" if r.stage is None or r.stage != r.stage else f"{r.stage:g}%"
            if r.role == Role.GUARDRAIL and r.p_beyond_margin is not None and r.p_beyond_margin == r.p_beyond_margin:
                reads = f"P(beyond margin) {fmt.probability(r.p_beyond_margin)}"
            else:
                reads = f"P(beat) {fmt.probability(r.p_beat_control)}"
            lines.append(f"{r.look:>4}  {r.as_of:<20} {stage:>6} {r.users:>11,}  {r.metric:<22} {r.arm:<12} "
                         f"{reads:<22} {loss_if_shipped(r._asdict()):<36}  {interval:<28} {r.action or '-'}{flag}")
        return "\n".join(lines)

    def document(self, metrics: tuple[str, ...] = ()) -> dict:
        """The looks as the versioned ``bayes-ab/history`` document (:mod:`bayes_ab.documents`): per look its
        time, stage, days, users, action and data fingerprint, and per metric (all, or the named ``metrics``)
        its role, whether its fit passed and every arm's overall effect row."""
        looks = []
        for look in self.looks:
            payload = look.payload
            looks.append({
                "look": look.look, "as_of": look.as_of, "recorded_at": look.recorded_at,
                "fingerprint": look.fingerprint, "action": look.action, "stage": payload.get("stage"),
                "days": payload.get("days"), "users": payload.get("users"),
                "recommendation": payload.get("recommendation"),
                "metrics": {name: {"family": m.get("family"), "role": m["role"], "direction": m.get("direction"),
                                   "diagnostics_passed": m["diagnostics"]["passed"],
                                   "effects": [r for r in m["rows"] if r["is_overall"]]}
                            for name, m in payload["metrics"].items() if not metrics or name in metrics},
            })
        return document("history", {"experiment": self.experiment, "head": self.head, "looks": looks})

    def _repr_html_(self) -> str:
        return (f"<p>Experiment {html.escape(self.experiment)}: {len(self.looks)} look(s)</p>"
                + self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}"))


def loss_if_shipped(row: dict) -> str:
    """The expected loss if shipped of a :meth:`History.to_pandas` row as the console, the report and the card
    show it: absolute, in the metric's display unit (a look recorded before looks named their unit takes the
    family's)."""
    family = registry().get(row["family"])
    if family is None:
        return f"{row['loss_ship_abs']:.2g}"
    unit = row["unit"] if isinstance(row["unit"], str) else family.unit
    return f"{family.format_number(row['loss_ship_abs'])} {unit}"


def history(experiment: str, models_dir: str | Path = "models") -> History:
    """The looks recorded for ``experiment`` under ``models_dir``.

    Raises
    ------
    LedgerError
        No ledger exists for the experiment, or it is foreign or corrupted.
    """
    ledger = ledger_for(experiment, models_dir)
    if not ledger.path.exists():
        raise LedgerError(f"{ledger.path}: no check-ins recorded for experiment {experiment!r}")
    looks = tuple(ledger.looks())
    return History(experiment, looks, ledger.head.digest if ledger.head else None)
