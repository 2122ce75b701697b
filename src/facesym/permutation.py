"""Westfall–Young max-T sign-flip permutation test over a family of paired differences.

The data are one matrix ``d[face, test]`` of paired differences. Faces are the exchangeable
units: under H0 each face's difference is symmetric about 0, so one resample draws ONE random
sign per face and applies it to every test (column) that face belongs to. Sharing the flip
across the whole family keeps the dependence between tests (the same faces feed every
classifier, emotion and comparison), which is what makes the max-T adjustment both valid and
less conservative than Bonferroni/Holm when tests are correlated.

Tests that use different face subsets (e.g. one column per emotion) are written into the same
matrix with NaN where a face is not part of a test; statistics use per-column counts, so a
face's flip acts on exactly the columns it has data in.

The statistic is the studentised mean t_j = mean_j / (sd_j / √n_j). Under a sign flip the sum
of squares of a column does not change, so each resample needs only one matrix product
``signs @ d`` — 10⁴ flips × 120 tests × 30 faces take a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from facesym.vocab import NEUTRAL

Alternative = Literal["two-sided", "less", "greater"]

_TARGET_ELEMENTS = 1 << 20  # resamples × tests per batch (a few arrays of 8 MiB each)
_RTOL = 1e-10  # ties: a resampled statistic within this relative distance counts as ≥


def required_flips(m: int, alpha: float) -> int:
    """Resamples needed for m permutation p-values to survive a Holm/Bonferroni step:
    B ≥ 20·m/α (the smallest p, 1/(B+1), is then ≤ α/(20·m))."""
    if m < 1 or not 0 < alpha < 1:
        raise ValueError(f"need m ≥ 1 and 0 < alpha < 1, got m={m}, alpha={alpha}")
    return math.ceil(round(20 * m / alpha, 9))


def _prepare(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Zero-filled data, per-column counts, sums of squares and the 'tested' mask."""
    finite = np.isfinite(d)
    x = np.where(finite, d, 0.0)
    n = finite.sum(axis=0).astype(np.float64)
    ss = np.einsum("ij,ij->j", x, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=0) / n
        var = (ss - n * mean**2) / (n - 1)
    scale = np.where(n > 0, ss / np.maximum(n, 1), 0.0)  # mean square: the natural scale
    tested = (n >= 2) & (var > 1e-12 * scale)  # all-zero / constant columns: not tested
    return x, n, ss, tested


