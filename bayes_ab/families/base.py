"""What a metric family is: one declaration holding everything the engine needs to know about it.

A family (conversion, count, retention, mean, ratio) declares, in one module:

- **spec**: its parameters (a frozen dataclass, e.g. ``CountParams``) read from the metric's YAML fields,
  and how its planning baseline is written (``baseline_fields``);
- **data**: the aggregates it asks the engine for, folded into the one grouped query (:meth:`Family.query`,
  the way a metric declares its aggregate columns), and the statistics Dataset built from them;
- **model**: the hierarchical PyMC model on those statistics and its unpooled closed-form reference;
- **simulation**: the truth that draws simulated users and the accumulator that keeps their statistics;
- **planning**: the per-user variance behind the fixed-horizon sample size, and the spread of the control
  arm a continuation is simulated with;
- **presentation**: its unit, its report figure and any extra console lines.

Everything outside ``bayes_ab.families`` iterates the registry (:func:`bayes_ab.families.registry`) and
never names a family, so a new family is its module plus one registry line.

Every family's model exposes the same named quantities, so effects and decisions are family-agnostic:
``mean`` (arm x segment, the metric on its natural scale) and ``effect`` (treatment x segment, on the link
scale, where the effect prior lives).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, NamedTuple, Protocol

import numpy as np
import xarray as xr

from bayes_ab import format as fmt
from bayes_ab.data.queries import MetricQuery, value_name
from bayes_ab.errors import ModelError, SpecError
from bayes_ab.families.covariates import (AdjustedAccumulator, covariate_sums, mean_moments, value_cross_name,
                                         with_covariates)
from bayes_ab.metric import Baseline, FamilyParams, Metric
from bayes_ab.models.fitdata import FitData
from bayes_ab.models.quadrature import IntegrableModel
from bayes_ab.sampling import SamplerSettings

if TYPE_CHECKING:      # only for annotations: PyMC takes seconds to import and is needed only to build a model
    import pymc as pm


class Truth(Protocol):
    """The true behaviour of one metric in every arm, for simulated experiments."""

    metric: Metric

    def draw(self, rng: np.random.Generator, arms: np.ndarray, latent: np.ndarray | None = None) -> np.ndarray:
        """One value per user (a row per user for families with several columns); ``arms`` holds each
        user's arm index (0 = control). ``latent``: each user's activity as a uniform in (0, 1), shared in part
        between metrics so that they correlate (a higher latent, a larger value: more conversions, more counts,
        a larger denominator, a later churn); ``None`` draws the metric independently."""


class Accumulator(Protocol):
    """Cumulative statistics of one metric over the simulated users a rule has seen."""

    metric: Metric

    def add(self, arms: np.ndarray, values: np.ndarray) -> None:
        """Add users: their arm indices and their values (as :meth:`Truth.draw` gives them)."""

    def posterior(self, rng: np.random.Generator, draws: int) -> np.ndarray:
        """Closed-form posterior draws of every arm's mean, shape (draws, arms)."""

    def estimate(self) -> tuple[np.ndarray, np.ndarray]:
        """Per arm: the classical estimate of the mean and the variance of that estimate."""

    def link(self, means: np.ndarray) -> np.ndarray:
        """Means on the scale of the family model's treatment effect (its prior is on that scale)."""

    def users(self) -> np.ndarray:
        """Users seen per arm."""

    def stats(self) -> xr.Dataset:
        """The cumulative sufficient statistics (one segment)."""


class WarmupCase(NamedTuple):
    """One sampled structure of a family, as ``bayes-ab warmup --all`` compiles it: what it is (``label``, e.g.
    "binomial, small cells"), a metric of the family, statistics that lead the family to that structure, and
    about how long it takes to compile."""

    label: str
    metric: Metric
    stats: xr.Dataset
    compile_seconds: float = 6.0
    """About how long the structure takes to compile on one core (2026-12-05, a 2-core machine): a warm-up
    starts the longest first, so that no process is left compiling a long one alone at the end."""


def cells_of(arms: tuple[str, ...], segments: tuple[str, ...], value: float) -> np.ndarray:
    """An (arm, segment) array of ``value``: the cells of a family's warm-up statistics."""
    return np.full((len(arms), len(segments)), value)


