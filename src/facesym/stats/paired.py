"""One paired test: intended-class probabilities, paired differences and their statistics.

For classifier c, emotion e and comparison k the paired difference over faces is
- a side k ∈ {left, right, control}: d = p_k(a_max) − p_k(0) (the raw effect);
- k = <side>_vs_control: d = p_side(a_max) − p_control(a_max) (symmetry, not expression loss:
  both lose the same total expression displacement);
- k = left_vs_right: d = p_left(a_max) − p_right(a_max) (laterality: the same loss on either
  hemiface; equal to the difference of the two one-sided effects, since p_left(0) = p_right(0)).

Two estimates with their intervals go with each test: the mean with a BCa bootstrap CI (the
estimate of the t-test and of the max-T test on t) and the Hodges–Lehmann shift with its
Wilcoxon-inverted CI (the estimate of the Wilcoxon test, :mod:`facesym.stats.location`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pingouin as pg
import xarray as xr
from scipy import stats as sps

from facesym.stats.location import hodges_lehmann
from facesym.vocab import (
    COMPARISON,
    FACE,
    LABEL,
    SIDE,
    STRENGTH,
    compared_sides,
    is_raw_effect,
)

#: what every test reports, in the order of the tables
METRICS = ("n", "mean_p_ref", "mean_p_int", "mean_diff", "ci_low", "ci_high", "median_diff",
           "hl_shift", "hl_low", "hl_high", "frac_zero", "W", "p", "p_adj", "significant", "t",
           "p_ttest", "d_z", "rbc", "p_perm", "p_maxT")
#: why a test has no p-value (the family's ``untested_reason``; "" when tested)
FEW_FACES = "fewer than 2 faces"
NO_CHANGE = "no change: every difference is 0"
NO_DATA = "fewer than 2 finite differences"


def intended_probability(prob: xr.DataArray, emotion: xr.DataArray) -> xr.DataArray:
    """p(intended class) per face, from prob[face, …, label] and emotion[face].

    >>> prob = xr.DataArray([[0.7, 0.3], [0.4, 0.6]], dims=("face", "label"),
    ...                     coords={"face": [0, 1], "label": ["happiness", "neutral"]})
    >>> intended_probability(prob, xr.DataArray(["happiness", "neutral"], dims="face")).values
    array([0.7, 0.6])
    """
    labels = [str(x) for x in prob[LABEL].values]
    idx = np.array([labels.index(str(e)) for e in emotion.values])
    values = np.take_along_axis(prob.values, idx.reshape(-1, *([1] * (prob.ndim - 1))),
                                axis=-1)[..., 0]
    dims = prob.dims[:-1]
    return xr.DataArray(values, dims=dims, coords={d: prob[d] for d in dims})


def _at(p: xr.DataArray, side: str, strength: float) -> xr.DataArray:
    return p.sel({SIDE: side, STRENGTH: strength}).drop_vars([SIDE, STRENGTH])


def _by_comparison(arrays: list[xr.DataArray], comparisons: Sequence[str]) -> xr.DataArray:
    return xr.concat(arrays, dim=COMPARISON).assign_coords({COMPARISON: list(comparisons)})


def paired_differences(p: xr.DataArray, comparisons: Sequence[str]) -> xr.DataArray:
    """d[comparison, face]: the paired difference of each comparison (see module docstring)
    from p(intended)[face, side, strength].

    >>> p = xr.DataArray([[[0.8, 0.5], [0.8, 0.7]]], dims=("face", "side", "strength"),
    ...                  coords={"face": [0], "side": ["left", "control"],
    ...                          "strength": [0.0, 1.0]})
    >>> paired_differences(p, ["left", "left_vs_control"]).round(3).values.tolist()
    [[-0.3], [-0.2]]
    """
    diffs = [_minuend(p, comp) - _reference(p, comp) for comp in comparisons]
    return _by_comparison(diffs, comparisons).transpose(COMPARISON, FACE, ...)


def _minuend(p: xr.DataArray, comparison: str) -> xr.DataArray:
    return _at(p, compared_sides(comparison)[0], p[STRENGTH].values.max())


def _reference(p: xr.DataArray, comparison: str) -> xr.DataArray:
    """p_side(0) for a raw effect, p_other(a_max) for a contrast or laterality."""
    other = compared_sides(comparison)[1]
    return _at(p, other, 0.0 if is_raw_effect(comparison) else p[STRENGTH].values.max())


def reference_probability(p: xr.DataArray, comparisons: Sequence[str]) -> xr.DataArray:
    """ref[comparison, face]: what each difference is taken from (p_side(0) for a raw effect,
    p_control(a_max) for a symmetry contrast, p_right(a_max) for left_vs_right), for the
    tables' ``mean_p_ref``."""
    refs = [_reference(p, comp) for comp in comparisons]
    return _by_comparison(refs, comparisons).transpose(COMPARISON, FACE, ...)


