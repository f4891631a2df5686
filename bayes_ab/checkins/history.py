"""The trajectory of an experiment's looks: P(beat control), expected loss, lift interval, action."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bayes_ab.checkins.checkin import ledger_for
from bayes_ab.checkins.ledger import LookRecord
from bayes_ab import format as fmt
from bayes_ab.errors import LedgerError
from bayes_ab.metric import Role


@dataclass(frozen=True)
class History:
    """Every look of one experiment, oldest first."""

    experiment: str
    looks: tuple[LookRecord, ...]
    head: str | None = None
    """The chain digest of the last look (see :mod:`bayes_ab.checkins.ledger`): keep it elsewhere to detect a
    ledger rewritten together with its seal."""

    def to_pandas(self, roles: tuple[str, ...] = (Role.PRIMARY,)) -> pd.DataFrame:
        """One row per look x metric (of the given roles) x treatment arm, overall effects."""
        rows = []
        for look in self.looks:
            payload = look.payload
            rec = payload.get("recommendation") or {}
            for name, metric in payload["metrics"].items():
                if metric["role"] not in roles:
                    continue
                for row in metric["rows"]:
                    if not row["is_overall"] or row["is_control"]:
                        continue
                    rows.append({
                        "look": look.look, "as_of": look.as_of, "users": payload["users"],
                        "stage": payload.get("stage"), "metric": name, "arm": row["arm"],
                        "p_beat_control": row["p_beat_control"], "loss_ship_rel": row["loss_ship_rel"],
                        "rel_lift": row["rel_lift"], "rel_low": row["rel_low"], "rel_high": row["rel_high"],
                        "diagnostics_passed": metric["diagnostics"]["passed"],
                        "action": rec.get("action"),
                    })
        return pd.DataFrame(rows)

    def text(self) -> str:
        """The trajectory as a console table, one line per look and primary metric."""
        table = self.to_pandas()
        if table.empty:
            return f"Experiment {self.experiment}: no looks recorded."
        lines = [f"Experiment {self.experiment}: {len(self.looks)} look(s); ledger chain head {self.head or '-'}",
                 f"{'look':>4}  {'as of':<20} {'users':>11}  {'metric':<20} {'arm':<14} {'P(beat)':>8}  "
                 f"{'loss if shipped':>15}  {'lift (interval)':<28} action"]
        for r in table.itertuples():
            interval = f"{fmt.relative(r.rel_lift)} ({fmt.relative(r.rel_low)} to {fmt.relative(r.rel_high)})"
            flag = "" if r.diagnostics_passed else " [fit failed diagnostics]"
            lines.append(f"{r.look:>4}  {r.as_of:<20} {r.users:>11,}  {r.metric:<20} {r.arm:<14} "
                         f"{fmt.probability(r.p_beat_control):>8}  {r.loss_ship_rel:>15.3%}  {interval:<28} "
                         f"{r.action or '-'}{flag}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (f"<p>Experiment {html.escape(self.experiment)}: {len(self.looks)} look(s)</p>"
                + self.to_pandas().to_html(index=False, escape=True, float_format=lambda x: f"{x:.4g}"))


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
