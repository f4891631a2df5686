"""Planning a switchback experiment: a randomised schedule, and the power of the cell-means regression.

Schedule: in every period, a random ``share`` of the units is on treatment (the same count every period), drawn
independently period by period. Balancing within each period makes the period effects (the daily cycle, an
outage) cancel out of the effect exactly, instead of adding their variance to it: the time effects' variance then
does not enter the plan at all, only the cell noise left around the unit and period effects (``cell_sd``). A unit
switches in a period with probability ``2 s (1 - s)`` (1/2 at s = 1/2), so a washout of ``w`` periods leaves about
``(1 - 2 s (1 - s))^w`` of the cells to the effect.

Power: the effect's estimate has the standard error ``cell_sd / sqrt(I)``, ``I`` the sum of squares of the
treatment indicator left after the unit and period effects on the analysed cells (computed on seeded schedules of
the design: about ``N s (1 - s)`` for ``N`` balanced cells, less once a washout breaks the balance); the rule
ships when P(beat control) reaches ``ship_beat``, a noncentral-t tail with the regression's residual degrees of
freedom. :func:`simulated_power` runs the real model on simulated
cells with a daily cycle, unit levels and carry-over to check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats as distributions

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import SpecError
from bayes_ab.families.switchback import Switchback, sample_switchback, switchback_stats
from bayes_ab.metric import Metric
from bayes_ab.planning.search import smallest_reaching
from bayes_ab.sampling import SamplerSettings

MAX_PERIODS = 100_000


def schedule(units: list[str], periods: int, seed: int = 0, share: float = 0.5,
             arms: tuple[str, str] = ("control", "treatment")) -> pd.DataFrame:
    """A randomised switchback schedule: per period, ``round(share x units)`` units on treatment, drawn anew.

    Returns
    -------
    DataFrame
        ``unit``, ``period`` (0, 1, ...) and ``arm``, one row per unit and period.
    """
    if len(units) < 2 or len(set(units)) != len(units):
        raise SpecError(f"a switchback schedule needs two or more distinct units, got {units!r}")
    if periods < 2:
        raise SpecError(f"a switchback schedule needs two or more periods, got {periods}")
    treated = round(share * len(units))
    if not 0 < treated < len(units):
        raise SpecError(f"share {share}: with {len(units)} units every period would be all on one arm")
    rng = np.random.default_rng(seed)
    on = np.zeros((periods, len(units)), dtype=bool)
    for p in range(periods):
        on[p, rng.choice(len(units), treated, replace=False)] = True
    return pd.DataFrame({"unit": np.tile(units, periods), "period": np.repeat(np.arange(periods), len(units)),
                         "arm": np.where(on.ravel(), arms[1], arms[0])})


def kept_share(washout: int, share: float = 0.5) -> float:
    """Expected share of cells outside the washout: no switch in the last ``washout`` periods."""
    return (1 - 2 * share * (1 - share)) ** washout


def switchback_power(baseline: float, cell_sd: float, effect: float, units: int, periods: int, ship_beat: float,
                     washout: int = 0, share: float = 0.5) -> float:
    """Probability that P(beat control) reaches ``ship_beat`` at the end for a true relative ``effect`` (in the good
    direction) of a metric whose control mean per row is ``baseline``."""
    cells, information = design_information(units, periods, washout, share)
    dof = cells - units - periods
    if dof < 2 or information <= 0:
        return 0.0
    se = cell_sd / math.sqrt(information)
    noncentral = abs(effect * baseline) / se
    return float(distributions.nct.sf(distributions.t.ppf(ship_beat, dof), dof, noncentral))


@lru_cache(maxsize=4096)
def design_information(units: int, periods: int, washout: int, share: float = 0.5,
                       schedules: int = 3) -> tuple[float, float]:
    """Analysed cells and the information about the effect per unit of cell variance (``1 / se^2`` at ``cell_sd``
    1): the sum of squares of the treatment indicator left after the unit and period effects, on the cells outside
    the washout, averaged over ``schedules`` seeded :func:`schedule` draws (what the schedule's randomness leaves is
    a property of the design, computed rather than approximated)."""
    found_cells, found_information = [], []
    names = [f"u{k}" for k in range(units)]
    for seed in range(schedules):
        plan = schedule(names, periods, seed=seed, share=share)
        treated = (plan["arm"] != "control").to_numpy().reshape(periods, units).astype(float)
        since = np.full((periods, units), 10 ** 9)
        for p in range(1, periods):
            since[p] = np.where(treated[p] != treated[p - 1], 0, np.minimum(since[p - 1] + 1, 10 ** 9))
        keep = (since >= washout).ravel()
        unit = np.tile(np.arange(units), periods)[keep]
        period = np.repeat(np.arange(periods), units)[keep]
        t = treated.ravel()[keep]
        effects = np.column_stack([(unit[:, None] == np.arange(units)[None, :]).astype(float),
                                   (period[:, None] == np.unique(period)[None, 1:]).astype(float)])
        fitted = effects @ np.linalg.lstsq(effects, t, rcond=None)[0]
        found_cells.append(float(keep.sum()))
        found_information.append(float(((t - fitted) ** 2).sum()))
    return float(np.mean(found_cells)), float(np.mean(found_information))


@dataclass(frozen=True)
class SwitchbackPlan(HtmlRepr):
    """What a switchback of one metric can detect over a number of units and periods, and what it needs."""

    metric: str
    baseline: float
    cell_sd: float
    effect: float
    units: int
    periods: int
    washout: int
    ship_beat: float
    power: float
    periods_needed: int | None        # at these units, for ``target``; None: more than MAX_PERIODS
    target: float

    def text(self) -> str:
        kept = kept_share(self.washout)
        needed = (f"{self.periods_needed:,} periods" if self.periods_needed is not None
                  else f"more than {MAX_PERIODS:,} periods")
        return (f"Switchback plan for {self.metric}: baseline {self.baseline:g} per row, cell sd {self.cell_sd:g}, "
                f"lift {self.effect:+.1%}\n"
                f"  {self.units} units x {self.periods} periods, washout {self.washout} (about {kept:.0%} of the cells "
                f"analysed): power {self.power:.0%} to ship (P(beat control) >= {self.ship_beat:.0%} at the end)\n"
                f"  needed for {self.target:.0%} power with {self.units} units: {needed}; time effects shared by all "
                "units (a daily cycle) cost nothing once every period is balanced -- only the cell noise counts")

    def document(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "cell_sd": self.cell_sd, "effect": self.effect,
                "units": self.units, "periods": self.periods, "washout": self.washout, "ship_beat": self.ship_beat,
                "power": self.power, "periods_needed": self.periods_needed, "target_power": self.target}


def plan_switchback(metric: str, baseline: float, cell_sd: float, effect: float, units: int, periods: int,
                    ship_beat: float, washout: int = 0, target: float = 0.8) -> SwitchbackPlan:
    """Power at ``units`` x ``periods`` and the periods ``target`` power needs at those units."""
    if units < 2 or periods < 2:
        raise SpecError(f"a switchback needs 2 or more units and periods, got {units} and {periods}")
    if effect <= 0 or cell_sd <= 0 or baseline <= 0:
        raise SpecError("effect, cell sd and baseline must be positive")

    def power(p: int) -> float:
        return switchback_power(baseline, cell_sd, effect, units, p, ship_beat, washout)

    return SwitchbackPlan(metric, baseline, cell_sd, effect, units, periods, washout, ship_beat, power(periods),
                          smallest_reaching(power, target, MAX_PERIODS), target)


def simulate_cells(rng: np.random.Generator, units: int, periods: int, baseline: float, cell_sd: float, lift: float,
                   carry: float = 0.0, cycle: float = 0.0, unit_sd: float = 0.0, rows: int = 100) -> pd.DataFrame:
    """Cells of a simulated switchback on :func:`schedule`: unit levels (sd ``unit_sd`` x baseline), a daily cycle of
    amplitude ``cycle`` x baseline (24 periods a day), cell noise ``cell_sd``, the effect ``lift`` x baseline, and in
    the period right after a switch the share ``carry`` of the previous arm's effect lingering. Columns: unit, period,
    arm, total, weight (``rows`` per cell)."""
    plan = schedule([f"u{k}" for k in range(units)], periods, seed=int(rng.integers(2 ** 31)))
    treated = (plan["arm"] == "treatment").to_numpy().reshape(periods, units).astype(float)
    previous = np.vstack([treated[:1], treated[:-1]])
    switched = previous != treated
    level = baseline * (1 + unit_sd * rng.standard_normal(units))[None, :]
    daily = baseline * cycle * np.sin(2 * np.pi * np.arange(periods) / 24)[:, None]
    effect = lift * baseline * (treated + carry * switched * (previous - treated))
    mean = level + daily + effect + cell_sd * rng.standard_normal((periods, units))
    return pd.DataFrame({"unit": plan["unit"], "period": plan["period"], "arm": plan["arm"],
                         "total": (mean * rows).ravel(), "weight": float(rows)})


def simulated_power(baseline: float, cell_sd: float, effect: float, units: int, periods: int, ship_beat: float,
                    experiments: int, washout: int = 0, carry: float = 0.0, seed: int = 0) -> float:
    """Share of simulated switchbacks (:func:`simulate_cells`, daily cycle and unit levels included) whose analysis --
    the switchback family's flat-prior posterior -- reaches P(beat control) >= ``ship_beat``."""
    rng = np.random.default_rng(seed)
    metric = Metric("metric", Switchback.name)
    shipped = 0
    for _ in range(experiments):
        cells = simulate_cells(rng, units, periods, baseline, cell_sd, effect, carry=carry, cycle=0.3, unit_sd=0.2)
        units_list = sorted(cells["unit"].unique())
        stats = switchback_stats("metric", ["control", "treatment"], units_list,
                                 cells["unit"].map({u: k for k, u in enumerate(units_list)}).to_numpy(),
                                 cells["period"].to_numpy(), (cells["arm"] == "treatment").to_numpy().astype(int),
                                 cells["total"].to_numpy(), cells["weight"].to_numpy(), washout)
        draws = sample_switchback(stats, metric, SamplerSettings(chains=1, draws=2000,
                                                                 seed=int(rng.integers(2 ** 31))))[0].posterior["mean"]
        beat = float((draws.isel(arm=1) > draws.isel(arm=0)).mean())
        shipped += beat >= ship_beat
    return shipped / experiments