class Family(ABC):
    """One metric family. Subclasses are stateless declarations; the registry holds one instance each."""

    name: ClassVar[str]
    params_type: ClassVar[type[FamilyParams]] = FamilyParams
    uses_column: ClassVar[bool] = True
    """False when the family reads its columns from its parameters (ratio: numerator, denominator)."""
    unit: ClassVar[str] = "per user"
    unit_scale: ClassVar[float] = 1.0
    panel_total: ClassVar[str | None] = "SUM"
    """How a user's daily values in a panel make their value over a period (SQL aggregate); None: the family
    cannot be read from a daily panel."""
    baseline_fields: ClassVar[tuple[str, ...]] = ()
    """Fields of a planning baseline mapping (``mean`` first); empty: the baseline is one rate."""
    inverse_link: ClassVar["Callable[[np.ndarray], np.ndarray] | None"] = None
    """The link's inverse on arrays, for families with a normal-cells model
    (:func:`~bayes_ab.models.gaussian_pool.normal_cells_model`): it maps the model's linear predictor to ``mean``."""
    exact_method: ClassVar[str] = "numerical integration"
    """How an exact posterior of this family (``backend: exact``) was computed, as reports name it."""
    panel_rows: ClassVar[bool] = False
    """True when, on a panel, the metric is of the rows themselves (each user a cluster of rows) and its
    ``panel_total`` serves the data checks only."""
    weekly: ClassVar[bool] = True
    """Whether the metric can also be read by week since exposure (``novelty``) from a daily panel."""
    binary: ClassVar[bool] = False
    """True when every user's value is 0 or 1 (a conversion): a group's mean is a rate, with a Beta posterior."""
    min_mean: ClassVar[float | None] = None
    """The smallest value the metric's mean can take (a rate's or a count's 0), or ``None`` when it is unbounded
    below: a mean derived outside the model (the compliers' mean in control) must respect it."""
    max_mean: ClassVar[float | None] = None
    """The largest value the metric's mean can take (a rate's 1), or ``None`` when it is unbounded above: a
    mean derived outside the model (novelty's long-run mean) is clipped to it."""

    declared: ClassVar[bool] = True
    """False for a family a spec cannot name: the analysis of a design reads declared metrics through it (a
    switchback's cell means)."""
    cluster_sums: ClassVar[bool] = False
    """True when a user's value adds up over a cluster's users (a conversion, a count, a value, a ratio's
    numerator and denominator): a cluster-randomised experiment then reads the metric as a ratio of cluster totals
    (:mod:`bayes_ab.families.clustered`) and :meth:`unit_values` gives the per-user SQL that is summed."""

    def unit_values(self, metric: Metric, kinds: dict[str, str]) -> tuple[str, str | None]:
        """SQL of a user's value and of its weight (``None``: one per user) as a cluster's totals sum them.

        Only families with :attr:`cluster_sums` have them; the data checks of the values run before, on the
        users' rows, by the family's own :meth:`query`."""
        raise NotImplementedError(f"a {self.name} metric cannot be summed over a cluster's users")

    # -- spec --------------------------------------------------------------------------------

    def parse_params(self, read: "ParamReader") -> FamilyParams:
        """The family's parameters from the metric's YAML fields (the default: none)."""
        return self.params_type()

    def expand(self, metric: Metric) -> tuple[Metric, ...]:
        """The metrics one spec entry declares: itself (the default), or several (a quantile metric's
        ``quantiles: [0.5, 0.95]`` declares one metric per quantile)."""
        return (metric,)

    @abstractmethod
    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        """A planning baseline from its spec form; :class:`SpecError` prefixed with ``where``."""

    def baseline_raw(self, baseline: Baseline) -> Any:
        """The spec form of ``baseline`` (inverse of :meth:`parse_baseline`)."""
        if not self.baseline_fields:
            return baseline.value
        raw = {self.baseline_fields[0]: baseline.value}
        if baseline.spread is not None:
            raw[self.baseline_fields[1]] = baseline.spread
        return raw

    def check_change(self, metric: Metric, baseline: Baseline, change: float, where: str) -> None:
        """Refuse a simulated relative ``change`` of ``baseline`` the family cannot represent (default: any
        change of a mean is representable)."""

    # -- data --------------------------------------------------------------------------------

    def statistics_query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> "MetricQuery":
        """:meth:`query` with the sums of the metric's pre-period covariates added to the grouped query and to its
        statistics (:mod:`bayes_ab.families.covariates`): what the aggregation runs."""
        query = self.query(metric, alias, kinds)
        if not metric.covariates:
            return query
        checks, sums = covariate_sums(self, metric, alias, kinds)
        parts = tuple(self.covariate_values(metric, kinds))

        def build(arms, segments, table, detail):
            return with_covariates(query.build(arms, segments, table, detail), table, alias, metric, parts)

        return replace(query, checks=list(query.checks) + checks, sums={**query.sums, **sums}, build=build)

    def covariate_values(self, metric: Metric, kinds: dict[str, str]) -> dict[str, tuple[str, str]]:
        """The per-user values the covariates are crossed with, by part (``value``; a ratio adds ``denominator``):
        each as its SQL and the name of its column in aggregated rows."""
        value, _ = self.unit_values(metric, kinds)
        return {"value": (value, value_name(metric.column, getattr(metric.params, "cap", None)))}

    def covariate_moments(self, stats: xr.Dataset, metric: Metric, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per cell: the metric's value, its within-cell centred sum of squares and its centred cross-products with
        the covariates whose sums are ``x`` (arm x segment x covariate): what the pooled regression of
        :mod:`bayes_ab.families.covariates` takes. For a mean of one value per user, from :meth:`user_moments`."""
        n, total, squares = (np.asarray(a, dtype=float) for a in self.user_moments(stats))
        xy = np.stack([stats[value_cross_name(k)].values for k in range(x.shape[-1])], axis=-1)
        return mean_moments(n, total, squares, x, xy)

    def covariate_outcome(self, metric: Metric, values: np.ndarray) -> np.ndarray:
        """The per-user outcome a planned covariate correlation (``plan.covariate_correlation``) refers to, from the
        values :meth:`truth` draws: the value itself unless the family says otherwise."""
        return values

    def adjusted_accumulator(self, inner: "Accumulator") -> "Accumulator":
        """``inner``, the accumulator of a simulated metric's values, wrapped to keep each user's covariate and to
        answer with the adjusted posterior (:class:`~bayes_ab.families.covariates.AdjustedAccumulator`)."""
        return AdjustedAccumulator(inner, self)

    @property
    def adjusts_for_covariates(self) -> bool:
        """Whether this family's metrics take ``covariates:`` (it defines :meth:`effective_cells`)."""
        return type(self).effective_cells is not Family.effective_cells

    def effective_cells(self, stats: xr.Dataset, metric: Metric, means: np.ndarray, users: np.ndarray) -> xr.Dataset:
        """``stats`` rewritten as cells of ``users`` (effective, fractional) users whose mean is ``means`` and whose
        per-user variance is the cell's own: what a covariate-adjusted cell is to the family's likelihood
        (:mod:`bayes_ab.families.covariates`). Defined by the families whose metric is a mean of one value per
        user, by ratios and by retention (an effective life table); the others take no covariates."""
        raise ModelError(f"the {self.name} family takes no covariates")

    @abstractmethod
    def query(self, metric: Metric, alias: str, kinds: dict[str, str]) -> "MetricQuery":
        """The SQL checks, per-cell sums, keys and statistics builder of ``metric``; ``alias`` prefixes its
        SQL column names and ``kinds`` gives every source column's kind. One declaration serves per-user and
        aggregated input: each :class:`~bayes_ab.data.queries.Sum` names the column that carries it in
        aggregated rows."""

    def segment_weights(self, stats: xr.Dataset) -> xr.DataArray:
        """Weights of the segments in the overall estimate: their share of users (all arms together)."""
        users = stats["n"].sum("arm").astype(float)
        return users / users.sum()

    # -- model -------------------------------------------------------------------------------

    @abstractmethod
    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        """Arrays the model reads through ``pm.Data``, by name."""

    @abstractmethod
    def build_model(self, stats: xr.Dataset, metric: Metric) -> "pm.Model":
        """The PyMC model of ``metric`` on ``stats``."""

    @abstractmethod
    def observed_mean(self, stats: xr.Dataset, metric: Metric) -> xr.DataArray:
        """Raw per-arm value over the segments in ``stats``, without any model."""

    def variant(self, stats: xr.Dataset, metric: Metric) -> str:
        """Which likelihood the data call for (part of the compiled structure)."""
        return self.name

    @abstractmethod
    def describe(self, stats: xr.Dataset, metric: Metric) -> str:
        """One line: which likelihood was used and why."""

    @abstractmethod
    def definition(self, metric: Metric) -> str:
        """What the metric's number is, in words and column names (the report's glossary): the quantity every
        lift of it compares, before any model."""

    def warnings(self, stats: xr.Dataset, metric: Metric) -> tuple[str, ...]:
        """Facts about the data that change what the result means (one sentence each).

        They travel with the result: ``summary.json``, the sentence, the report next to the metric, the
        ledger's look. Every family warns about segments where an arm has no users (the effect there is
        the prior's and the pooling's, not the data's); families add their own.
        """
        return empty_cell_warnings(stats)

    def constant_value(self, stats: xr.Dataset) -> float | None:
        """The value every user has when the metric does not vary at all (nothing to compare), else ``None``.

        A model given zero variance reports certainty about nothing (identical arms came out as
        "P(beat) < 0.1%"), so :func:`~bayes_ab.analysis.analyze_stats` refuses such a metric.
        """
        return None

    @abstractmethod
    def link_per_relative(self, stats: xr.Dataset, metric: Metric) -> float:
        """How much the model's treatment effect (link scale) moves per unit of relative effect, at no effect
        and the control's observed value: the factor a learned prior of relative effects is mapped by.

        A first-order map: exact for a log link's small effects, and within a few per cent of the effect
        for the ±10% effects that learned priors concentrate on. Negative when a better metric means a lower
        linear predictor (retention: a lower churn hazard).
        """

    def exact_posterior(self, stats: xr.Dataset, metric: Metric,
                        sampler: SamplerSettings) -> "tuple[FitData, float] | None":
        """Independent draws of the model's posterior (effect prior included) and their effective sample size,
        for a family whose posterior needs no sampler (the quantile family's Bayesian bootstrap); ``None`` (the
        default): integrate or sample the model."""
        return None

    def pools_baselines(self, variant: str) -> bool:
        """Whether the model of ``variant`` pools the segments' baselines from
        :data:`~bayes_ab.models.hierarchy.POOLED_BASELINE_SEGMENTS` segments on
        (:func:`~bayes_ab.models.hierarchy.segment_baselines`), so that its structure differs between a few
        segments and many (:func:`~bayes_ab.models.hierarchy.size_classes`). The default: no."""
        return False

    def warmup_cases(self, arms: tuple[str, ...], segments: tuple[str, ...]) -> tuple[WarmupCase, ...]:
        """Synthetic statistics of these arms and segments that lead the family to each of its sampled
        structures, for ``bayes-ab warmup --all`` (which compiles them before any data exist). The default,
        none: a family whose posteriors are exact or closed-form compiles nothing."""
        return ()

    def integrable(self, stats: xr.Dataset, metric: Metric) -> "IntegrableModel | None":
        """This model in the form :mod:`bayes_ab.models.quadrature` integrates exactly, when it has that form
        on these statistics (one parameter per arm, one segment); ``None`` (the default): sample it."""
        return None

    @abstractmethod
    def sample_conjugate(self, stats: xr.Dataset, metric: Metric, sampler: SamplerSettings) -> "FitData":
        """Independent draws of the unpooled closed-form posterior, shaped like an MCMC fit."""

    @abstractmethod
    def closed_form(self, stats: xr.Dataset, metric: Metric) -> str:
        """Which closed form :meth:`sample_conjugate` uses on these statistics."""

    # -- simulation --------------------------------------------------------------------------

    truth_type: ClassVar[type]
    """The :class:`Truth` of simulated users, built as ``truth_type(metric, baseline, factors)``."""
    accumulator_type: ClassVar[type]
    """The :class:`Accumulator` of simulated statistics, built as ``accumulator_type(metric, arms, start)``."""

    def truth(self, metric: Metric, baseline: Baseline, factors: np.ndarray) -> Truth:
        """The truth whose arm ``k`` has mean ``baseline.value * factors[k]`` (control first)."""
        return self.truth_type(metric, baseline, factors)

    def accumulator(self, metric: Metric, arms: tuple[str, ...], start: xr.Dataset | None) -> Accumulator:
        """An accumulator, empty or holding ``start`` (one-segment statistics already observed)."""
        return self.accumulator_type(metric, arms, start)

    def draw_from_means(self, rng: np.random.Generator, means: np.ndarray) -> np.ndarray | None:
        """One value per user whose own expected value is ``means`` (same shape), for simulations that model
        users' heterogeneity themselves (novelty planning's frailty); ``None`` (the default) when a user's
        value is not determined by its mean alone (a mean's spread, a ratio's denominator)."""
        return None

    def user_moments(self, stats: xr.Dataset) -> "tuple[np.ndarray, np.ndarray, np.ndarray] | None":
        """Per arm x segment: users, the sum of their values and the sum of their squared values, for a family
        whose metric is the mean of one value per user (conversion, count, mean): the complier analysis
        (:mod:`bayes_ab.compliance`) compares such means between users who did and did not receive the
        treatment. ``None`` (the default): the metric is not such a mean (a ratio, a survival curve, a quantile)."""
        return None

    @property
    def complier_effects(self) -> bool:
        """Whether the complier effect (CACE) is estimated for this family's metrics (:meth:`user_moments`)."""
        return type(self).user_moments is not Family.user_moments

    @property
    def draws_from_means(self) -> bool:
        """Whether :meth:`draw_from_means` is defined for this family."""
        return type(self).draw_from_means is not Family.draw_from_means

    # -- planning ----------------------------------------------------------------------------

    @abstractmethod
    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        """Variance of one user's value when the arm's mean is ``mean`` (fixed-horizon sample sizes)."""

    def fixed_horizon_sds(self, metric: Metric, baseline: Baseline, control: float, treatment: float,
                          ratio: float) -> tuple[float, float]:
        """Standard deviations of the difference of means (per control user) under the null and the
        alternative; without a pooled null variance, both are the unpooled one."""
        sd = math.sqrt(self.unit_variance(metric, baseline, control)
                       + self.unit_variance(metric, baseline, treatment) / ratio)
        return sd, sd

    def spread(self, metric: Metric, stats: xr.Dataset) -> float | None:
        """The control arm's spread (the baseline's ``spread``) estimated from ``stats``."""
        return None

    # -- presentation ------------------------------------------------------------------------

    def figure(self, fit, interval: float) -> tuple[str | None, str]:
        """The family's report figure (a data URI) of a fit (:class:`bayes_ab.posterior.result.Fit`) and its
        caption; none by default."""
        return None, ""

    def text_lines(self, fit, interval: float) -> list[str]:
        """Extra lines of the console summary (e.g. retention milestones); none by default."""
        return []

    def kind_of(self, metric: Metric) -> str:
        """The metric's family as outputs name it (a cluster-randomised metric names its declared family too)."""
        return self.name

    def unit_of(self, metric: Metric) -> str:
        """The display unit of ``metric``'s absolute differences (the family's; a quantile's names its own)."""
        return self.unit

    def format_absolute(self, value: float, signed: bool = False, metric: Metric | None = None) -> str:
        """An absolute difference in the metric's display unit, e.g. ``+0.42 percentage points``."""
        unit = self.unit if metric is None else self.unit_of(metric)
        return f"{self.format_number(value, signed)} {unit}"

    def format_number(self, value: float, signed: bool = False) -> str:
        """An absolute difference or loss in the metric's display unit, without the unit (a table's column names
        it): the one formatter of such numbers (:func:`bayes_ab.format.amount` of the scaled value)."""
        return fmt.amount(value * self.unit_scale, signed)


def empty_cell_warnings(stats: xr.Dataset) -> tuple[str, ...]:
    """One warning per arm with segments where it has no users."""
    warnings = []
    segments = stats["segment"].values
    for arm, no_users in zip(stats["arm"].values, stats["n"].transpose("arm", "segment").values == 0):
        empty = [str(s) for s in segments[no_users]]
        if not empty:
            continue
        shown = ", ".join(repr(s) for s in empty[:3]) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
        warnings.append(f"arm {str(arm)!r} has no users in segment(s) {shown}: its effect there is the prior's "
                        "and the other segments', not measured")
    return tuple(warnings)


class RateFamily(Family):
    """A family whose metric is a rate in (0, 1) (conversion, retention): the baseline is the rate, the null
    variance of a fixed-horizon test is pooled, and a change must keep the rate inside (0, 1)."""

    unit = "percentage points"
    unit_scale = 100.0
    min_mean = 0.0
    max_mean = 1.0

    def parse_baseline(self, raw: Any, where: str) -> Baseline:
        rate = finite(raw, "the baseline rate", where)
        if not 0 < rate < 1:
            raise SpecError(f"{where}: the baseline rate must be in (0, 1), got {rate}")
        return Baseline(rate)

    def check_change(self, metric: Metric, baseline: Baseline, change: float, where: str) -> None:
        if baseline.value * (1 + change) >= 1:
            raise SpecError(f"{where}: a {change:.0%} change of the rate {baseline.value} exceeds 1")

    def unit_variance(self, metric: Metric, baseline: Baseline, mean: float) -> float:
        return mean * (1 - mean)

    def fixed_horizon_sds(self, metric: Metric, baseline: Baseline, control: float, treatment: float,
                          ratio: float) -> tuple[float, float]:
        if not 0 < treatment < 1:
            raise SpecError(f"metric {metric.name!r}: a {treatment / control - 1:+.1%} change of the rate "
                            f"{control} leaves (0, 1)")
        pooled = (control + ratio * treatment) / (1 + ratio)
        return (math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio)),
                math.sqrt(control * (1 - control) + treatment * (1 - treatment) / ratio))


