"""The family of paired tests over classifier × emotion × comparison, with named dimensions.

Every test of the family is one cell of ``(classifier, emotion, comparison)``; the paired
statistics of a cell come from :func:`~facesym.stats.paired.paired_test` run over the ``face``
dimension (``xarray.apply_ufunc``), the corrections and the max-T test run over the cells
stacked into one ``test`` dimension. No step looks anything up by position.

Seeds. Each cell's BCa bootstrap is seeded by :func:`~facesym.stats.paired.bootstrap_seed`
of (seed, classifier, emotion, comparison), so it depends on the test's names only. (Until
facesym 0.1 the seed was the cell's position, ``i·1000 + j·10 + k``, independent of ``seed``;
intervals computed then differ from today's by Monte Carlo error only.) The max-T sign flips
use ``seed`` for the family of cells and ``seed + 1`` for the omnibus family: one random sign
per face, shared by every test of a family (see :mod:`facesym.permutation`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from facesym.permutation import maxt_signflip, omnibus_differences, required_flips
from facesym.stats.paired import (
    FEW_FACES,
    METRICS,
    NO_CHANGE,
    NO_DATA,
    bootstrap_seed,
    correct,
    intended_probability,
    paired_differences,
    paired_test,
    reference_probability,
)
from facesym.vocab import (
    CANONICAL_LABELS,
    CLASSIFIER,
    COMPARISON,
    EMOTION,
    FACE,
    METRIC,
    NEUTRAL,
    SIDE,
    TEST,
    comparisons_for,
)

#: the dimensions of one test, in the order tables list them
FAMILY_DIMS = (CLASSIFIER, EMOTION, COMPARISON)
OMNIBUS_DIMS = (CLASSIFIER, COMPARISON)


def _stacked_maxt(per_face: xr.DataArray, dims: tuple[str, ...], n_flips: int,
                  seed: int) -> tuple[xr.DataArray, xr.DataArray]:
    """max-T over the cells of ``per_face[face, *dims]`` (NaN = face not in that test)."""
    matrix = per_face.stack({TEST: dims}).transpose(FACE, TEST)
    p_perm, p_maxt = maxt_signflip(matrix.values, n_flips, seed)
    cells = matrix.isel({FACE: 0}, drop=True)

    def back(values: np.ndarray) -> xr.DataArray:
        return cells.copy(data=values).unstack(TEST).transpose(*dims)

    return back(p_perm), back(p_maxt)


def _corrected(p: xr.DataArray, alpha: float, correction: str
               ) -> tuple[xr.DataArray, xr.DataArray]:
    """(significant, p_adj) of every finite p of the family."""
    stacked = p.stack({TEST: FAMILY_DIMS})
    reject, p_adj = correct(stacked.values, alpha, correction)
    return (stacked.copy(data=reject).unstack(TEST).transpose(*FAMILY_DIMS),
            stacked.copy(data=p_adj).unstack(TEST).transpose(*FAMILY_DIMS))


def _cell_statistics(d: np.ndarray, ref: np.ndarray, member: np.ndarray,
                     seed: np.random.SeedSequence) -> np.ndarray:
    """METRICS of one cell: its faces' differences (``member`` selects them)."""
    row = paired_test(d[member], ref[member], seed=seed)
    return np.array([row[m] for m in METRICS], dtype=np.float64)


def untested_reasons(tests: xr.Dataset) -> xr.DataArray:
    """Per test why it has no p-value ("" when it has one), from its n, frac_zero and p."""
    return xr.where(tests["n"] < 2, FEW_FACES,
                    xr.where(tests["frac_zero"] == 1, NO_CHANGE,
                             xr.where(tests["p"].isnull(), NO_DATA, "")))


