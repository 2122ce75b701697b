"""Conditional independence of a classifier's output and an image's asymmetry, given the label.

The generalised covariance measure (GCM; Shah & Peters 2020, "The hardness of conditional
independence testing and the generalised covariance measure"): to test Y ⫫ X | Z, regress Y on
Z and X on Z, multiply the residuals, Rᵢ = (Yᵢ − Ê[Y|Zᵢ]) (Xᵢ − Ê[X|Zᵢ]), and test whether
E[R] = 0. Here Y is the intended-class probability, X an asymmetry score and Z the expression
label (its within-label means are the regressions), optionally with the clinical grade as a
further regressor (label dummies + a common slope in the grade).

Images of one subject are dependent, so the variance of ΣR is cluster-robust: with subject sums
S_g = Σ_{i∈g} Rᵢ and G subjects, T = ΣR / √(G/(G−1) · Σ_g (S_g − n_g R̄)²). Two p-values:
``p_asymptotic`` from Student's t with G − 1 degrees of freedom (the usual small-G reference of
cluster-robust tests), and ``p_wild`` from a wild cluster bootstrap with Rademacher weights:
each subject's sum S_g is multiplied by a random sign (under H0 and symmetric S_g the signs are
exchangeable) and T is recomputed, p = (1 + #{|T*| ≥ |T|}) / (B + 1).

A naive correlation of X and Y over all images answers a different question: it is non-zero
whenever both depend on the label, even when neither depends on the other within a label;
``naive_r`` is reported beside the test to show the difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from facesym.stats.paired import bootstrap_seed
from facesym.stats.realdata import label_order

#: keys of :func:`gcm_test`'s result, in the order tables list them
GCM_COLUMNS = ("n_images", "n_subjects", "statistic", "p_asymptotic", "p_wild", "mean_product",
               "residual_r", "naive_r", "uses_grade", "n_resamples")


def design_matrix(emotion: Sequence[str], grade: np.ndarray | None = None) -> np.ndarray:
    """Z as regressors: one indicator column per label (+ the grade as one more column).

    >>> design_matrix(["a", "b", "a"], np.array([1.0, 2.0, 3.0])).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 2.0], [1.0, 0.0, 3.0]]
    """
    emotion = [str(e) for e in emotion]
    labels = label_order(emotion)
    onehot = np.array([[e == lab for lab in labels] for e in emotion], dtype=np.float64)
    if grade is None:
        return onehot
    grade = np.asarray(grade, dtype=np.float64)
    if not np.isfinite(grade).all():
        raise ValueError("the grade must be given for every image to be conditioned on "
                         "(healthy subjects need one too, e.g. House–Brackmann I = 1)")
    return np.column_stack([onehot, grade])


def residualise(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Residuals of the least-squares regression of ``v`` on the columns of ``z``.

    >>> residualise(np.array([1.0, 3.0, 10.0, 14.0]), design_matrix(["a", "a", "b", "b"]))
    array([-1.,  1., -2.,  2.])
    """
    coef, *_ = np.linalg.lstsq(z, v, rcond=None)
    return v - z @ coef


def _cluster_sums(values: np.ndarray, subject: Sequence) -> tuple[np.ndarray, np.ndarray]:
    _, idx = np.unique(np.asarray([str(s) for s in subject]), return_inverse=True)
    sums = np.bincount(idx, weights=values)
    return sums, np.bincount(idx).astype(np.float64)


