"""Thresholds chosen for one plan: the least strict ones that keep its error rates on its own simulations.

The default thresholds were tuned on one plan (the push demo: one primary, one guardrail, daily looks for
28 days). Another plan -- more guardrails, another look schedule, other traffic -- repeats its checks another
number of times, and the same thresholds give other error rates. :func:`calibrate` simulates the plan itself
(its metrics, roles, baselines, margins, ramp, looks, traffic and the per-user correlation between its
metrics) and chooses, on those simulated experiments, the least strict

- rollback thresholds (``harm`` and ``severe_harm``, moved together: their tails scaled by one factor) with
  at most 5% of the experiments where nothing changes rolled back (each rate counted with one binomial standard
  error on top, :data:`SAFETY_SE`, so that the thresholds hold on fresh experiments too);
- ``ship_beat`` with at most 5% of them shipped;
- ``guardrails_safe`` with at most 5% of the experiments where one guardrail alone is breached (worse by twice
  its margin while the primaries improve by the planned effect) shipped, for every guardrail.

How. Every scenario is simulated once (:mod:`bayes_ab.stopping.recording`): each experiment runs to its
horizon and every look keeps the numbers the rule compares with its thresholds, so the outcome under any
thresholds is a few array comparisons, exactly the real rule's (a test holds them equal). Each rate is
monotone in its own threshold: a less strict threshold can only make its check end an experiment at an
earlier or the same look. So each threshold is found by bisection on the logarithm of its tail (1 - threshold)
between a strict and a loose end, one after the other: rollbacks first (a rollback should not wait), then
shipping, then the guardrails. The thresholds interact a little -- a ship ends an experiment before a later
look could roll it back -- so the three searches repeat, each from the others' current values, until a pass
changes none of them by more than the search's resolution; each pass can only tighten a threshold whose rate
the others pushed over 5%, and there are finitely many resolvable values, so it stops (at most six passes are
run; the report says if the last one still moved). Found tails are rounded down to two significant digits:
stricter, so the rates stay within target.

The rates are estimates from ``experiments`` simulated experiments per scenario, reported with their Monte
Carlo standard errors; a calibration meets a target on its own simulations, and near the 5% line another
seed can land a point on either side. Use at least 1,000 experiments per scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import SpecError
from bayes_ab.spec import DecisionThresholds, ExperimentSpec, PlanSettings
from bayes_ab.stopping.operating import BREACH, scenarios
from bayes_ab.stopping.recording import Outcomes, RecordedScenario, outcomes, record

TARGET = 0.05
"""False ships, false rollbacks and ships of a breached guardrail: at most this share."""
SAFETY_SE = 1.0
"""A rate counts as within target when it is below it by this many of its binomial standard errors: the
thresholds are then chosen for fresh experiments as much as for the simulated ones (without it, a threshold
fitted to the 5% line lands above it on another seed about half the time)."""
BOUNDS = {"ship": (1e-5, 0.3), "rollback": (1e-3, 5.0), "safe": (1e-4, 0.5)}
"""Search ranges: the tail ``1 - ship_beat`` and ``1 - guardrails_safe``, and the factor on the default
rollback tails (0.01 for ``harm``, 0.1 for ``severe_harm``)."""
STEPS = 14
"""Bisection steps per search: a tail resolved to about 1.5% of itself across the ranges above."""
PASSES = 6


@dataclass(frozen=True)
class Calibration(HtmlRepr):
    """The thresholds a plan's simulations chose, and the rates they give there (and the defaults' rates)."""

    experiment: str
    thresholds: DecisionThresholds
    experiments: int
    seed: int
    rates: dict[str, float]
    """``false_ship``, ``false_rollback``, ``power`` and, per guardrail, ``breach_ship:<name>``."""
    standard_errors: dict[str, float]
    default_rates: dict[str, float]
    ship_day: float
    """Median day a true planned effect ships."""
    converged: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def met(self) -> bool:
        """Whether every error rate is within target on these simulations."""
        return all(v <= TARGET for k, v in self.rates.items() if k != "power")

    def decision_block(self) -> str:
        """The ``decision:`` block to paste into the spec (YAML), with where it came from."""
        t = self.thresholds
        lines = ["decision:"] + [f"  {name}: {getattr(t, name):.6g}"
                                  for name in ("ship_beat", "harm", "severe_harm", "guardrails_safe")]
        return "\n".join(lines + [f'  calibration: "{t.calibration}"'])

    def text(self) -> str:
        r, se, d = self.rates, self.standard_errors, self.default_rates
        lines = [f"Calibration of {self.experiment}: {self.experiments:,} simulated experiments per scenario, "
                 f"seed {self.seed}", "", "rate                        calibrated          default thresholds"]
        for key, label in (("false_ship", "false ship (no effect)"), ("false_rollback", "false rollback (no effect)"),
                           ("power", "ship a planned effect")):
            lines.append(f"{label:27} {r[key]:6.1%} (+/- {se[key]:.1%})    {d[key]:6.1%}")
        for key in sorted(k for k in r if k.startswith("breach_ship:")):
            label = f"ship, {key.split(':', 1)[1]} breached"
            lines.append(f"{label[:27]:27} {r[key]:6.1%} (+/- {se[key]:.1%})    {d[key]:6.1%}")
        lines += ["", f"median day a planned effect ships: {self.ship_day:g}",
                  "targets: false ship, false rollback and every breached guardrail shipped at most "
                  f"{TARGET:.0%} -- {'met' if self.met else 'NOT met'} on these simulations"
                  + ("" if self.converged else " (the search had not settled after its last pass)")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines + ["", "Paste into the spec:", self.decision_block()])


def calibrate(spec: ExperimentSpec, plan: PlanSettings | None = None, *, experiments: int | None = None,
              seed: int = 0, workers: int = 1) -> Calibration:
    """Choose ``ship_beat``, ``harm``, ``severe_harm`` and ``guardrails_safe`` for ``spec``'s plan (see the
    module docstring for the targets and the search).

    Parameters
    ----------
    spec
        Metrics, roles, margins, ramp and the current thresholds (the others are kept).
    plan
        Traffic, baselines (every primary; every guardrail to simulate), effect, horizon, looks, correlation;
        ``spec.plan`` by default.
    experiments, seed, workers
        Simulated experiments per scenario (``plan.experiments`` by default), the seed of the simulated
        worlds, and processes to spread them over.
    """
    plan = plan or spec.plan
    if plan is None:
        raise SpecError(f"{spec.source}: plan: is required to calibrate (daily_users, baseline, effect, ...)")
    wanted = tuple(name for name in scenarios(spec, plan) if name.split(":", 1)[0] in ("no effect", "planned effect",
                                                                                      BREACH))
    runs = record(spec, plan, experiments=experiments, seed=seed, workers=workers, scenario_names=wanted)
    base = spec.decision
    tails = {"ship": 1 - base.ship_beat, "rollback": 1.0, "safe": 1 - base.guardrails_safe}
    breaches = [r for name, r in runs.items() if name.startswith(BREACH)]
    notes = []
    converged = False
    for _ in range(PASSES):
        before = dict(tails)
        tails["rollback"] = _loosest("rollback", tails, lambda t: _rate(runs["no effect"], base, t, "rollback"))
        tails["ship"] = _loosest("ship", tails, lambda t: _rate(runs["no effect"], base, t, "ship"))
        if breaches:
            tails["safe"] = _loosest("safe", tails, lambda t: max(_rate(b, base, t, "ship") for b in breaches))
        if all(abs(math.log(tails[k] / before[k])) < 0.02 for k in tails):
            converged = True
            break
    tails = {k: _round_down(v) for k, v in tails.items()}
    chosen = _thresholds(base, tails)
    if not breaches:
        notes.append("the plan simulates no guardrail (give guardrails a baseline in plan:), so guardrails_safe "
                     "was kept")
    results = {name: outcomes(r, chosen) for name, r in runs.items()}
    defaults = {name: outcomes(r, base) for name, r in runs.items()}
    rates, errors = _rates(results)
    n = runs["no effect"].experiments
    stamp = (f"bayes-ab plan --calibrate, {date.today().isoformat()}, seed {seed}, {n:,} experiments per scenario: "
             f"false ship {rates['false_ship']:.1%} (+/- {errors['false_ship']:.1%}), false rollback "
             f"{rates['false_rollback']:.1%} (+/- {errors['false_rollback']:.1%}), power {rates['power']:.0%}")
    if any(v > TARGET for k, v in rates.items() if k != "power"):
        notes.append("some rate is above target even at the strictest thresholds searched: more traffic, fewer "
                     "looks or a longer minimum exposure at the deciding stage")
    return Calibration(spec.name, replace(chosen, calibration=stamp), n, seed, rates, errors, _rates(defaults)[0],
                       results["planned effect"].median_day("ship"), converged, tuple(notes))


def _thresholds(base: DecisionThresholds, tails: dict[str, float]) -> DecisionThresholds:
    return replace(base, ship_beat=1 - tails["ship"], guardrails_safe=1 - tails["safe"],
                   harm=1 - min(0.01 * tails["rollback"], 0.5), severe_harm=1 - min(0.1 * tails["rollback"], 0.5))


def _rate(run: RecordedScenario, base: DecisionThresholds, tails: dict[str, float], outcome: str) -> float:
    """The share of ``run``'s experiments ending in ``outcome``, plus :data:`SAFETY_SE` standard errors."""
    result = outcomes(run, _thresholds(base, tails))
    return result.rate(outcome) + SAFETY_SE * result.standard_error(outcome)


