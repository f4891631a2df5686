"""Retention milestones (D1/D7/D30...) and curves from a retention fit's ``survival`` draws."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_ab.effects.compute import hdi
from bayes_ab.models.result import Fit

MILESTONES = (1, 7, 30)


def retention_milestones(fit: Fit, days: tuple[int, ...] = MILESTONES, interval: float = 0.9) -> pd.DataFrame:
    """Overall (traffic-weighted) retention on each day in ``days`` per arm, with HDI, relative lift
    against control and P(beat control). Days beyond the fitted curve are left out.
    """
    survival = fit.idata.posterior["survival"]
    weights = fit.stats["n"].sum("arm") / fit.stats["n"].sum()
    overall = (survival * weights).sum("segment").transpose("chain", "draw", "arm", "day")
    draws = overall.values.reshape(-1, overall.sizes["arm"], overall.sizes["day"])
    arms = [str(a) for a in overall["arm"].values]
    day_index = {int(d): i for i, d in enumerate(overall["day"].values)}
    rows = []
    for day in (d for d in days if d in day_index):
        values = draws[:, :, day_index[day]]
        for k, arm in enumerate(arms):
            low, high = hdi(values[:, k], interval)
            rel = values[:, k] / values[:, 0] - 1
            rows.append({
                "day": day, "arm": arm, "retention": float(np.median(values[:, k])),
                "low": low, "high": high,
                "rel_lift": np.nan if k == 0 else float(np.median(rel)),
                "p_beat_control": np.nan if k == 0 else float(np.mean(values[:, k] > values[:, 0])),
            })
    return pd.DataFrame(rows)


def retention_curve(fit: Fit, interval: float = 0.9) -> pd.DataFrame:
    """The whole overall retention curve per arm and day, with HDI bands (for plots)."""
    last = int(fit.idata.posterior["day"].values.max())
    return retention_milestones(fit, tuple(range(1, last + 1)), interval)