def effect_tests(cubes: Mapping[str, xr.Dataset], alpha: float = 0.05,
                 correction: str = "holm", n_flips: int | None = None,
                 seed: int = 0) -> xr.Dataset:
    """The family of tests over classifier × emotion × comparison, as a Dataset of metrics.

    ``cubes`` maps each classifier's name to its cube (prob[face, side, strength, label] and
    emotion[face]; every cube has the same faces). The comparisons are the sides rendered and,
    when the control was rendered, ``<side>_vs_control`` (:func:`facesym.vocab.comparisons_for`).
    Each cell gets the statistics of :func:`~facesym.stats.paired.paired_test` over its
    emotion's faces; ``correction`` (pingouin's name: holm, fdr_by, …) runs over the whole
    family. A Westfall–Young max-T sign-flip test (``p_perm`` raw, ``p_maxT`` family-wise)
    flips the same faces for every test; ``n_flips`` defaults to 20·m/α (m tests). A
    per-classifier omnibus (``omnibus_*``: the mean over non-neutral emotions of the
    per-emotion mean difference) answers "how many classifiers lower their output".

    A cell without a test (fewer than 2 faces, or no change at all as for neutral faces) has
    NaN p-values and says why in ``untested_reason``. Seeds: see the module docstring.

    >>> from facesym.stats.synthetic import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> tests = effect_tests({"clf": cube}, n_flips=1000)
    >>> dict(tests.sizes)
    {'classifier': 1, 'emotion': 3, 'comparison': 5}
    >>> cell = tests.sel(classifier="clf", emotion="happiness")
    >>> cell["comparison"].values[cell["significant"].values].tolist()
    ['left', 'left_vs_control']
    >>> tests["untested_reason"].sel(classifier="clf", emotion="neutral", comparison="left").item()
    'no change: every difference is 0'
    """
    names = list(cubes)
    first = next(iter(cubes.values()))
    emotions = [str(e) for e in dict.fromkeys(first[EMOTION].values)
                if str(e) in CANONICAL_LABELS]
    comparisons = list(comparisons_for(str(s) for s in first[SIDE].values))
    diffs, refs = [], []
    for name, cube in cubes.items():
        if not np.array_equal(cube[FACE].values, first[FACE].values):
            raise ValueError(f"classifier cube {name} has other faces than {names[0]}")
        p = intended_probability(cube["prob"].load(), cube[EMOTION].load())
        diffs.append(paired_differences(p, comparisons))
        refs.append(reference_probability(p, comparisons))
    d = xr.concat(diffs, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
    ref = xr.concat(refs, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
    face_emotion = xr.DataArray([str(e) for e in first[EMOTION].values], dims=FACE,
                                coords={FACE: first[FACE].values})
    member = face_emotion == xr.DataArray(emotions, dims=EMOTION, coords={EMOTION: emotions})
    seeds = xr.apply_ufunc(np.vectorize(lambda c, e, k: bootstrap_seed(seed, c, e, k),
                                        otypes=[object]),
                           d[CLASSIFIER], member[EMOTION], d[COMPARISON])
    cells = xr.apply_ufunc(_cell_statistics, d, ref, member, seeds,
                           input_core_dims=[[FACE], [FACE], [FACE], []],
                           output_core_dims=[[METRIC]], vectorize=True,
                           output_dtypes=[np.float64],
                           dask_gufunc_kwargs={"output_sizes": {METRIC: len(METRICS)}})
    tests = (cells.assign_coords({METRIC: list(METRICS)}).transpose(*FAMILY_DIMS, METRIC)
             .to_dataset(dim=METRIC))
    tests["significant"], tests["p_adj"] = _corrected(tests["p"], alpha, correction)
    family = int(tests["p"].notnull().sum())
    flips = n_flips or required_flips(max(family, 1), alpha)
    per_face = d.where(member & tests["p"].notnull())  # faces of the tested cells only
    tests["p_perm"], tests["p_maxT"] = _stacked_maxt(per_face, FAMILY_DIMS, flips, seed)
    tests["untested_reason"] = untested_reasons(tests)

    omnibus = _omnibus_columns(d, face_emotion.values)
    omnibus_flips = n_flips or required_flips(len(names) * len(comparisons), alpha)
    o_perm, o_maxt = _stacked_maxt(omnibus, OMNIBUS_DIMS, omnibus_flips, seed + 1)
    tests["omnibus_mean_diff"] = _face_mean(omnibus)
    tests["omnibus_mean_diff"].attrs["description"] = \
        "mean over non-neutral emotions of the mean d"
    tests["omnibus_p_perm"], tests["omnibus_p_maxT"] = o_perm, o_maxt
    tests["omnibus_p_maxT"].attrs["description"] = "max-T over classifiers × comparisons"
    tests["significant"] = tests["significant"].astype(bool)
    tests.attrs.update(alpha=alpha, correction=correction, family_size=family,
                       test="Wilcoxon signed-rank, zero_method=pratt, two-sided",
                       permutation="Westfall-Young single-step max-T, sign flips of faces "
                                   "shared by every test", n_flips=int(flips), seed=int(seed),
                       bootstrap_seeds="numpy SeedSequence(seed, blake2b-64 of classifier, "
                                       "emotion, comparison) per test")
    return tests


def _omnibus_columns(d: xr.DataArray, emotion: np.ndarray) -> xr.DataArray:
    """omnibus[face, classifier, comparison]: each face's difference, emotion-weighted, NaN
    for neutral faces (:func:`facesym.permutation.omnibus_differences`)."""
    faces_first = d.transpose(FACE, *OMNIBUS_DIMS)
    return faces_first.copy(data=omnibus_differences(faces_first.values, emotion,
                                                     exclude=(NEUTRAL,), weighting="emotion"))


def _face_mean(per_face: xr.DataArray) -> xr.DataArray:
    """NaN-skipping mean over faces of every omnibus cell (NaN where no face has data)."""
    matrix = per_face.stack({TEST: OMNIBUS_DIMS}).transpose(FACE, TEST)
    finite = np.isfinite(matrix.values).any(axis=0)
    mean = np.full(matrix.sizes[TEST], np.nan)
    mean[finite] = np.nanmean(matrix.values[:, finite], axis=0)
    return matrix.isel({FACE: 0}, drop=True).copy(data=mean).unstack(TEST) \
        .transpose(*OMNIBUS_DIMS)
