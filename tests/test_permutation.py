"""Westfall–Young max-T sign-flip test: null calibration, power, NaN handling, speed."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from scipy import stats as sps

from facesym.permutation import (
    maxt_signflip,
    omnibus_differences,
    required_flips,
    studentized_t,
)


def brute_force_p(d: np.ndarray) -> float:
    """Exact two-sided sign-flip p of the t statistic by looping over all sign patterns."""
    d = d[np.isfinite(d)]
    t_obs = abs(sps.ttest_1samp(d, 0.0).statistic)
    hits = 0
    patterns = list(itertools.product((1.0, -1.0), repeat=len(d)))
    for s in patterns:
        x = d * np.array(s)
        sd = x.std(ddof=1)
        t = np.inf if sd == 0 else abs(x.mean() / (sd / np.sqrt(len(x))))
        hits += t >= t_obs * (1 - 1e-10)
    return hits / len(patterns)


def test_required_flips():
    assert required_flips(119, 0.05) == 47600
    assert required_flips(1, 0.05) == 400
    assert required_flips(3, 0.01) == 6000
    with pytest.raises(ValueError):
        required_flips(0, 0.05)


def test_null_calibration_and_fwer():
    """Symmetric noise: raw p roughly uniform, max-T family-wise error ≤ α (loose bound)."""
    rng = np.random.default_rng(7)
    n_sims, n_faces, m, alpha = 200, 15, 5, 0.05
    raw, any_reject, any_reject_corr = [], 0, 0
    for s in range(n_sims):
        d = rng.standard_t(4, size=(n_faces, m))  # heavy-tailed but symmetric
        p_raw, p_max = maxt_signflip(d, 199, seed=s)
        raw.append(p_raw)
        any_reject += bool((p_max <= alpha).any())
        # strongly correlated columns (shared face effect): max-T must still hold
        dc = rng.normal(size=(n_faces, 1)) + 0.3 * rng.normal(size=(n_faces, m))
        any_reject_corr += bool((maxt_signflip(dc, 199, seed=s)[1] <= alpha).any())
    raw = np.concatenate(raw)
    assert 0.02 <= np.mean(raw <= 0.05) <= 0.09
    assert 0.42 <= np.mean(raw <= 0.5) <= 0.58
    assert any_reject / n_sims <= 0.10  # binomial sd at 0.05 is 0.015
    assert any_reject_corr / n_sims <= 0.10


def test_shift_detected_and_maxt_not_below_raw():
    rng = np.random.default_rng(1)
    d = rng.normal(size=(30, 20))
    d[:, 3] += 1.0
    p_raw, p_max = maxt_signflip(d, 4000, seed=0)
    assert p_max[3] < 0.01
    assert np.all(p_max >= p_raw)
    assert np.all(p_raw >= 1 / 4001) and np.all(p_max <= 1)
    # step-down: no larger than single-step, still at least the raw p, monotone in |t|
    _, p_sd = maxt_signflip(d, 4000, seed=0, step_down=True)
    assert np.all(p_sd <= p_max + 1e-12) and np.all(p_sd >= p_raw)
    order = np.argsort(-np.abs(studentized_t(d)))
    assert np.all(np.diff(p_sd[order]) >= 0)


def test_single_test_and_duplicated_columns():
    rng = np.random.default_rng(2)
    d = rng.normal(0.3, 1, size=25)
    p_raw, p_max = maxt_signflip(d, 2000, seed=3)
    assert p_raw.shape == (1,) and p_max[0] == p_raw[0]
    # identical columns have identical statistics under every flip: no multiplicity penalty
    p_raw, p_max = maxt_signflip(np.column_stack([d, d, d]), 2000, seed=3)
    np.testing.assert_allclose(p_max, p_raw)


def test_exact_enumeration_matches_scipy_and_brute_force():
    rng = np.random.default_rng(3)
    d = rng.normal(0.4, 1, size=(9, 3))
    p_raw, _ = maxt_signflip(d, 10_000, seed=0)  # 2^9 ≤ 10⁴: exact
    for j in range(3):
        res = sps.permutation_test(
            (d[:, j],), lambda x, axis: sps.ttest_1samp(x, 0.0, axis=axis).statistic,
            permutation_type="samples", n_resamples=np.inf, vectorized=True)
        assert p_raw[j] == pytest.approx(res.pvalue)
        assert p_raw[j] == pytest.approx(brute_force_p(d[:, j]))


def test_nan_marks_faces_outside_a_test():
    rng = np.random.default_rng(4)
    d = rng.normal(0.5, 1, size=(8, 2))
    d[[1, 5], 0] = np.nan  # test 0 uses 6 faces
    d[[0, 2, 3], 1] = np.nan  # test 1 uses 5 faces
    p_raw, p_max = maxt_signflip(d, 1000, seed=0)  # 2^8 ≤ 1000: exact
    assert p_raw[0] == pytest.approx(brute_force_p(d[:, 0]))
    assert p_raw[1] == pytest.approx(brute_force_p(d[:, 1]))
    t = studentized_t(d)
    assert t[0] == pytest.approx(sps.ttest_1samp(d[:, 0], 0, nan_policy="omit").statistic)
    # Monte Carlo: a face's flip does not depend on the other columns, so a column's raw p is
    # the same alone or in the family
    big = rng.normal(0.2, 1, size=(40, 4))
    big[:20, 0] = np.nan
    big[20:, 1] = np.nan
    p_family, _ = maxt_signflip(big, 3000, seed=9)
    p_alone, _ = maxt_signflip(big[:, [0]], 3000, seed=9)
    assert p_family[0] == p_alone[0]
    assert np.isfinite(p_family).all()


def test_untested_columns_are_nan_and_ignored():
    rng = np.random.default_rng(5)
    d = rng.normal(size=(20, 3))
    d[:, 1] = 0.0  # nothing changed (e.g. neutral faces)
    full = np.column_stack([d, np.full(20, 0.25), np.r_[1.0, np.full(19, np.nan)]])
    p_raw, p_max = maxt_signflip(full, 500, seed=1)
    assert np.isnan(p_raw[[1, 3, 4]]).all() and np.isnan(p_max[[1, 3, 4]]).all()
    ref_raw, ref_max = maxt_signflip(d[:, [0, 2]], 500, seed=1)
    np.testing.assert_allclose(p_raw[[0, 2]], ref_raw)
    np.testing.assert_allclose(p_max[[0, 2]], ref_max)
    assert np.isnan(maxt_signflip(np.zeros((10, 2)), 100, seed=0)[0]).all()


def test_reproducible_and_batch_independent():
    rng = np.random.default_rng(6)
    d = rng.normal(0.2, 1, size=(40, 10))
    a = maxt_signflip(d, 999, seed=11)
    b = maxt_signflip(d, 999, seed=11, batch_size=37)
    c = maxt_signflip(d, 999, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_one_sided_alternatives():
    rng = np.random.default_rng(8)
    d = rng.normal(-0.8, 1, size=(25, 2))
    less = maxt_signflip(d, 2000, seed=0, alternative="less")[0]
    greater = maxt_signflip(d, 2000, seed=0, alternative="greater")[0]
    assert (less < 0.01).all() and (greater > 0.9).all()


def test_omnibus_differences_weights_emotions_equally():
    d = np.array([1.0, 1.0, 1.0, 4.0, 0.0])
    emotion = ["happiness", "happiness", "happiness", "fear", "neutral"]
    x = omnibus_differences(d, emotion)
    assert np.isnan(x[4])
    assert np.nanmean(x) == pytest.approx((1.0 + 4.0) / 2)  # mean of emotion means
    y = omnibus_differences(d, emotion, weighting="face")
    assert np.nanmean(y) == pytest.approx(7.0 / 4)


def test_speed_1e4_flips_120_tests():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(30, 120))
    start = time.perf_counter()
    p_raw, p_max = maxt_signflip(d, 10_000, seed=0)
    assert time.perf_counter() - start < 10.0  # typically well under 0.2 s
    assert np.isfinite(p_max).all()