def bca_interval(d: np.ndarray, confidence: float = 0.95,
                 seed: int | np.random.SeedSequence = 0,
                 n_resamples: int = 4999) -> tuple[float, float]:
    """BCa bootstrap confidence interval of the mean.

    Fewer than 2 values give NaN; constant data give the point (mean, mean); 2 values that
    vary give NaN too (BCa's jackknife acceleration needs at least 3).

    >>> low, high = bca_interval(np.array([-0.1, -0.2, -0.15, -0.05, -0.12]), seed=1)
    >>> bool(low < -0.124 < high)
    True
    >>> bca_interval(np.array([0.0, 0.0]))
    (0.0, 0.0)
    """
    if len(d) < 2:
        return np.nan, np.nan
    if np.ptp(d) == 0:
        return float(np.mean(d)), float(np.mean(d))
    if len(d) < 3:
        return np.nan, np.nan
    res = sps.bootstrap((d,), np.mean, confidence_level=confidence, method="BCa",
                        n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def untested_reason(d: np.ndarray) -> str:
    """Why a paired difference vector gets no test ("" when it gets one)."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2:
        return FEW_FACES
    if np.all(d == 0):  # e.g. neutral faces have no expression to lose
        return NO_CHANGE
    if np.isfinite(d).sum() < 2:
        return NO_DATA
    return ""


def paired_test(d: np.ndarray, ref: np.ndarray,
                seed: int | np.random.SeedSequence = 0) -> dict[str, float]:
    """All statistics of one paired difference vector ``d`` (``ref`` = reference values):
    Wilcoxon signed-rank (zero_method="pratt") with the matched-pairs rank-biserial
    correlation and the Hodges–Lehmann shift with its Wilcoxon-inverted CI (``hl_*``), a
    paired t-test with Cohen's d_z, and the mean with its BCa CI (``ci_*``, ``seed`` seeds the
    bootstrap). The family's columns (p_adj, p_perm, …) stay NaN here.

    >>> d = np.array([-0.1, -0.2, -0.15, -0.05, -0.12, -0.3, -0.08, -0.11])
    >>> row = paired_test(d, np.full(8, 0.8))
    >>> row["n"], row["p"], row["rbc"], round(row["d_z"], 3)
    (8, 0.0078125, -1.0, -1.752)
    >>> np.isnan(paired_test(np.zeros(5), np.full(5, 0.8))["p"])  # nothing changed: no test
    np.True_
    """
    d = np.asarray(d, dtype=np.float64)
    n = len(d)
    row = {m: np.nan for m in METRICS}
    row.update(n=n, mean_p_ref=float(np.mean(ref)), mean_p_int=float(np.mean(ref + d)),
               mean_diff=float(np.mean(d)), median_diff=float(np.median(d)),
               frac_zero=float(np.mean(d == 0)))
    row["ci_low"], row["ci_high"] = bca_interval(d, seed=seed)
    row["hl_shift"], row["hl_low"], row["hl_high"] = hodges_lehmann(d)
    if untested_reason(d) in (FEW_FACES, NO_CHANGE):
        return row
    w = pg.wilcoxon(d, zero_method="pratt")
    row.update(W=float(w["W_val"].iloc[0]), p=float(w["p_val"].iloc[0]),
               rbc=float(w["RBC"].iloc[0]))
    sd = d.std(ddof=1)
    if sd > 0:
        t = sps.ttest_1samp(d, 0.0)
        row.update(t=float(t.statistic), p_ttest=float(t.pvalue), d_z=float(d.mean() / sd))
    return row


def correct(pvals: np.ndarray, alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Family-wise/false-discovery correction (pingouin's ``multicomp`` ``method``: holm,
    bonf, fdr_bh, fdr_by, …) over the finite p-values; NaN stay NaN and are not rejected.

    >>> reject, p_adj = correct(np.array([0.01, 0.04, np.nan, 0.005]), 0.05, "holm")
    >>> reject.tolist(), p_adj.round(3).tolist()
    ([True, True, False, True], [0.02, 0.04, nan, 0.015])
    """
    p_adj = np.full(pvals.shape, np.nan)
    reject = np.zeros(pvals.shape, dtype=bool)
    ok = np.isfinite(pvals)
    if ok.any():
        rej, adj = pg.multicomp(pvals[ok], alpha=alpha, method=method)
        p_adj[ok], reject[ok] = adj, rej
    return reject, p_adj


def stable_hash(name: str) -> int:
    """A 64-bit hash of a name that is the same in every process and on every machine
    (unlike ``hash``, which Python salts per process).

    >>> stable_hash("happiness")
    17055290338993609021
    """
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def bootstrap_seed(seed: int, *names: str) -> np.random.SeedSequence:
    """The seed of one test's bootstrap: numpy's SeedSequence of the study ``seed`` and the
    stable hashes of the test's ``names`` (classifier, emotion, comparison). A test keeps its
    stream when other classifiers, emotions or comparisons are added, removed or reordered,
    and no two tests of a family share one.

    >>> a = bootstrap_seed(0, "clf", "happiness", "left")
    >>> b = bootstrap_seed(0, "clf", "happiness", "right")
    >>> bool(a.generate_state(1)[0] != b.generate_state(1)[0])
    True
    """
    return np.random.SeedSequence([int(seed), *(stable_hash(str(n)) for n in names)])