def _statistic(num: np.ndarray, n_s: np.ndarray, sum_s2: float, sizes: np.ndarray,
               n: float, g: int) -> np.ndarray:
    """T from the (signed) total ``num`` = Σ w S, ``n_s`` = Σ w n_g S_g; the denominator's
    Σ (w S − n_g R̄)² expands to Σ S² − 2 R̄ Σ w n_g S_g + R̄² Σ n_g² (w² = 1)."""
    rbar = num / n
    ss = sum_s2 - 2 * rbar * n_s + rbar**2 * np.sum(sizes**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / np.sqrt(g / (g - 1) * np.maximum(ss, 0.0))



def _finite_pair(y, x) -> tuple[np.ndarray, np.ndarray]:
    """Y and X over the images where both are finite."""
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(x)
    return y[ok], x[ok]


def _label_residuals(y, x, emotion, subject, grade):
    """Residuals of Y and X after regressing each on the label (and grade), over the images
    where both are finite, with those images' labels and subjects."""
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(x)
    emotion = np.asarray([str(e) for e in emotion])[ok]
    subject = np.asarray([str(s) for s in subject])[ok]
    z = design_matrix(emotion, None if grade is None else np.asarray(grade)[ok])
    return residualise(y[ok], z), residualise(x[ok], z), emotion, subject

def gcm_test(y: np.ndarray, x: np.ndarray, emotion: Sequence[str], subject: Sequence, *,
             grade: np.ndarray | None = None, n_resamples: int = 9999, seed: int = 0,
             names: Sequence[str] = ()) -> dict[str, float]:
    """GCM test of Y ⫫ X | label (and grade) with subject clusters (module docstring).

    Images with a non-finite Y or X are left out. ``names`` seed the wild bootstrap.

    >>> rng = np.random.default_rng(3)
    >>> emo = np.tile(["happiness", "sadness", "surprise"], 40)
    >>> subj = np.repeat(np.arange(40), 3)
    >>> x = (emo == "surprise") * 1.0 + rng.normal(0, 1, 120)
    >>> y = (emo == "surprise") * 1.0 + rng.normal(0, 1, 120)  # both depend on the label only
    >>> res = gcm_test(y, x, emo, subj, n_resamples=999)
    >>> bool(res["naive_r"] > 0.1), bool(res["p_wild"] > 0.05)
    (True, True)
    >>> res = gcm_test(y + 0.5 * x, x, emo, subj, n_resamples=999)  # Y depends on X
    >>> bool(res["p_wild"] < 0.01), bool(res["p_asymptotic"] < 0.01)
    (True, True)
    """
    ry, rx, emotion, subject = _label_residuals(y, x, emotion, subject, grade)
    prod = ry * rx
    sums, sizes = _cluster_sums(prod, subject)
    g, n = len(sums), float(len(prod))
    out = {"n_images": int(n), "n_subjects": g, "statistic": np.nan, "p_asymptotic": np.nan,
           "p_wild": np.nan, "mean_product": float(prod.mean()) if n else np.nan,
           "residual_r": _corr(ry, rx), "naive_r": _corr(*_finite_pair(y, x)),
           "uses_grade": grade is not None, "n_resamples": n_resamples}
    if g < 3:
        return out
    sum_s2 = float(np.sum(sums**2))
    t = float(_statistic(np.array(sums.sum()), np.array(np.sum(sizes * sums)), sum_s2, sizes,
                         n, g))
    if not np.isfinite(t):  # no residual variance (e.g. one image per label): no test
        return out
    rng = np.random.default_rng(bootstrap_seed(seed, "realdata", "gcm", *names))
    exceed = 0
    for start in range(0, n_resamples, 4096):
        b = min(4096, n_resamples - start)
        w = np.where(rng.random((b, g)) < 0.5, -1.0, 1.0)
        t_star = _statistic(w @ sums, w @ (sizes * sums), sum_s2, sizes, n, g)
        exceed += int(np.sum(np.abs(t_star) >= abs(t) - 1e-12))
    out.update(statistic=t, p_asymptotic=float(2 * sps.t.sf(abs(t), g - 1)),
               p_wild=(1 + exceed) / (n_resamples + 1))
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return np.nan
    return float(np.corrcoef(a, b)[0, 1])


def residual_correlations(y: np.ndarray, x: np.ndarray, emotion: Sequence[str],
                          subject: Sequence, grade: np.ndarray | None = None) -> pd.DataFrame:
    """Per label: images, subjects and the correlation of the Y and X residuals (the GCM's
    residuals, i.e. within-label correlation when only the label is conditioned on).

    >>> emo = ["a"] * 4 + ["b"] * 4
    >>> y = np.array([1, 2, 3, 4, 10, 11, 12, 13.0])
    >>> residual_correlations(y, -y, emo, range(8))["residual_r"].tolist()
    [-1.0, -1.0]
    """
    ry, rx, emotion, subject = _label_residuals(y, x, emotion, subject, grade)
    rows = [{"emotion": lab, "n_images": int((emotion == lab).sum()),
             "n_subjects": len(set(subject[emotion == lab])),
             "residual_r": _corr(ry[emotion == lab], rx[emotion == lab])}
            for lab in label_order(emotion)]
    return pd.DataFrame(rows, columns=["emotion", "n_images", "n_subjects", "residual_r"])
