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
per face, shared by every test of a family (see :mod:`facesym.permutation`). The omnibus
bootstrap is seeded by (seed, "omnibus", classifier, comparison) (:mod:`facesym.power`).

Floor. A classifier × emotion whose mean intended-class probability on the untouched renders
(a = 0, the same image for every side) is below ``floor`` has little to lose: its differences
are bounded by that mean and say little about symmetry. Every comparison of such a cell is
flagged ``floor`` (its tests are still run and reported), and the omnibus of that classifier
leaves the floor emotions out, as it leaves out neutral faces: the omnibus, its max-T p-value,
its bootstrap CI and hence the verdicts (:mod:`facesym.stats.verdict`) are about the emotions
the classifier sees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
    STRENGTH,
    TEST,
    comparisons_for,
)

#: the dimensions of one test, in the order tables list them
FAMILY_DIMS = (CLASSIFIER, EMOTION, COMPARISON)
OMNIBUS_DIMS = (CLASSIFIER, COMPARISON)
#: default of ``stats.floor``: mean intended-class probability at a = 0 below which a
#: classifier × emotion is at floor
DEFAULT_FLOOR = 0.1
#: default of ``stats.equivalence_margin``: an omnibus CI inside ±margin counts as "no effect"
DEFAULT_EQUIVALENCE_MARGIN = 0.05
#: resamples of the omnibus cluster bootstrap
OMNIBUS_RESAMPLES = 10_000


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
                 seed: int = 0, *, comparisons: Sequence[str] | None = None,
                 floor: float = DEFAULT_FLOOR,
                 equivalence_margin: float = DEFAULT_EQUIVALENCE_MARGIN,
                 n_resamples: int = OMNIBUS_RESAMPLES) -> xr.Dataset:
    """The family of tests over classifier × emotion × comparison, as a Dataset of metrics.

    ``cubes`` maps each classifier's name to its cube (prob[face, side, strength, label] and
    emotion[face]; every cube has the same faces). The comparisons (by default every one the
    rendered sides allow, :func:`facesym.vocab.comparisons_for` with laterality) are the
    sides' own effects, ``<side>_vs_control`` when the control was rendered and
    ``left_vs_right`` when both hemifaces were. Each cell gets the statistics of
    :func:`~facesym.stats.paired.paired_test` over its emotion's faces; ``correction``
    (pingouin's name: holm, fdr_by, …) runs over the whole family. A Westfall–Young max-T
    sign-flip test on t (``p_perm`` raw, ``p_maxT`` family-wise) flips the same faces for
    every test; ``n_flips`` defaults to 20·m/α (m tests). ``mean_p0[classifier, emotion]`` is
    the mean intended-class probability at a = 0 and ``floor`` flags the cells below
    ``floor`` (module docstring). A per-classifier omnibus (``omnibus_*``: the mean over the
    non-neutral emotions above the floor of the per-emotion mean difference, with its max-T
    p-value over classifiers × comparisons and the percentile CI of a cluster bootstrap over
    faces stratified by emotion, ``n_resamples``) answers "how many classifiers lower their
    output"; ``equivalence_margin`` is kept in the attributes for the verdicts.

    A cell without a test (fewer than 2 faces, or no change at all as for neutral faces) has
    NaN p-values and says why in ``untested_reason``. Seeds: see the module docstring.

    >>> from facesym.stats.synthetic import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, seed=1)
    >>> tests = effect_tests({"clf": cube}, n_flips=1000, n_resamples=1000)
    >>> dict(tests.sizes)
    {'classifier': 1, 'emotion': 3, 'comparison': 6}
    >>> cell = tests.sel(classifier="clf", emotion="happiness")
    >>> cell["comparison"].values[cell["significant"].values].tolist()
    ['left', 'left_vs_control', 'left_vs_right']
    >>> tests["untested_reason"].sel(classifier="clf", emotion="neutral", comparison="left").item()
    'no change: every difference is 0'
    >>> omnibus = tests.sel(classifier="clf", comparison="left_vs_control")
    >>> bool(omnibus["omnibus_ci_low"] < -0.3 < omnibus["omnibus_ci_high"])
    True
    """
    names = list(cubes)
    first = next(iter(cubes.values()))
    emotions = [str(e) for e in dict.fromkeys(first[EMOTION].values)
                if str(e) in CANONICAL_LABELS]
    sides = [str(s) for s in first[SIDE].values]
    comparisons = list(comparisons or comparisons_for(sides, laterality=True))
    diffs, refs, p0 = [], [], []
    for name, cube in cubes.items():
        if not np.array_equal(cube[FACE].values, first[FACE].values):
            raise ValueError(f"classifier cube {name} has other faces than {names[0]}")
        p = intended_probability(cube["prob"].load(), cube[EMOTION].load())
        diffs.append(paired_differences(p, comparisons))
        refs.append(reference_probability(p, comparisons))
        p0.append(p.sel({STRENGTH: 0.0}).isel({SIDE: 0}, drop=True).drop_vars(STRENGTH))
    d = xr.concat(diffs, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
    ref = xr.concat(refs, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
    face_emotion = xr.DataArray([str(e) for e in first[EMOTION].values], dims=FACE,
                                coords={FACE: first[FACE].values})
    member = face_emotion == xr.DataArray(emotions, dims=EMOTION, coords={EMOTION: emotions})
    untouched = xr.concat(p0, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
    mean_p0 = untouched.where(member).mean(FACE).transpose(CLASSIFIER, EMOTION)
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
    tests["significant_maxT"] = tests["p_maxT"] < alpha  # the primary method (NaN: False)
    tests["untested_reason"] = untested_reasons(tests)
    tests["mean_p0"] = mean_p0
    tests["mean_p0"].attrs["description"] = "mean intended-class probability at a = 0"
    at_floor = (mean_p0 < floor).broadcast_like(tests["p"]).transpose(*FAMILY_DIMS)
    tests["floor"] = at_floor
    tests["floor"].attrs["description"] = f"mean_p0 < {floor}: left out of the omnibus"

    excluded = {name: (NEUTRAL, *[e for e in emotions if bool(at_floor.sel(
        {CLASSIFIER: name, EMOTION: e}).any())]) for name in names}
    omnibus = _omnibus_columns(d, face_emotion.values, excluded)
    omnibus_flips = n_flips or required_flips(len(names) * len(comparisons), alpha)
    o_perm, o_maxt = _stacked_maxt(omnibus, OMNIBUS_DIMS, omnibus_flips, seed + 1)
    tests["omnibus_mean_diff"] = _face_mean(omnibus)
    tests["omnibus_mean_diff"].attrs["description"] = \
        "mean over non-neutral emotions above the floor of the mean d"
    tests["omnibus_p_perm"], tests["omnibus_p_maxT"] = o_perm, o_maxt
    tests["omnibus_p_maxT"].attrs["description"] = "max-T on t over classifiers × comparisons"
    for name, values in _omnibus_intervals(d, face_emotion.values, excluded, seed,
                                           n_resamples).items():
        tests[name] = values
    tests["significant"] = tests["significant"].astype(bool)
    tests.attrs.update(alpha=alpha, correction=correction, family_size=family,
                       test="Wilcoxon signed-rank, zero_method=pratt, two-sided",
                       permutation="Westfall-Young single-step max-T on t, sign flips of "
                                   "faces shared by every test", n_flips=int(flips),
                       seed=int(seed),
                       bootstrap_seeds="numpy SeedSequence(seed, blake2b-64 of classifier, "
                                       "emotion, comparison) per test",
                       floor=float(floor), equivalence_margin=float(equivalence_margin),
                       omnibus_interval="percentile CI of a cluster bootstrap over faces "
                                        "stratified by emotion, "
                                        f"{int(n_resamples)} resamples",
                       hl_interval="Wilcoxon-inverted order statistics of the Walsh "
                                   "averages: exact null distribution for n <= 50, normal "
                                   "approximation above")
    return tests


def _omnibus_columns(d: xr.DataArray, emotion: np.ndarray,
                     excluded: Mapping[str, Sequence[str]]) -> xr.DataArray:
    """omnibus[face, classifier, comparison]: each face's difference, emotion-weighted, NaN
    for faces of the classifier's ``excluded`` emotions (neutral and floor;
    :func:`facesym.permutation.omnibus_differences`)."""
    faces_first = d.transpose(FACE, *OMNIBUS_DIMS)
    columns = np.stack([omnibus_differences(faces_first.sel({CLASSIFIER: name}).values,
                                            emotion, exclude=excluded[str(name)],
                                            weighting="emotion")
                        for name in faces_first[CLASSIFIER].values], axis=1)
    return faces_first.copy(data=columns)


def _omnibus_intervals(d: xr.DataArray, emotion: np.ndarray,
                       excluded: Mapping[str, Sequence[str]], seed: int,
                       n_resamples: int) -> dict[str, xr.DataArray]:
    """omnibus_ci_low/high and omnibus_n_emotions per classifier × comparison, from
    :func:`facesym.power.omnibus_contrast` (NaN where an emotion has fewer than 2 faces or
    no emotion is left)."""
    from facesym.power import omnibus_contrast  # power imports this package: import late

    grid = d.isel({FACE: 0}, drop=True).transpose(*OMNIBUS_DIMS)
    low, high = np.full(grid.shape, np.nan), np.full(grid.shape, np.nan)
    used = np.zeros(grid.shape, dtype=np.int64)
    for i, name in enumerate(grid[CLASSIFIER].values):
        kept = ~np.isin(emotion, list(excluded[str(name)]))
        used[i, :] = len(set(emotion[kept]))
        for j, comparison in enumerate(grid[COMPARISON].values):
            try:
                res = omnibus_contrast(d.sel({CLASSIFIER: name, COMPARISON: comparison}),
                                       emotion, classifier=str(name),
                                       comparison=str(comparison), seed=seed,
                                       n_resamples=n_resamples,
                                       exclude=excluded[str(name)])
            except ValueError:  # no emotion left, or one with a single face
                continue
            low[i, j], high[i, j] = res["ci_low"], res["ci_high"]
    return {"omnibus_ci_low": grid.copy(data=low), "omnibus_ci_high": grid.copy(data=high),
            "omnibus_n_emotions": grid.copy(data=used)}


def _face_mean(per_face: xr.DataArray) -> xr.DataArray:
    """NaN-skipping mean over faces of every omnibus cell (NaN where no face has data)."""
    matrix = per_face.stack({TEST: OMNIBUS_DIMS}).transpose(FACE, TEST)
    finite = np.isfinite(matrix.values).any(axis=0)
    mean = np.full(matrix.sizes[TEST], np.nan)
    mean[finite] = np.nanmean(matrix.values[:, finite], axis=0)
    return matrix.isel({FACE: 0}, drop=True).copy(data=mean).unstack(TEST) \
        .transpose(*OMNIBUS_DIMS)
