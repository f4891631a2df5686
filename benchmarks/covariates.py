"""Regression adjustment on pre-period covariates (``covariates:``): bias, coverage and variance reduction per family,
a reference (statsmodels OLS) on real data, and what the adjustment buys the ramp rule. Figures go to RESULTS.md
("covariates").

    .venv/bin/python benchmarks/covariates.py [--runs 500] [--model-runs 100] [--plan 500] [--workers 2]
        [--families conversion count mean retention retention_censored] [--skip-hillstrom] [--plans push onboarding]

- runs: per family (conversion at 20%, a heavy-tailed count (negative binomial of shape 0.5, mean 2), a mean), A/A and
  a true +5%, 2,000 users per arm, one covariate of correlation 0.6 with the value and a pure-noise one, aggregated
  by DuckDB and analysed with the flat closed form on the effective cells: the adjusted difference's mean error in
  Monte Carlo SEs, its 90% coverage, and its variance over the experiments against the unadjusted one's (theory:
  1 - rho^2 = 0.64); targets: within 1 MC SE, 87-93%, within 10%.
- model-runs: the same with the default model (exact integration or NUTS, effect prior) on +5%: coverage and error.
- Hillstrom: the e-mail campaign's visit, conversion and spend adjusted for history, recency, mens, womens, newbie
  against OLS with HC2 errors (point gap in posterior sds, variance reduction of each).
- plan: the push plan (20,000 users/day, +5% trade conversion, an opt-out guardrail) simulated with a covariate of
  correlation 0.5 on trade conversion and without it, the default rule: median ship day, false-ship and
  false-rollback rates; the same for the onboarding plan (4,000 users/day, +5% D7 retention, a covariate of
  correlation 0.45 with retained-or-not).
- retention runs: ``retention`` with every user observed 30 days, ``retention_censored`` with 0 to 20 days (a third
  censored before day 7), where the theory's ``1 - rho^2`` no longer applies and the variance ratio is held against
  the residual share the analysis reports (``reported``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bayes_ab.aggregation import aggregate  # noqa: E402
from bayes_ab.families import family_for  # noqa: E402
from bayes_ab.families.covariates import CovariateTruth, adjustment  # noqa: E402
from bayes_ab.metric import Baseline  # noqa: E402
from bayes_ab.posterior.fit import fit  # noqa: E402
from bayes_ab.sampling import Backend  # noqa: E402
from bayes_ab.spec import SamplerSettings, load_spec, parse_spec  # noqa: E402
from bayes_ab.stopping import compare_rules  # noqa: E402
from bayes_ab.stopping.generate import truth  # noqa: E402

FLAT = SamplerSettings(backend=Backend.CONJUGATE, draws=2000, chains=2, seed=3)
MODEL = SamplerSettings(draws=1000, tune=1000, chains=2, seed=3)
FAMILIES = {"conversion": ({"family": "conversion"}, Baseline(0.2)),
            "count": ({"family": "count"}, Baseline(2.0, 0.5)),
            "mean": ({"family": "mean"}, Baseline(10.0, 6.0)),
            "retention": ({"family": "retention", "observed_column": "seen", "horizon": 7, "max_day": 14},
                          Baseline(0.4)),
            "retention_censored": ({"family": "retention", "observed_column": "seen", "horizon": 7, "max_day": 14},
                                   Baseline(0.4))}
CENSORED_DAYS = 21
"""``retention_censored``: each user observed for 0 to 20 whole days (uniform, an exposure spread over three weeks):
a third of the users are censored before the horizon."""
RHO, USERS = 0.6, 2000


def spec_for(family: str):
    fields, _ = FAMILIES[family]
    return parse_spec({"name": "covariates", "arm_column": "arm",
                       "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                       "metrics": [{"name": "y", "column": "y", "covariates": ["pre", "noise"], **fields}]})


def users(family: str, lift: float, seed: int) -> pd.DataFrame:
    spec = spec_for(family)
    rng = np.random.default_rng(seed)
    metric = spec.metrics[0]
    drawn = CovariateTruth(truth(metric, FAMILIES[family][1], [1.0, 1.0 + lift]), family_for(metric), RHO,
                           np.random.default_rng(1))
    arms = np.repeat([0, 1], USERS)
    values = drawn.draw(rng, arms)
    frame = pd.DataFrame({"arm": np.where(arms == 0, "control", "treatment"), "y": values[:, 0],
                          "pre": values[:, 1], "noise": rng.standard_normal(arms.size)})
    if family.startswith("retention"):         # churn days, censored by the days each user has been observed
        frame["seen"] = (rng.integers(0, CENSORED_DAYS, arms.size) if family == "retention_censored"
                         else np.full(arms.size, 30))
        frame["y"] = frame["y"].where(frame["y"] <= frame["seen"])
    return frame


def difference(stats, metric, sampler) -> np.ndarray:
    posterior = fit(stats, metric, sampler).overall_mean
    return (posterior.isel(arm=1) - posterior.isel(arm=0)).values.ravel()


def simulated(family: str, lift: float, runs: int, sampler: SamplerSettings) -> dict:
    spec = spec_for(family)
    metric = spec.metrics[0]
    true = FAMILIES[family][1].value * lift
    adjusted, raw, covered, reported = [], [], 0, []
    for seed in range(runs):
        stats = aggregate(spec, users(family, lift, 10_000 + seed))["y"]
        d = difference(stats, metric, sampler)
        low, high = np.quantile(d, [0.05, 0.95])
        covered += low <= true <= high
        adjusted.append(d.mean())
        raw.append(difference(stats, replace(metric, covariates=()), FLAT).mean())
        reported.append(adjustment(family_for(metric), stats, metric).residual_share)
    adjusted, raw = np.array(adjusted), np.array(raw)
    # theory: 1 - rho^2 for a covariate correlated by rho with the value (without censoring); the analysis reports
    # its own share 1 - R^2, which under censoring is the only statement there is
    return {"family": family, "lift": lift, "runs": runs,
            "error_in_mc_se": (adjusted.mean() - true) / (adjusted.std() / np.sqrt(runs)),
            "unadjusted_error_in_mc_se": (raw.mean() - true) / (raw.std() / np.sqrt(runs)),
            "coverage": covered / runs, "variance_ratio": adjusted.var() / raw.var(),
            "theory": np.nan if family == "retention_censored" else 1 - RHO ** 2,
            "reported": float(np.mean(reported))}


def hillstrom() -> list[dict]:
    import statsmodels.formula.api as smf

    frame = pd.read_csv(ROOT / "examples/data/hillstrom_womens.csv")
    frame = frame[frame["segment"] != "Mens E-Mail"].copy()
    frame["t"] = (frame["segment"] == "Womens E-Mail").astype(int)
    spec = load_spec(ROOT / "examples/hillstrom_cuped/spec.yaml")
    stats = aggregate(spec, frame)
    rows = []
    for metric in spec.metrics:
        d = difference(stats[metric.name], metric, FLAT)
        d0 = difference(stats[metric.name], replace(metric, covariates=()), FLAT)
        ols = smf.ols(f"{metric.column} ~ t + " + " + ".join(c.column for c in metric.covariates), frame).fit(cov_type="HC2")
        plain = smf.ols(f"{metric.column} ~ t", frame).fit(cov_type="HC2")
        found = adjustment(family_for(metric), stats[metric.name], metric)
        rows.append({"metric": metric.name, "adjusted": d.mean(), "sd": d.std(), "ols": ols.params["t"],
                     "gap_in_sd": (d.mean() - ols.params["t"]) / d.std(), "unadjusted": d0.mean(),
                     "reduction": 1 - d.var() / d0.var(), "ols_reduction": 1 - (ols.bse["t"] / plain.bse["t"]) ** 2,
                     "reported_reduction": found.variance_reduction, "correlation": found.correlation})
    return rows


PLANS = {
    "push": {
        "name": "push_covariates", "arm_column": "arm",
        "arms": [{"name": "control", "control": True}, {"name": "push"}],
        "metrics": [{"name": "trade_conversion", "family": "conversion", "column": "traded", "rope": 0.01,
                     "covariates": ["pre_active_days", "pre_trades"], "prior": {"effect_sd": 0.5, "heterogeneity_sd": 0.1}},
                    {"name": "notification_opt_out", "family": "conversion", "column": "opted_out",
                     "direction": "decrease", "role": "guardrail", "rope": 0.02, "margin": 0.1}],
        "plan": {"daily_users": 20000, "days": 28, "effect": 0.05,
                 "baseline": {"trade_conversion": 0.115, "notification_opt_out": 0.0073},
                 "covariate_correlation": {"trade_conversion": 0.5}}},
    # examples/onboarding/cuped.yaml's metrics: D7 retention adjusted for pre-period sessions (0.45 with retained)
    "onboarding": {
        "name": "onboarding_covariates", "arm_column": "arm",
        "arms": [{"name": "control", "control": True}, {"name": "new_onboarding"}],
        "metrics": [{"name": "retention_d7", "family": "retention", "column": "churn_day",
                     "observed_column": "days_observed", "horizon": 7, "max_day": 21, "covariates": ["pre_sessions"]},
                    {"name": "crash_rate", "family": "conversion", "column": "crashed", "direction": "decrease",
                     "role": "guardrail", "margin": 0.25},
                    {"name": "support_tickets", "family": "count", "column": "support_tickets",
                     "direction": "decrease", "role": "guardrail", "margin": 0.25}],
        "plan": {"daily_users": 4000, "days": 28, "effect": 0.05,
                 "baseline": {"retention_d7": 0.478, "crash_rate": 0.02,
                              "support_tickets": {"mean": 0.1, "dispersion": 0.5}},
                 "covariate_correlation": {"retention_d7": 0.45}}},
}


def plan(name: str, experiments: int, workers: int) -> list[dict]:
    spec = parse_spec(PLANS[name])
    rows = []
    planned = next(iter(spec.plan.covariate_correlation.values()))
    for label, settings in ((f"covariate {planned:g}", spec.plan),
                            ("no covariate", replace(spec.plan, covariate_correlation={}))):
        figures = compare_rules(spec, settings, rules=("default",), experiments=experiments, workers=workers).rules[0]
        for scenario in figures.scenarios:
            ships = [d for o, d in zip(scenario.stop_outcomes, scenario.stop_days) if o == "ship"]
            rollbacks = [d for o, d in zip(scenario.stop_outcomes, scenario.stop_days) if o == "rollback"]
            rows.append({"plan": f"{name}, {label}", "scenario": scenario.name, "ship": scenario.rates.get("ship", 0.0),
                         "rollback": scenario.rates.get("rollback", 0.0),
                         "ship_day_median": float(np.median(ships)) if ships else float("nan"),
                         "rollback_day_median": float(np.median(rollbacks)) if rollbacks else float("nan")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--model-runs", type=int, default=100)
    parser.add_argument("--plan", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--skip-hillstrom", action="store_true")
    parser.add_argument("--plans", nargs="+", default=list(PLANS), choices=list(PLANS))
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    started = time.time()
    if args.runs:
        table = pd.DataFrame([simulated(f, lift, args.runs, FLAT) for f in args.families for lift in (0.0, 0.05)])
        print(f"closed form on effective cells, {args.runs} experiments each:\n{table.round(3).to_string(index=False)}\n")
    if args.model_runs:
        # the variance ratio is left out: the model's adjusted estimate carries the effect prior, the unadjusted none
        table = pd.DataFrame([simulated(f, 0.05, args.model_runs, MODEL) for f in args.families]).drop(
            columns=["unadjusted_error_in_mc_se", "variance_ratio", "theory", "reported"])
        print(f"default model, {args.model_runs} experiments each:\n{table.round(3).to_string(index=False)}\n")
    if not args.skip_hillstrom:
        print(f"Hillstrom against OLS (HC2):\n{pd.DataFrame(hillstrom()).round(4).to_string(index=False)}\n")
    if args.plan:
        table = pd.DataFrame([row for name in args.plans for row in plan(name, args.plan, args.workers)])
        print(f"push plan, default rule, {args.plan} experiments per scenario:\n{table.to_string(index=False)}\n")
    print(f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
