"""Planning a cluster-randomised experiment: the design effect, the power at a number of clusters, and the
clusters a lift needs.

With ``m`` users per cluster and intra-cluster correlation ``rho``, an arm's mean over ``k`` clusters has the
variance of ``k m / DE`` independent users, ``DE = 1 + ((1 + cv^2) m - 1) rho`` (the design effect; ``cv`` is
the coefficient of variation of cluster sizes, which costs power: Eldridge, Ashby and Kerry 2006, Int J
Epidemiol 35:1292). The analysis (:mod:`bayes_ab.families.clustered`) reads each arm as a ratio of cluster
totals with a flat-prior Student-t of ``k - 1`` degrees of freedom per arm; the rule ships when P(beat control)
reaches ``ship_beat``. At a fixed horizon that happens when the log-ratio difference over its standard error
exceeds the t quantile of ``ship_beat``, so the power is a noncentral-t tail with ``2k - 2`` degrees of
freedom and noncentrality ``log(1 + effect) / se``. :func:`simulated_power` runs the real model on simulated
clusters (Beta-distributed cluster rates with the given ``rho``) to check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy import stats as distributions

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import SpecError
from bayes_ab.families import family_for
from bayes_ab.families.clustered import clustered_metric
from bayes_ab.metric import Baseline, Metric
from bayes_ab.planning.search import smallest_reaching

MIN_CLUSTERS_PER_ARM = 10
MAX_CLUSTERS_PER_ARM = 1_000_000


def design_effect(mean_size: float, icc: float, size_cv: float = 0.0) -> float:
    """``1 + ((1 + cv^2) m - 1) rho``: how many times an arm's variance exceeds that of as many independent users."""
    return 1.0 + ((1.0 + size_cv ** 2) * mean_size - 1.0) * icc


def log_lift_se(metric: Metric, baseline: Baseline, effect: float, clusters_per_arm: float, mean_size: float,
                icc: float, size_cv: float = 0.0) -> float:
    """Standard error of the log-ratio difference (treatment over control) with ``clusters_per_arm`` each."""
    family = family_for(metric)
    deff = design_effect(mean_size, icc, size_cv)
    total = 0.0
    for mean in (baseline.value, baseline.value * (1.0 + effect)):
        total += family.unit_variance(metric, baseline, mean) * deff / (clusters_per_arm * mean_size) / mean ** 2
    return math.sqrt(total)


def cluster_power(metric: Metric, baseline: Baseline, effect: float, clusters_per_arm: int, mean_size: float,
                  icc: float, ship_beat: float, size_cv: float = 0.0) -> float:
    """Probability that P(beat control) reaches ``ship_beat`` at the end, for a true relative ``effect`` in the
    good direction (noncentral t, ``2k - 2`` degrees of freedom)."""
    if clusters_per_arm < 2:
        return 0.0
    change = effect if metric.increase_is_good else -effect
    se = log_lift_se(metric, baseline, change, clusters_per_arm, mean_size, icc, size_cv)
    noncentral = abs(math.log1p(change)) / se
    return float(distributions.nct.sf(posterior_threshold(clusters_per_arm, ship_beat), 2 * clusters_per_arm - 2,
                                      noncentral))


def posterior_threshold(clusters_per_arm: int, ship_beat: float) -> float:
    """The estimated difference over its standard error at which P(beat control) reaches ``ship_beat``: the
    posterior is the difference of two arms' Student-t (``k - 1`` degrees of freedom each, equal scales), whose
    quantile sits above one t of ``2k - 2`` degrees of freedom when k is small. By numerical convolution."""
    dof = clusters_per_arm - 1
    t = distributions.t(dof)

    def beyond(x: float) -> float:     # P((T1 + T2) / sqrt(2) > x)
        return integrate.quad(lambda u: t.pdf(u) * t.sf(math.sqrt(2) * x - u), -np.inf, np.inf)[0]

    return float(optimize.brentq(lambda x: beyond(x) - (1 - ship_beat), 0.0, 50.0))


