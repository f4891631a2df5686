"""MCMC diagnostics recorded with every fit: R-hat, bulk/tail ESS and divergences."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bayes_ab.display import HtmlRepr
from bayes_ab.errors import ModelError
from bayes_ab.models.convergence import ess_bulk, ess_tail, rank_rhat

if TYPE_CHECKING:
    from bayes_ab.models.fitdata import FitData

MAX_RHAT = 1.01
MIN_ESS = 400


@dataclass(frozen=True)
class Diagnostics(HtmlRepr):
    """Convergence summary of one fit.

    R-hat is the maximum over every free parameter and reported quantity; ESS is the minimum
    over the reported quantities (``mean`` and ``effect``), which are what effects and
    decisions read.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    chains: int
    draws: int
    max_rhat_allowed: float = MAX_RHAT
    min_ess_required: float = MIN_ESS
    cause: str = ""
    """What the model knows of why such a fit fails (shown after the failures; empty when it passed)."""

    @property
    def problems(self) -> tuple[str, ...]:
        """Human-readable failures; empty when the fit can be trusted."""
        found = []
        if not np.isfinite(self.max_rhat) or self.max_rhat > self.max_rhat_allowed:
            found.append(f"R-hat {self.max_rhat:.3f} > {self.max_rhat_allowed}")
        if not np.isfinite(self.min_ess_bulk) or self.min_ess_bulk < self.min_ess_required:
            found.append(f"bulk ESS {self.min_ess_bulk:.0f} < {self.min_ess_required:.0f}")
        if not np.isfinite(self.min_ess_tail) or self.min_ess_tail < self.min_ess_required:
            found.append(f"tail ESS {self.min_ess_tail:.0f} < {self.min_ess_required:.0f}")
        if self.divergences > 0:
            found.append(f"{self.divergences} divergent transition(s)")
        if found and self.cause:
            found.append(self.cause)
        return tuple(found)

    @property
    def passed(self) -> bool:
        """True when every check passes."""
        return not self.problems

    def to_dict(self) -> dict:
        """JSON-ready form: every figure and threshold, the problems found and whether it passed."""
        return {**vars(self), "problems": list(self.problems), "passed": self.passed}

    def text(self) -> str:
        """Same as :meth:`summary` (used for display)."""
        return self.summary()

    def summary(self) -> str:
        """One line for the console."""
        state = "ok" if self.passed else "FAILED: " + "; ".join(self.problems)
        return (f"max R-hat {self.max_rhat:.3f}, min ESS bulk {self.min_ess_bulk:.0f} / tail "
                f"{self.min_ess_tail:.0f}, divergences {self.divergences} "
                f"({self.chains} chains x {self.draws} draws) - {state}")


def diagnose(idata: "FitData", parameters: list[str],
             reported: tuple[str, ...] = ("mean", "effect")) -> Diagnostics:
    """Compute :class:`Diagnostics` from a fit's groups (:class:`~bayes_ab.models.fitdata.FitData`):
    rank-normalised split R-hat over every parameter and reported quantity, bulk and tail ESS over the
    reported ones."""
    posterior = idata.posterior
    names = [v for v in dict.fromkeys(parameters + list(reported)) if v in posterior]
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    reported_draws = _stacked(posterior, [v for v in reported if v in posterior])
    enough = draws >= 4
    rhat = rank_rhat(_stacked(posterior, names)) if chains > 1 and enough else np.array([np.nan])
    divergences = divergent_transitions(idata)
    return Diagnostics(
        max_rhat=_extreme(rhat, np.nanmax),
        min_ess_bulk=_extreme(ess_bulk(reported_draws) if enough else np.array([np.nan]), np.nanmin),
        min_ess_tail=_extreme(ess_tail(reported_draws) if enough else np.array([np.nan]), np.nanmin),
        divergences=divergences,
        chains=chains,
        draws=draws,
    )


def divergent_transitions(idata: "FitData") -> int:
    """How many post-tuning transitions diverged: 0 for exact draws (no ``sample_stats`` group: a closed form
    or an integration has no transitions).

    Raises
    ------
    ModelError
        An MCMC fit (one with sampler statistics) without the ``diverging`` statistic: it cannot be told
        clean, so it is not reported clean.
    """
    if "sample_stats" not in idata.groups():
        return 0
    if "diverging" not in idata.sample_stats:
        raise ModelError("the fit's sampler statistics have no 'diverging': divergences cannot be counted "
                         f"(statistics present: {', '.join(map(str, idata.sample_stats.data_vars)) or 'none'})")
    return int(idata.sample_stats["diverging"].sum())


def _stacked(posterior, names: list[str]) -> np.ndarray:
    """Draws of ``names`` as one ``(chain, draw, element)`` array of floats."""
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    parts = [np.asarray(posterior[name].transpose("chain", "draw", ...).values, dtype=float).reshape(chains, draws, -1)
             for name in names]
    return np.concatenate(parts, axis=2) if parts else np.full((chains, draws, 1), np.nan)


def independent_draws(chains: int, draws: int) -> Diagnostics:
    """Diagnostics of exact, independent posterior draws (conjugate closed forms): every chain
    targets the posterior exactly, so R-hat is 1 and the effective sample size is the draw count.
    """
    total = float(chains * draws)
    return Diagnostics(max_rhat=1.0, min_ess_bulk=total, min_ess_tail=total, divergences=0,
                       chains=chains, draws=draws)


def _extreme(values: np.ndarray, reducer) -> float:
    values = np.asarray(values, dtype=float).ravel()
    return float(reducer(values)) if np.isfinite(values).any() else float("nan")
