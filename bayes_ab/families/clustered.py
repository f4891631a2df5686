"""Cluster-randomised experiments: each metric read as a ratio of cluster totals.

When whole clusters (cities, markets, stores) are randomised, users of one cluster share what the cluster
gets and are not independent: the variance of an arm's mean grows by the design effect ``1 + (m - 1) rho``
(``m`` users per cluster, intra-cluster correlation ``rho``), often 10-100x. The cluster is the unit: a
per-user metric is, per arm, the sum of the clusters' totals over the sum of their users -- a ratio of sums
over units, which the ratio family answers with the delta method (Deng, Knoblich and Lu 2018), the
cluster-robust variance of the mean. Every cluster's total and size enter the variance, so neither a
cluster-level correlation nor unequal cluster sizes have to be modelled or known.

The lift is still the per-user quantity the metric declares (a conversion rate, a mean count); only the
units and the likelihood change. Families whose values do not add up over users (a retention curve, a
quantile) cannot be read this way and are refused by the spec.
"""

from __future__ import annotations

from dataclasses import replace

from bayes_ab.families.base import Family
from bayes_ab.families.ratio import ClusterTotals, Ratio
from bayes_ab.families.registered import FAMILIES
from bayes_ab.families.switchback import Switchback, SwitchbackParams
from bayes_ab.metric import Metric, Novelty


def total_column(metric: Metric) -> str:
    """Column of the per-cluster rows holding a cluster's total of the metric's per-user value."""
    return f"{metric.name} (cluster total)"


def weight_column(metric: Metric) -> str:
    """Column of the per-cluster rows holding a cluster's users (or, for a ratio, its denominator's total)."""
    return f"{metric.name} (cluster weight)"


def _summed(metric: Metric, over: str) -> Family:
    """The declared family of ``metric``, which must add up over a group of rows (``over`` names the group)."""
    family = FAMILIES[metric.family]
    if not family.cluster_sums:
        raise ValueError(f"a {metric.family} metric cannot be summed over {over}")
    return family


def clustered_metric(metric: Metric, cluster: str) -> Metric:
    """``metric`` as a ratio of cluster totals over the clusters of ``cluster``; direction, role, prior, margin
    and ROPE are kept (the ratio's log scale is the one a relative lift is read on)."""
    family = _summed(metric, "clusters")
    params = ClusterTotals(total_column(metric), weight_column(metric), cluster=cluster,
                           measured=family.definition(metric), declared_family=metric.family)
    return replace(metric, family=Ratio.name, column=None, params=params, novelty=Novelty.OFF)


def switchback_metric(metric: Metric, unit: str, period: str, washout: int) -> Metric:
    """``metric`` of a switchback experiment: read from the cell means of ``unit`` x period
    (:mod:`bayes_ab.families.switchback`), with the cells' totals in :func:`total_column` and their rows (or
    denominators) in :func:`weight_column`; direction, role, prior, margin and ROPE are kept."""
    family = _summed(metric, "a switchback's cells")
    params = SwitchbackParams(unit=unit, period=period, washout=washout, measured=family.definition(metric),
                              declared_family=metric.family)
    return replace(metric, family=Switchback.name, column=None, params=params, novelty=Novelty.OFF)
