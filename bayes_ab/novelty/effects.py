"""The novelty model's answers per treatment arm, and the long-run posterior the decision reads.

With ``novelty: true`` (or ``auto`` once novelty or primacy is likely) the metric's posterior is replaced by
its long-run version: the control arm's draws unchanged, each treatment's mean = control mean x the long-run
ratio exp(tau_inf), in every segment. Effects, sentence and decision then read the long-run lift with no
special case. Segments share the long-run relative lift: the weekly model is fitted on all users.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from bayes_ab.aggregation.panel import weekly_means
from bayes_ab.display import HtmlRepr
from bayes_ab.families import family_for
from bayes_ab.intervals import credible_interval
from bayes_ab.metric import Metric, Novelty
from bayes_ab.novelty.model import CellLifts, NoveltyPosterior, posterior
from bayes_ab.posterior.result import Fit

LIKELY = 0.95
"""P(novelty) or P(primacy) at which ``novelty: auto`` switches to the long-run lift (and the report says
"likely"). Under a constant effect P(novelty) is about uniform, so about 5% of such experiments cross it."""


@dataclass(frozen=True)
class WeekLift:
    """The model's relative lift at one week since exposure, and the lift observed in that week (all
    complete cohorts pooled, without the model)."""

    week: int
    rel_lift: float
    rel_low: float
    rel_high: float
    observed: float
    cohorts: int


@dataclass(frozen=True)
class ArmNovelty(HtmlRepr):
    """One treatment arm: lift by week since exposure, the long-run lift, and which way the effect moves."""

    arm: str
    weeks: tuple[WeekLift, ...]
    long_run: float
    long_run_low: float
    long_run_high: float
    p_novelty: float            # P(effect in the first week > long-run effect)
    p_primacy: float            # P(first week < long run)
    half_life_weeks: float      # posterior median
    cells: int                  # cohort-weeks used
    cohort_lifts: tuple[tuple[str, int, float], ...]    # (cohort start, week, observed lift): cohort curves
    used: bool                  # the long-run lift is the metric's lift

    @property
    def likely(self) -> str | None:
        """"novelty" or "primacy" when its probability reaches :data:`LIKELY`."""
        if self.p_novelty >= LIKELY:
            return "novelty"
        if self.p_primacy >= LIKELY:
            return "primacy"
        return None


@dataclass(frozen=True)
class NoveltyEffects(HtmlRepr):
    """The novelty analysis of one metric: every treatment arm's :class:`ArmNovelty`."""

    metric: str
    interval: float
    arms: tuple[ArmNovelty, ...]
    note: str

    def arm(self, name: str) -> ArmNovelty | None:
        return next((a for a in self.arms if a.arm == name), None)


def cell_lifts(stats: xr.Dataset, arm: str) -> tuple[CellLifts, list[tuple[str, int, float]]]:
    """Log-ratios of ``arm`` to control per complete (cohort, week) with their covariance; cells where an arm's
    mean is 0 (no log-ratio) are left out. Also the observed lifts per cohort and week."""
    mean, cov = weekly_means(stats)
    control, treated = 0, list(stats["arm"].values).index(arm)
    complete = stats["complete"].values
    cells, curves = [], []
    for c in range(stats.sizes["cohort"]):
        for k in range(stats.sizes["week"]):
            if complete[c, k] and mean[control, c, k] > 0 and mean[treated, c, k] > 0:
                cells.append((c, k))
                curves.append((str(stats["cohort_start"].values[c]), k, mean[treated, c, k] / mean[control, c, k] - 1))
    n = len(cells)
    r = np.empty(n)
    V = np.zeros((n, n))
    for i, (c, k) in enumerate(cells):
        r[i] = np.log(mean[treated, c, k]) - np.log(mean[control, c, k])
        for j, (c2, k2) in enumerate(cells):
            if c2 == c:
                V[i, j] = sum(cov[a, c, k, k2] / (mean[a, c, k] * mean[a, c, k2]) for a in (control, treated))
    V += np.eye(n) * 1e-12 * max(np.trace(V) / max(n, 1), 1e-12)     # rounding only; keeps Cholesky happy
    return CellLifts(np.array([c for c, _ in cells]), np.array([k for _, k in cells]), r, V), curves


