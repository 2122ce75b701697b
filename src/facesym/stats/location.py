"""The Hodges–Lehmann location shift and its Wilcoxon-inverted confidence interval.

The Wilcoxon signed-rank test asks whether the paired differences are symmetric about 0; the
estimate that goes with it is the Hodges–Lehmann shift, the median of the M = n(n+1)/2 Walsh
averages (d_i + d_j)/2, i ≤ j. Inverting the test gives its interval: with W_(1) ≤ … ≤ W_(M)
the sorted Walsh averages and T⁺ the signed-rank statistic,

    [W_(k), W_(M+1−k)],  k − 1 = the largest t with P(T⁺ ≤ t) ≤ α/2 under H0.

- ``exact`` (n ≤ :data:`EXACT_MAX_N`, as scipy's Wilcoxon test): P(T⁺ ≤ t) from the exact
  null distribution of T⁺ (every subset of the ranks 1…n equally likely); the interval's
  achieved confidence 1 − 2·P(T⁺ ≤ k − 1) is at least the nominal one.
- ``normal`` (larger n): k = ⌊μ − z·σ + ½⌋ with μ = n(n+1)/4, σ² = n(n+1)(2n+1)/24 (normal
  approximation with continuity correction).

The interval excludes 0 exactly when the (uncorrected) exact Wilcoxon test rejects at the
achieved level, as long as no difference is 0 and no two |d| tie; with zeros or ties (the
statistics use ``zero_method="pratt"``) they can disagree at the margin. The interval is of
the location shift (the pseudo-median), not of the mean, and is not adjusted for the family.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats as sps

#: the largest n for which the exact null distribution of T⁺ is used (scipy's cut-off too)
EXACT_MAX_N = 50
EXACT = "exact"
NORMAL = "normal"


@lru_cache(maxsize=64)
def signed_rank_cdf(n: int) -> np.ndarray:
    """cdf[t] = P(T⁺ ≤ t), t = 0 … n(n+1)/2, under H0 for n untied, non-zero differences.

    >>> signed_rank_cdf(3).round(3).tolist()  # 8 equally likely sign patterns
    [0.125, 0.25, 0.375, 0.625, 0.75, 0.875, 1.0]
    """
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):  # subsets of {1..rank}: without rank, or with it
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    return np.cumsum(counts) / 2.0**n


def walsh_rank(n: int, confidence: float = 0.95) -> tuple[int, str, float]:
    """(k, method, achieved confidence) of the interval [W_(k), W_(M+1−k)] for n differences;
    k = 0 when no interval of that confidence exists (n too small).

    >>> walsh_rank(10)  # the textbook value: T⁺ ≤ 8 has probability 0.0244 at n = 10
    (9, 'exact', 0.951171875)
    >>> walsh_rank(5)[0]  # 2⁻⁵ > 0.025: the widest interval is only 93.75 %
    0
    """
    alpha = 1.0 - confidence
    if n <= EXACT_MAX_N:
        cdf = signed_rank_cdf(n)
        below = np.flatnonzero(cdf <= alpha / 2 + 1e-12)
        if not below.size:
            return 0, EXACT, np.nan
        k = int(below[-1]) + 1
        return k, EXACT, float(1.0 - 2.0 * cdf[k - 1])
    mu, sigma = n * (n + 1) / 4, np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    k = max(0, int(np.floor(mu - sps.norm.ppf(1 - alpha / 2) * sigma + 0.5)))
    achieved = 1.0 - 2.0 * sps.norm.cdf((k - 0.5 - mu) / sigma) if k else np.nan
    return k, NORMAL, float(achieved)


def walsh_averages(d: np.ndarray) -> np.ndarray:
    """The n(n+1)/2 Walsh averages (d_i + d_j)/2, i ≤ j, sorted.

    >>> walsh_averages(np.array([1.0, 3.0])).tolist()
    [1.0, 2.0, 3.0]
    """
    d = np.asarray(d, dtype=np.float64)
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2)


def hodges_lehmann(d: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(shift, low, high): the Hodges–Lehmann shift of the finite values of ``d`` and its
    Wilcoxon-inverted interval (module docstring). The bounds are NaN when fewer than 2
    values are finite or n is too small for the confidence; constant data give the point.

    >>> d = np.array([-0.3, -0.1, -0.2, -0.25, -0.05, -0.15, -0.12, -0.4, -0.22, -0.18])
    >>> [round(x, 3) for x in hodges_lehmann(d)]
    [-0.19, -0.275, -0.125]
    >>> hodges_lehmann(np.array([0.1, 0.2]))[1:]
    (nan, nan)
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return np.nan, np.nan, np.nan
    walsh = walsh_averages(d)
    shift = float(np.median(walsh))
    if d.size < 2:
        return shift, np.nan, np.nan
    if np.ptp(d) == 0:
        return shift, shift, shift
    k, _, _ = walsh_rank(d.size, confidence)
    if k == 0:
        return shift, np.nan, np.nan
    return shift, float(walsh[k - 1]), float(walsh[walsh.size - k])