def _statistic(sums: np.ndarray, n: np.ndarray, ss: np.ndarray,
               alternative: Alternative) -> np.ndarray:
    """Studentised statistic (oriented by ``alternative``) from the column sums of a flip."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / n
        var = (ss - sums * mean) / (n - 1)
        var = np.where(var > 1e-12 * ss / n, var, 0.0)  # round-off around 0 → exactly 0
        t = mean / np.sqrt(var / n)  # |d| all equal and signs aligned: ±inf (counts as ≥)
    t = np.nan_to_num(t, nan=0.0, posinf=np.inf, neginf=-np.inf)
    if alternative == "two-sided":
        return np.abs(t)
    return -t if alternative == "less" else t


def studentized_t(d: np.ndarray) -> np.ndarray:
    """Per column of ``d[face, test]`` (NaN = face not in test): nanmean / (nanstd(ddof=1)/√n);
    NaN for columns with < 2 values or no variation."""
    d = _as_matrix(d)
    x, n, ss, tested = _prepare(d)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = x.sum(axis=0) / n
        t = mean / np.sqrt((ss - n * mean**2) / (n - 1) / n)
    return np.where(tested, t, np.nan)


def _as_matrix(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim == 1:
        d = d[:, None]
    if d.ndim != 2:
        raise ValueError(f"d must be (n_faces, m_tests), got shape {d.shape}")
    return d


def _sign_batches(n_faces: int, n_flips: int, seed: int, batch: int, exact: bool):
    """Yield (b, n_faces) float ±1 sign matrices: all 2^n patterns when ``exact`` (identity
    first), else ``n_flips`` iid Rademacher vectors. One uniform double per sign, so the stream
    does not depend on the batch size."""
    if exact:
        total = 1 << n_faces
        bits = np.arange(n_faces, dtype=np.int64)
        for start in range(0, total, batch):
            idx = np.arange(start, min(total, start + batch), dtype=np.int64)
            yield 1.0 - 2.0 * ((idx[:, None] >> bits) & 1)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, n_flips, batch):
        b = min(batch, n_flips - start)
        yield np.where(rng.random((b, n_faces)) < 0.5, -1.0, 1.0)


def maxt_signflip(d: np.ndarray, n_flips: int, seed: int, *,
                  alternative: Alternative = "two-sided", step_down: bool = False,
                  exact: bool | None = None, batch_size: int | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sign-flip permutation test per column of ``d[face, test]`` with Westfall–Young max-T.

    Parameters
    ----------
    d : (n_faces, m) paired differences; NaN where a face is not part of a test (a 1-D
        array is one test). Each resample flips the sign of a whole row (one face) in every
        column at once.
    n_flips : number B of random sign vectors (see :func:`required_flips`).
    seed : seed of the random signs (results are reproducible and independent of batch size).
    alternative : "two-sided" uses |t|; "less"/"greater" use −t/t.
    step_down : False (default) = single-step max-T; True = Westfall–Young step-down
        (uniformly more powerful, same FWER control, monotone p-values).
    exact : enumerate all 2^n sign vectors of the n faces with data instead of sampling
        (≤ 30 faces). None (default) does so when 2^n ≤ n_flips; the p-values are then exact
        (count / 2^n, identity included).
    batch_size : resamples per batch (default: about 10⁶ resamples × tests per batch).

    Returns
    -------
    (p_raw, p_maxT), each (m,): the per-test permutation p-value and the family-wise adjusted
    max-T p-value (max over tested columns of the statistic per resample). Monte Carlo p-values
    include the identity flip, p = (1 + #{T* ≥ T_obs}) / (B + 1) ≥ 1/(B+1). Columns with fewer
    than 2 values or no variation (all zero / constant) get NaN and do not enter the maximum.
    """
    d = _as_matrix(d)
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"unknown alternative {alternative!r}")
    if n_flips < 1:
        raise ValueError("n_flips must be ≥ 1")
    n_faces, m = d.shape
    p_raw = np.full(m, np.nan)
    p_max = np.full(m, np.nan)
    x, n, ss, tested = _prepare(d)
    if not tested.any():
        return p_raw, p_max
    cols = np.flatnonzero(tested)
    x, n, ss = x[:, cols], n[cols], ss[cols]
    k = x.shape[1]
    informative = np.any(x != 0, axis=1)  # faces without data (or all zero) flip nothing
    if exact is None:
        exact = int(informative.sum()) < 62 and (1 << int(informative.sum())) <= n_flips
    if exact:  # enumerate the informative faces only: same p, 2^(fewer) patterns
        x = x[informative]
        if x.shape[0] > 30:
            raise ValueError(f"exact enumeration of 2^{x.shape[0]} sign vectors is not feasible")
    n_rows = x.shape[0]  # Monte Carlo: one sign per face of d, whatever its columns

    t_obs = _statistic(x.sum(axis=0)[None, :], n, ss, alternative)[0]
    order = np.argsort(-t_obs, kind="stable")  # most extreme first (for the step-down maxima)
    threshold = t_obs - _RTOL * np.abs(t_obs)
    threshold_sorted = threshold[order]
    count_raw = np.zeros(k, dtype=np.int64)
    count_max = np.zeros(k, dtype=np.int64)
    batch = batch_size or max(1, _TARGET_ELEMENTS // max(k, n_rows, 1))
    total = 0
    for signs in _sign_batches(n_rows, n_flips, seed, batch, exact):
        t_star = _statistic(signs @ x, n, ss, alternative)
        count_raw += (t_star >= threshold).sum(axis=0)
        t_star_sorted = t_star[:, order]
        if step_down:  # successive maxima over {r, …, k} in the order of decreasing T_obs
            running_max = np.maximum.accumulate(t_star_sorted[:, ::-1], axis=1)[:, ::-1]
            count_max += (running_max >= threshold_sorted).sum(axis=0)
        else:
            count_max += (t_star_sorted.max(axis=1)[:, None] >= threshold_sorted).sum(axis=0)
        total += len(signs)

    if exact:  # the identity is one of the enumerated patterns
        p_raw_tested, p_max_sorted = count_raw / total, count_max / total
    else:
        p_raw_tested, p_max_sorted = (1 + count_raw) / (total + 1), (1 + count_max) / (total + 1)
    if step_down:
        p_max_sorted = np.maximum.accumulate(p_max_sorted)
    p_max_tested = np.empty(k)
    p_max_tested[order] = p_max_sorted
    p_raw[cols] = p_raw_tested
    # guard: equal by construction up to the tie tolerance
    p_max[cols] = np.maximum(p_max_tested, p_raw_tested)
    return p_raw, p_max


def omnibus_differences(d: np.ndarray, emotion: Sequence[str] | np.ndarray,
                        exclude: Sequence[str] = (NEUTRAL,),
                        weighting: Literal["face", "emotion"] = "emotion") -> np.ndarray:
    """Per-face column(s) for one omnibus test per classifier ("mean over emotions").

    Each face shows exactly one emotion, so the omnibus uses every face once: its own paired
    difference ``d[face]`` (shape (n_faces,) or (n_faces, k), e.g. one column per comparison),
    NaN for faces whose emotion is in ``exclude``. With ``weighting="emotion"`` each face is
    rescaled by n_used / (E · n_e) so the plain mean of the column equals the mean over the E
    emotions of the per-emotion means (every emotion weighs the same); ``"face"`` leaves d as is
    (the mean over faces). Either column is a valid input to :func:`maxt_signflip`: a sign flip
    of a face flips its rescaled value too.
    """
    d = np.asarray(d, dtype=np.float64)
    emotion = np.asarray([str(e) for e in np.asarray(emotion).ravel()])
    if emotion.shape[0] != d.shape[0]:
        raise ValueError("emotion must have one entry per face (row of d)")
    keep = ~np.isin(emotion, list(exclude))
    out = np.where(keep.reshape(-1, *([1] * (d.ndim - 1))), d, np.nan)
    if weighting == "emotion" and keep.any():
        used = emotion[keep]
        labels, counts = np.unique(used, return_counts=True)
        n_e = dict(zip(labels, counts, strict=True))
        w = np.array([keep.sum() / (len(labels) * n_e[e]) if k else np.nan
                      for e, k in zip(emotion, keep, strict=True)])
        out = out * w.reshape(-1, *([1] * (d.ndim - 1)))
    elif weighting not in ("face", "emotion"):
        raise ValueError(f"unknown weighting {weighting!r}")
    return out