def finite(value: Any, name: str, where: str) -> float:
    """``value`` as a float; :class:`SpecError` when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def positive_baseline(raw: Any, where: str, names: tuple[str, str], meaning: str) -> Baseline:
    """A ``{value, spread}`` baseline mapping with exactly the two fields ``names``, both positive numbers;
    ``meaning`` says what they are in the error message."""
    first, second = names
    if not isinstance(raw, Mapping) or set(raw) != set(names):
        raise SpecError(f"{where}: must be a mapping with {first!r} and {second!r} ({meaning}), got {raw!r}")
    value, spread = finite(raw[first], first, where), finite(raw[second], second, where)
    if value <= 0 or spread <= 0:
        raise SpecError(f"{where}: {first} and {second} must be positive, got {value:g} and {spread:g}")
    return Baseline(value, spread)


def mean_baseline(raw: Any, where: str, spread_name: str) -> tuple[float, Any]:
    """The ``mean`` and raw spread of a ``{mean, <spread_name>}`` baseline mapping, checked for shape."""
    if not isinstance(raw, Mapping) or "mean" not in raw:
        raise SpecError(f"{where}: must be a mapping with 'mean' and '{spread_name}', got {raw!r}")
    unknown = sorted(set(raw) - {"mean", spread_name})
    if unknown:
        raise SpecError(f"{where}: unknown field {unknown[0]!r} (expected mean, {spread_name})")
    return finite(raw["mean"], "mean", where), raw.get(spread_name)


class ParamReader(Protocol):
    """Typed reads of one metric's YAML fields with field-path errors (the spec's reader)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def fail(self, key: str, message: str) -> Any: ...
    def string(self, key: str, default: str | None) -> str | None: ...
    def number(self, key: str, default: float) -> float: ...
    def positive(self, key: str, default: float) -> float: ...
    def count(self, key: str, default: int, minimum: int = 1) -> int: ...
    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str: ...


def moments_spread(stats: xr.Dataset) -> tuple[float, float]:
    """The control arm's mean and sample variance from per-cell ``n``, ``sum``, ``sumsq`` (all segments)."""
    control = stats.isel(arm=0).sum("segment")
    n = float(control["n"])
    mean = float(control["sum"]) / n
    return mean, max(float(control["sumsq"]) / n - mean ** 2, 0.0) * n / max(n - 1, 1)


class ExactOnly:
    """For a family whose posterior is always exact (:meth:`Family.exact_posterior` never returns ``None``): it has
    no sampled model, and asking for one is an error that says so."""

    def model_data(self, stats: xr.Dataset) -> dict[str, np.ndarray]:
        raise self._no_sampled_model()

    def build_model(self, stats: xr.Dataset, metric: Metric):
        raise self._no_sampled_model()

    def _no_sampled_model(self) -> ModelError:
        return ModelError(f"the {self.name} family's posterior is exact ({self.closed_form(None, None)}): it has no "
                          "sampled model")
