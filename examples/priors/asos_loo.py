"""Does a prior learned from past experiments make early looks more accurate? Leave-one-out on ASOS.

    python examples/priors/asos_loo.py                 # every metric, the model chosen as `priors learn` does
    python examples/priors/asos_loo.py --metrics 1 --choose aic     # faster: the form chosen by AIC

For each metric of the ASOS data set (78 real experiments; 99 treatment arms) and each experiment in turn:
learn the distribution of true relative effects from the *final* estimates of the other 77 experiments
(:func:`bayes_ab.priors.learn_effects`), take the held-out experiment's estimate at its first checkpoint past a
quarter of its duration, and compare three estimates of its final result:

(a) the raw early estimate (relative difference of the means, delta-method standard error);
(b) the posterior under bayes-ab's default prior for a mean metric (effect ~ Normal(0, 0.5 pooled sd),
    i.e. a relative sd of 0.5 * sd / mean: nearly flat at these sample sizes);
(c) the posterior under the learned prior.

Printed per metric: mean squared error against the final estimate, the share of arms where (c) is closer
than (a), and how often the final estimate falls inside each early 90% interval. The final estimate is itself
noisy, so no method can reach zero error; the comparison is between methods on the same targets.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from bayes_ab.priors.learn import EffectDistribution, learn_effects

DATA = Path(__file__).resolve().parents[1] / "data" / "asos_digital_experiments.csv"
EARLY_FRACTION = 0.25
DEFAULT_EFFECT_SD = 0.5       # bayes_ab.metric.EffectPrior().effect_sd: in pooled standard deviations
Z90 = NormalDist().inv_cdf(0.95)


def arm_results(frame: pd.DataFrame, metric: int) -> pd.DataFrame:
    """One row per experiment x treatment arm: early and final relative effect with standard errors."""
    rows = []
    data = frame[frame["metric_id"] == metric]
    for (experiment, variant), arm in data.groupby(["experiment_id", "variant_id"], sort=True):
        arm = arm.sort_values("time_since_start")
        final = arm.iloc[-1]
        early = arm[arm["time_since_start"] >= EARLY_FRACTION * final["time_since_start"]].iloc[0]
        if early.name == final.name:
            continue
        e, f = _relative(early, metric), _relative(final, metric)
        if e is None or f is None:
            continue
        rows.append({"experiment": experiment, "variant": variant, "early": e[0], "early_se": e[1],
                     "early_prior_sd": e[2], "final": f[0], "final_se": f[1]})
    return pd.DataFrame(rows)


def _relative(row: pd.Series, metric: int) -> tuple[float, float, float] | None:
    """Relative difference t / c - 1, its delta-method standard error, and the default prior's sd."""
    mc, mt, nc, nt = row["mean_c"], row["mean_t"], row["count_c"], row["count_t"]
    vc, vt = row["variance_c"], row["variance_t"]
    if metric == 1 and (pd.isna(vc) or pd.isna(vt)):          # binary metric: the variance is p(1 - p)
        vc, vt = mc * (1 - mc), mt * (1 - mt)
    if any(pd.isna(v) for v in (mc, mt, vc, vt)) or mc <= 0 or nc < 2 or nt < 2:
        return None
    ratio = mt / mc
    se = abs(ratio) * np.sqrt(vt / (nt * mt ** 2) + vc / (nc * mc ** 2)) if mt != 0 else np.sqrt(vt / nt) / mc
    pooled_sd = np.sqrt(((nc - 1) * vc + (nt - 1) * vt) / (nc + nt - 2))
    if not (np.isfinite(se) and se > 0):
        return None
    return ratio - 1, float(se), float(DEFAULT_EFFECT_SD * pooled_sd / mc)


def _held_out(args) -> dict:
    arms, experiment, choose = args
    train = arms[arms["experiment"] != experiment]
    learned = learn_effects(train["final"].to_numpy(), train["final_se"].to_numpy(), cross_validate=choose == "loo")
    prior = learned.chosen
    out = []
    for row in arms[arms["experiment"] == experiment].itertuples():
        default = EffectDistribution("normal", 0.0, row.early_prior_sd, None, 0, 0, 0)
        raw = (row.early, row.early - Z90 * row.early_se, row.early + Z90 * row.early_se)
        out.append({"experiment": experiment, "final": row.final, "raw": raw,
                    "default": default.posterior(row.early, row.early_se),
                    "learned": prior.posterior(row.early, row.early_se), "form": prior.form})
    return out


def loo_table(metric: int, choose: str = "loo", workers: int = 2, frame: pd.DataFrame | None = None) -> dict:
    """The leave-one-experiment-out comparison for one ASOS metric (see the module docstring)."""
    frame = pd.read_csv(DATA) if frame is None else frame
    arms = arm_results(frame, metric)
    jobs = [(arms, e, choose) for e in arms["experiment"].unique()]
    with ProcessPoolExecutor(workers) as pool:
        rows = [r for chunk in pool.map(_held_out, jobs) for r in chunk]
    final = np.array([r["final"] for r in rows])
    result = {"metric": metric, "arms": len(rows), "experiments": arms["experiment"].nunique(),
              "student_t_chosen": sum(r["form"] == "student_t" for r in rows) / len(rows)}
    errors = {}
    for method in ("raw", "default", "learned"):
        point = np.array([r[method][0] for r in rows])
        low, high = np.array([r[method][1] for r in rows]), np.array([r[method][2] for r in rows])
        errors[method] = np.abs(point - final)
        result[f"mse_{method}"] = float(np.mean((point - final) ** 2))
        result[f"coverage_{method}"] = float(np.mean((final >= low) & (final <= high)))
    result["learned_beats_raw"] = float(np.mean(errors["learned"] < errors["raw"]))
    result["mse_reduction"] = 1 - result["mse_learned"] / result["mse_raw"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--choose", choices=("loo", "aic"), default="loo",
                        help="how the normal / Student-t form is chosen (loo: as `priors learn` does)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    frame = pd.read_csv(DATA)
    print(f"{'metric':>6} {'arms':>5} {'MSE raw':>10} {'MSE default':>12} {'MSE learned':>12} {'reduction':>9} "
          f"{'learned closer':>14} {'cover raw':>9} {'cover default':>13} {'cover learned':>13} {'t chosen':>8}")
    for metric in args.metrics:
        r = loo_table(metric, args.choose, args.workers, frame)
        print(f"{metric:>6} {r['arms']:>5} {r['mse_raw']:>10.3g} {r['mse_default']:>12.3g} {r['mse_learned']:>12.3g} "
              f"{r['mse_reduction']:>9.0%} {r['learned_beats_raw']:>14.0%} {r['coverage_raw']:>9.0%} "
              f"{r['coverage_default']:>13.0%} {r['coverage_learned']:>13.0%} {r['student_t_chosen']:>8.0%}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