@dataclass(frozen=True)
class ClusterPlan(HtmlRepr):
    """What a cluster-randomised experiment of one primary metric can detect, and what it needs."""

    metric: str
    baseline: float
    effect: float
    icc: float
    mean_size: float
    size_cv: float
    ship_beat: float
    design_effect: float
    clusters_per_arm: int | None          # available (given), else None
    power: float | None                   # at the available clusters
    needed_per_arm: int | None            # for ``target`` power; None: more than MAX_CLUSTERS_PER_ARM
    target: float
    interval_half_width: float | None     # relative, at the available clusters (90%-ish: 1.645 se)

    def text(self) -> str:
        lines = [f"Cluster-randomised plan for {self.metric}: baseline {self.baseline:g}, lift {self.effect:+.1%}, "
                 f"{self.mean_size:,.0f} users per cluster (size CV {self.size_cv:.2f}), intra-cluster correlation "
                 f"{self.icc:g}",
                 f"  design effect {self.design_effect:.1f}: a cluster of {self.mean_size:,.0f} users counts as "
                 f"{self.mean_size / self.design_effect:,.1f} independent users"]
        if self.clusters_per_arm is not None:
            lines.append(f"  with {self.clusters_per_arm} clusters per arm: power {self.power:.0%} to ship "
                         f"(P(beat control) >= {self.ship_beat:.0%} at the end); the lift's interval is about "
                         f"+/-{self.interval_half_width:.1%}")
            if self.clusters_per_arm < MIN_CLUSTERS_PER_ARM:
                lines.append(f"  warning: fewer than {MIN_CLUSTERS_PER_ARM} clusters per arm -- the spread between "
                             "clusters is estimated from too few of them to tell the effect from cluster noise")
        needed = (f"{self.needed_per_arm:,} clusters per arm ({self.needed_per_arm * self.mean_size:,.0f} users per "
                  "arm)" if self.needed_per_arm is not None else f"more than {MAX_CLUSTERS_PER_ARM:,} clusters per arm")
        lines.append(f"  needed for {self.target:.0%} power: {needed}; more users per cluster barely helps once "
                     "m x rho is well above 1 -- more clusters do")
        return "\n".join(lines)

    def document(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline, "effect": self.effect, "icc": self.icc,
                "users_per_cluster": self.mean_size, "size_cv": self.size_cv, "ship_beat": self.ship_beat,
                "design_effect": self.design_effect, "clusters_per_arm": self.clusters_per_arm, "power": self.power,
                "needed_per_arm": self.needed_per_arm, "target_power": self.target,
                "interval_half_width": self.interval_half_width}


def plan_clusters(metric: Metric, baseline: Baseline, effect: float, icc: float, mean_size: float, ship_beat: float,
                  *, clusters_per_arm: int | None = None, size_cv: float = 0.0, target: float = 0.8) -> ClusterPlan:
    """Power at ``clusters_per_arm`` (when given) and the clusters per arm that reach ``target`` power.

    ``metric`` is the metric as declared on users (its family gives the per-user variance at the baseline)."""
    if not 0 <= icc < 1:
        raise SpecError(f"intra-cluster correlation: must be in [0, 1), got {icc}")
    if not mean_size >= 1:
        raise SpecError(f"users per cluster: must be at least 1, got {mean_size}")
    if effect <= 0:
        raise SpecError(f"effect: a relative improvement above 0 is planned for, got {effect}")
    if size_cv < 0:
        raise SpecError(f"cluster size CV: must be >= 0, got {size_cv}")

    def power(k: int) -> float:
        return cluster_power(metric, baseline, effect, k, mean_size, icc, ship_beat, size_cv)

    needed = smallest_reaching(power, target, MAX_CLUSTERS_PER_ARM)
    at = power(clusters_per_arm) if clusters_per_arm is not None else None
    half = None
    if clusters_per_arm is not None and clusters_per_arm >= 2:
        se = log_lift_se(metric, baseline, 0.0, clusters_per_arm, mean_size, icc, size_cv)
        half = math.expm1(distributions.t.ppf(0.95, 2 * clusters_per_arm - 2) * se)
    return ClusterPlan(metric.name, baseline.value, effect, icc, mean_size, size_cv, ship_beat,
                       design_effect(mean_size, icc, size_cv), clusters_per_arm, at, needed, target, half)


def simulate_clusters(rng: np.random.Generator, clusters_per_arm: int, mean_size: float, rate: float, icc: float,
                      lift: float, size_cv: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Converted users and users per cluster, control clusters first: Beta cluster rates with mean ``rate`` (treatment:
    ``rate x (1 + lift)``) and intra-cluster correlation ``icc`` in both arms, gamma cluster sizes of CV ``size_cv``."""
    k = 2 * clusters_per_arm
    if size_cv > 0:
        sizes = np.maximum(1, np.round(rng.gamma(1 / size_cv ** 2, mean_size * size_cv ** 2, k))).astype(int)
    else:
        sizes = np.full(k, int(round(mean_size)))
    means = np.repeat([rate, rate * (1 + lift)], clusters_per_arm)
    if not 0 < means[-1] < 1:
        raise SpecError(f"a {lift:+.1%} change of the rate {rate} leaves (0, 1)")
    rates = rng.beta(means * (1 / icc - 1), (1 - means) * (1 / icc - 1)) if icc > 0 else means
    return rng.binomial(sizes, rates), sizes


def simulated_power(metric: Metric, rate: float, effect: float, icc: float, mean_size: float, ship_beat: float,
                    clusters_per_arm: int, experiments: int, seed: int = 0, size_cv: float = 0.0,
                    draws: int = 2000) -> float:
    """Share of simulated cluster experiments (:func:`simulate_clusters`, a conversion ``metric`` as declared)
    whose analysis -- the cluster-randomised model's closed form, as the analysis runs it with one segment --
    reaches P(beat control) >= ``ship_beat``."""
    analysed = clustered_metric(metric, "cluster")
    family = family_for(analysed)
    rng = np.random.default_rng(seed)
    arms = np.repeat([0, 1], clusters_per_arm)
    shipped = 0
    for _ in range(experiments):
        converted, sizes = simulate_clusters(rng, clusters_per_arm, mean_size, rate, icc, effect, size_cv)
        sums = family.accumulator_type(analysed, ("control", "treatment"), None)
        sums.add(arms, np.column_stack([converted, sizes]).astype(float))
        means = sums.posterior(rng, draws)
        shipped += float(np.mean(means[:, 1] > means[:, 0])) >= ship_beat
    return shipped / experiments