def analyze_novelty(stats: xr.Dataset, metric: Metric, interval: float, draws: int,
                    seed: int | None) -> tuple[NoveltyEffects, dict[str, NoveltyPosterior]]:
    """The novelty model for every treatment arm of ``metric`` (``stats`` from
    :func:`~bayes_ab.aggregation.panel.novelty_statistics`)."""
    rng = np.random.default_rng(seed)
    arms, posteriors = [], {}
    complete, users, sums = stats["complete"].values, stats["users"].values, stats["sum"].values
    weeks_seen = complete.any(axis=0)
    for arm in list(stats["arm"].values)[1:]:
        cells, curves = cell_lifts(stats, str(arm))
        if len(cells.log_lift) == 0:
            continue
        post = posterior(cells, draws, rng, weeks=int(np.flatnonzero(weeks_seen).max()) + 1)
        posteriors[str(arm)] = post
        treated = list(stats["arm"].values).index(arm)
        week_rows = []
        for k in post.weeks:
            used = np.flatnonzero(complete[:, k])          # the cohorts that have lived week k
            pooled = [sums[a, used, k].sum() / max(users[a, used].sum(), 1) for a in (treated, 0)]
            low, high = credible_interval(np.expm1(post.weekly[:, k]), interval)
            week_rows.append(WeekLift(int(k), float(np.median(np.expm1(post.weekly[:, k]))), float(low), float(high),
                                      float(pooled[0] / pooled[1] - 1) if pooled[1] > 0 else float("nan"), len(used)))
        long_run = np.expm1(post.tau_inf)
        low, high = credible_interval(long_run, interval)
        p_novelty = float(np.mean(post.delta > 0))
        candidate = ArmNovelty(str(arm), tuple(week_rows), float(np.median(long_run)), float(low), float(high),
                               p_novelty, 1.0 - p_novelty, float(np.median(post.half_life)), len(cells.log_lift),
                               tuple(curves), False)
        used = metric.novelty == Novelty.ALWAYS or candidate.likely is not None
        arms.append(replace(candidate, used=used))
    note = (f"effect by week since exposure: exponential approach to a long-run effect, calendar-week effects "
            f"shared by the cohorts, exact posterior on a grid ({draws:,} independent draws)")
    if max(stats["complete"].values.sum(axis=1), default=0) < 2:
        note += "; fewer than two complete weeks in any cohort: the long-run effect is the prior's extrapolation"
    return NoveltyEffects(metric.name, interval, tuple(arms), note), posteriors


def long_run_fit(model: Fit, posteriors: dict[str, NoveltyPosterior], effects: NoveltyEffects) -> Fit:
    """``model`` with each used treatment arm's mean replaced by control x exp(tau_inf) (see module docstring)."""
    used = {a.arm for a in effects.arms if a.used and a.arm in posteriors}
    if not used:
        return model
    mean = model.idata.posterior["mean"]
    chains, draws = mean.sizes["chain"], mean.sizes["draw"]
    control = mean.isel(arm=0)
    bound = family_for(model.metric).max_mean
    replaced = mean.copy()
    for arm in used:
        tau = posteriors[arm].tau_inf
        ratio = np.resize(np.exp(tau), chains * draws).reshape(chains, draws)
        value = control * xr.DataArray(ratio, dims=("chain", "draw"))
        if bound is not None:
            value = value.clip(max=bound)
        replaced.loc[{"arm": arm}] = value.transpose(*[d for d in mean.dims if d != "arm"])
    posterior_group = model.idata.posterior.assign(mean=replaced)
    posterior_group.attrs = {**posterior_group.attrs, "long_run_arms": ",".join(sorted(used))}
    return replace(model, idata=model.idata.with_group("posterior", posterior_group))


__all__ = ["ArmNovelty", "NoveltyEffects", "WeekLift", "analyze_novelty", "cell_lifts", "long_run_fit", "LIKELY"]