def _loosest(key: str, tails: dict[str, float], rate) -> float:
    """The largest tail of ``key`` (the others held) whose ``rate`` is at most the target: bisection on log
    tail; the strict end when even that is over target."""
    low, high = (math.log(v) for v in BOUNDS[key])
    if rate({**tails, key: math.exp(high)}) <= TARGET:
        return math.exp(high)
    if rate({**tails, key: math.exp(low)}) > TARGET:
        return math.exp(low)
    for _ in range(STEPS):
        middle = (low + high) / 2
        if rate({**tails, key: math.exp(middle)}) <= TARGET:
            low = middle
        else:
            high = middle
    return math.exp(low)


def _round_down(value: float) -> float:
    """Two significant digits, rounded toward the stricter side (a smaller tail)."""
    if value <= 0:
        return value
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return math.floor(value / scale) * scale


def _rates(results: dict[str, Outcomes]) -> tuple[dict[str, float], dict[str, float]]:
    null, planned = results["no effect"], results["planned effect"]
    rates = {"false_ship": null.rate("ship"), "false_rollback": null.rate("rollback"), "power": planned.rate("ship")}
    errors = {"false_ship": null.standard_error("ship"), "false_rollback": null.standard_error("rollback"),
              "power": planned.standard_error("ship")}
    for name, result in results.items():
        if name.startswith(BREACH):
            key = f"breach_ship:{name.split(': ', 1)[1]}"
            rates[key], errors[key] = result.rate("ship"), result.standard_error("ship")
    return rates, errors


__all__ = ["Calibration", "TARGET", "calibrate"]
