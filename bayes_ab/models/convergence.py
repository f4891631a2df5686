"""Rank-normalised split R-hat and bulk/tail effective sample sizes, for many quantities at once.

The definitions are those of Vehtari, Gelman, Simpson, Carpenter and Bürkner (2021), "Rank-normalization,
folding, and localization: an improved R-hat", as ArviZ computes them. ArviZ applies them one scalar at a
time (ranks, inverse normal CDF and an FFT per element, through xarray), which cost a check-in about
0.4 s per metric; here the ranks, transforms and autocovariances of every element are computed in one
array operation, and only Geyer's short truncation loop runs per element. The tests compare both.

Every function takes ``draws`` of shape ``(chain, draw, element)`` and returns one value per element.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

TAIL_PROBABILITIES = (0.05, 0.95)


FAST_FACTORS = (2, 3, 5, 7, 11)
"""The prime factors of a length an FFT of this size is fast at (pocketfft's, as ``scipy.fft.next_fast_len``)."""


def next_fast_len(target: int) -> int:
    """The smallest length at least ``target`` whose only prime factors are :data:`FAST_FACTORS`.

    The autocovariances are zero-padded to such a length. It is ``scipy.fft.next_fast_len``'s answer, computed
    here because importing ``scipy.fft`` costs a check-in 0.1-0.2 s and this is all it was imported for.
    """
    if target <= 1:
        return 1
    best = 1 << (target - 1).bit_length()          # the next power of 2: an upper bound
    odd = [1]                                       # products of the odd factors below the bound
    for factor in FAST_FACTORS[1:]:
        odd = [p * factor ** k for p in odd for k in range(int(np.log(best / p) / np.log(factor)) + 2)
               if p * factor ** k < best]
    for product in odd:
        length = product << max(0, (-(-target // product) - 1).bit_length())   # times the power of 2 reaching target
        best = min(best, length)
    return best


def split_chains(draws: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as separate chains (a middle draw of an odd count is dropped)."""
    half = draws.shape[1] // 2
    return np.concatenate([draws[:, :half], draws[:, draws.shape[1] - half:]], axis=0)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (1-based) of each column, ties given their average rank, as ``scipy.stats.rankdata(...,
    method="average", axis=0)`` (kept here: scipy.stats costs a second of start-up)."""
    rows, columns = values.shape
    order = np.argsort(values, axis=0, kind="mergesort")
    ranks = np.empty((rows, columns))
    for k in range(columns):
        ordered = values[order[:, k], k]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], rows]
        group = np.repeat(np.arange(starts.size), ends - starts)
        ranks[order[:, k], k] = ((starts + ends - 1) / 2.0 + 1.0)[group]
    return ranks


def z_scale(draws: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks of each element (Blom's offset 3/8), in the draws' shape."""
    chains, n, elements = draws.shape
    ranks = average_ranks(draws.reshape(chains * n, elements))
    size = chains * n
    return ndtri((ranks - 3 / 8) / (size - 2 * 3 / 8 + 1)).reshape(chains, n, elements)


def basic_rhat(draws: np.ndarray) -> np.ndarray:
    """Gelman-Rubin potential scale reduction of the chains as given."""
    n = draws.shape[1]
    within = draws.var(axis=1, ddof=1).mean(axis=0)
    between = n * draws.mean(axis=1).var(axis=0, ddof=1)
    return np.sqrt(((n - 1) / n * within + between / n) / within)


def rank_rhat(draws: np.ndarray) -> np.ndarray:
    """R-hat of the rank-normalised split chains: the larger of the bulk and the folded (tail) R-hat."""
    split = split_chains(draws)
    bulk = basic_rhat(z_scale(split))
    folded = np.abs(split - np.median(split.reshape(-1, split.shape[2]), axis=0))
    return np.maximum(bulk, basic_rhat(z_scale(folded)))


def ess(draws: np.ndarray) -> np.ndarray:
    """Effective sample size of each element (autocorrelations across chains, Geyer's initial monotone
    sequence); an element whose draws do not vary counts every draw."""
    chains, n, elements = draws.shape
    centred = draws - draws.mean(axis=1, keepdims=True)
    size = next_fast_len(2 * n)
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=1)[:, :n] / n   # (chain, lag, element)
    mean_acov = acov.mean(axis=0)                                                        # (lag, element)
    mean_var = mean_acov[0] * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus = var_plus + draws.mean(axis=1).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_var - mean_acov) / var_plus                                    # (lag, element)
    out = np.empty(elements)
    constant = (draws.max(axis=(0, 1)) - draws.min(axis=(0, 1))) < np.finfo(float).resolution
    for k in range(elements):
        out[k] = chains * n if constant[k] else _geyer(rho[:, k], chains * n)
    return out


def _geyer(rho: np.ndarray, total: int) -> float:
    """Effective sample size from one element's autocorrelations (initial positive, then monotone)."""
    n = rho.size
    kept = np.zeros(n)
    kept[0], even, odd = 1.0, 1.0, rho[1]
    kept[1] = odd
    t = 1
    while t < n - 3 and even + odd > 0.0:
        even, odd = rho[t + 1], rho[t + 2]
        if even + odd >= 0:
            kept[t + 1], kept[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0:
        kept[last + 1] = even
    t = 1
    while t <= last - 2:
        if kept[t + 1] + kept[t + 2] > kept[t - 1] + kept[t]:
            kept[t + 1] = kept[t + 2] = (kept[t - 1] + kept[t]) / 2.0
        t += 2
    tau = -1.0 + 2.0 * kept[:last + 1].sum() + kept[last + 1:last + 2].sum()
    tau = max(tau, 1 / np.log10(total))
    return float("nan") if np.isnan(kept).any() else total / tau


def ess_bulk(draws: np.ndarray) -> np.ndarray:
    """Bulk effective sample size: of the rank-normalised split chains."""
    return ess(z_scale(split_chains(draws)))


def ess_tail(draws: np.ndarray, probabilities: tuple[float, float] = TAIL_PROBABILITIES) -> np.ndarray:
    """Tail effective sample size: the smaller of the effective sizes of the indicators of the 5% and 95%
    quantiles (split chains)."""
    pooled = draws.reshape(-1, draws.shape[2])
    sizes = []
    for p in probabilities:
        below = (draws <= np.quantile(pooled, p, axis=0)).astype(float)
        sizes.append(ess(split_chains(below)))
    return np.minimum(*sizes)
