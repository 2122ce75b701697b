"""Precision of the omnibus contrast, and how many faces a study needs for a target precision.

The omnibus of one classifier and one comparison (see :mod:`facesym.stats.family`) is the mean
over the non-neutral emotions of the per-emotion mean paired difference,

    D = (1/E) · Σ_e mean_e(d),

where each face shows exactly one emotion and contributes one difference d (the same d the
statistics test: p_side(a_max) − p_control(a_max) for a symmetry contrast, p(a_max) − p(0) for
a raw effect). Faces are independent draws of the scene model, so the faces of an emotion are
the clusters (a face's images share identity, pose and light) and the strata are the emotions.

Variance. The per-emotion means are independent, so

    Var(D) = (1/E²) · Σ_e Var(mean_e) = Σ_e s_e² / (E² · n_e),

with s_e² the variance of d among faces of emotion e. With n faces per emotion (the balanced
design) this is S² / n with S² = Σ_e s_e² / E², so the half-width of a normal-theory interval is
h(n) = z · S / √n, and the faces per emotion needed for a half-width h* are

    n* = ⌈ z² · Σ_e s_e² / (E² · h*²) ⌉.

Interval. :func:`omnibus_contrast` gives a percentile interval of a stratified cluster
bootstrap: faces are resampled with replacement within each emotion. It is the "expanded"
percentile interval (Hesterberg 2015, The American Statistician 69:371) made for strata: before
resampling, each emotion's differences are spread about their mean by √(n_e / (n_e − 1)), so the
bootstrap variance equals the unbiased Σ_e s_e² / (E² n_e) above instead of falling short by
(n_e − 1)/n_e, and the percentiles are taken at Φ(∓t) with t the Student quantile at the
Welch–Satterthwaite degrees of freedom (:func:`expanded_tail`), not at α/2, so the interval is as
wide as a t interval while keeping the bootstrap's shape. Both fix the plain percentile
interval's known small-sample under-coverage. The formula and the bootstrap then estimate the
same spread, which :func:`faces_needed` reports side by side. Measured coverage of the nominal
95 % (6 emotions × 30 faces, unequal SDs): see tests/test_power.py; heavy right skew
(lognormal σ = 0.8) still under-covers slightly, as every interval of a mean does at this size.

>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(0)
>>> emotion = np.repeat(["happiness", "surprise", "neutral"], 40)
>>> d = np.where(emotion == "neutral", 0.0, rng.normal(-0.05, 0.1, emotion.size))
>>> diffs = xr.DataArray(d, dims="face", coords={"emotion": ("face", emotion)})
>>> res = omnibus_contrast(diffs, classifier="clf", comparison="left_vs_control")
>>> round(res["mean"], 4), res["n_faces"], res["n_emotions"]
(-0.038, 80, 2)
>>> bool(res["ci_low"] < -0.05 < res["ci_high"])
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as sps

from facesym.cubes import open_cube
from facesym.stats import bootstrap_seed, intended_probability, paired_differences
from facesym.vocab import (
    CLASSIFIER,
    COMPARISON,
    EMOTION,
    FACE,
    NEUTRAL,
    SIDE,
    STRENGTH,
    comparisons_for,
    is_contrast,
)

#: resamples of the omnibus bootstrap
N_RESAMPLES = 10_000
#: default target half-width of the omnibus CI (issue: ±0.02 on the probability scale)
TARGET_HALF_WIDTH = 0.02
#: throughput assumptions of the time estimate, images per second on 2 CPU cores: rendering,
#: and classifying one image by all six default classifiers
RENDER_RATE = 100.0
CLASSIFY_RATE = 40.0
#: quantile of the bootstrap distribution of the per-face variance for a cautious study size
PLANNING_QUANTILE = 0.9
#: the seed when a study's own seed cannot be read
FALLBACK_SEED = 0
#: elements per block of the bootstrap (bounds its memory at any study size)
_BLOCK_ELEMENTS = 4_000_000
#: columns of :func:`faces_needed`, in order
POWER_COLUMNS = ("classifier", "comparison", "mean", "ci_low", "ci_high", "half_width",
                 "half_width_formula", "sd_omnibus", "sd_omnibus_q90", "faces_per_emotion",
                 "target_half_width", "faces_per_emotion_needed", "faces_per_emotion_needed_q90",
                 "faces_needed", "images_needed")


def _strata(diffs: xr.DataArray, emotion: Sequence[str] | np.ndarray | None,
            exclude: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(differences, emotion) of the faces that enter the omnibus: finite and not excluded."""
    if diffs.dims != (FACE,):
        raise ValueError(f"diffs must have the single dimension {FACE!r}, got {diffs.dims}")
    if emotion is None:
        if EMOTION not in diffs.coords:
            raise ValueError(f"diffs needs an {EMOTION!r} coordinate on {FACE!r} "
                             "(or pass emotion=)")
        emotion = diffs[EMOTION].values
    labels = np.asarray([str(e) for e in np.asarray(emotion).ravel()])
    values = np.asarray(diffs.values, dtype=np.float64)
    if labels.shape != values.shape:
        raise ValueError("emotion must have one entry per face")
    keep = np.isfinite(values) & ~np.isin(labels, list(exclude))
    return values[keep], labels[keep]


def stratum_variances(diffs: xr.DataArray, emotion: Sequence[str] | np.ndarray | None = None,
                      exclude: Sequence[str] = (NEUTRAL,)) -> pd.DataFrame:
    """Per emotion: faces n_e, mean and unbiased variance s_e² of the differences.

    >>> emotion = ["fear", "fear", "anger", "anger", "neutral"]
    >>> d = xr.DataArray([0.1, 0.3, -0.2, 0.0, 0.5], dims="face",
    ...                  coords={"emotion": ("face", emotion)})
    >>> stratum_variances(d).round(3).to_dict("list")
    {'emotion': ['anger', 'fear'], 'n': [2, 2], 'mean': [-0.1, 0.2], 'var': [0.02, 0.02]}
    """
    values, labels = _strata(diffs, emotion, exclude)
    rows = []
    for e in sorted(set(labels)):
        x = values[labels == e]
        rows.append({"emotion": str(e), "n": x.size, "mean": float(x.mean()),
                     "var": float(x.var(ddof=1)) if x.size > 1 else np.nan})
    return pd.DataFrame(rows, columns=["emotion", "n", "mean", "var"])


def formula_half_width(variances: Sequence[float], n_per_emotion: Sequence[float] | float,
                       confidence: float = 0.95) -> float:
    """Half-width z · √(Σ_e s_e² / (E² n_e)) of the omnibus CI (see the module docstring).

    >>> round(formula_half_width([0.01, 0.01], 25), 4)  # z · 0.1 / √50
    0.0277
    """
    var = np.asarray(variances, dtype=np.float64)
    n = np.broadcast_to(np.asarray(n_per_emotion, dtype=np.float64), var.shape)
    z = sps.norm.ppf(0.5 + confidence / 2)
    return float(z * np.sqrt(np.sum(var / n)) / len(var))


def needed_per_emotion(variances: Sequence[float], target_half_width: float,
                       confidence: float = 0.95) -> int:
    """Faces per emotion for an omnibus half-width of at most ``target_half_width``:
    ⌈z² Σ_e s_e² / (E² h²)⌉ (at least 2).

    >>> needed_per_emotion([0.01, 0.01], 0.02)  # 1.96² · 0.02 / (4 · 0.0004) = 48.02
    49
    """
    var = np.asarray(variances, dtype=np.float64)
    z = sps.norm.ppf(0.5 + confidence / 2)
    n = z**2 * var.sum() / (len(var) ** 2 * target_half_width**2)
    return max(2, math.ceil(n - 1e-9))


def expanded_tail(variances: np.ndarray, counts: np.ndarray, confidence: float = 0.95) -> float:
    """The tail probability Φ(−t) of the expanded percentile interval, t the Student quantile
    of ``confidence`` at the Welch–Satterthwaite degrees of freedom of Σ_e s_e²/n_e, so that
    the interval is as wide as a t interval would be (plain percentiles are z-wide).

    >>> round(expanded_tail(np.array([0.01, 0.01]), np.array([30, 30])), 4)  # df = 58
    0.0227
    """
    v = variances / counts
    df = v.sum() ** 2 / np.sum(v**2 / (counts - 1)) if v.sum() > 0 else np.inf
    return float(sps.norm.cdf(-sps.t.ppf(0.5 + confidence / 2, df)))


def _bootstrap_omnibus(values: np.ndarray, labels: np.ndarray, n_resamples: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(omnibus mean, Σ_e s_e² / E²) of ``n_resamples`` resamples of faces within each emotion;
    the means from residuals spread by √(n_e/(n_e − 1)), the variances from the raw values."""
    order = np.argsort(labels, kind="stable")
    values, labels = values[order], labels[order]
    _, starts, code, counts = np.unique(labels, return_index=True, return_inverse=True,
                                        return_counts=True)
    if counts.min() < 2:
        raise ValueError("every emotion needs at least 2 faces for a bootstrap interval")
    means = np.add.reduceat(values, starts) / counts
    spread = np.sqrt(counts / (counts - 1))
    first, size = starts[code], counts[code]
    omnibus, variance = np.empty(n_resamples), np.empty(n_resamples)
    block = max(1, _BLOCK_ELEMENTS // values.size)
    for lo in range(0, n_resamples, block):
        hi = min(lo + block, n_resamples)
        x = values[first + (rng.random((hi - lo, values.size)) * size).astype(np.int64)]
        sums = np.add.reduceat(x, starts, axis=1)
        squares = np.add.reduceat(x * x, starts, axis=1)
        omnibus[lo:hi] = (means + spread * (sums / counts - means)).mean(axis=1)
        var_e = np.maximum(squares - sums**2 / counts, 0.0) / (counts - 1)
        variance[lo:hi] = var_e.sum(axis=1) / counts.size**2
    return omnibus, variance


def omnibus_contrast(diffs: xr.DataArray, emotion: Sequence[str] | np.ndarray | None = None, *,
                     classifier: str = "", comparison: str = "", seed: int = 0,
                     n_resamples: int = N_RESAMPLES, confidence: float = 0.95,
                     exclude: Sequence[str] = (NEUTRAL,)) -> dict[str, float]:
    """The omnibus mean difference of one classifier and comparison with its bootstrap CI.

    ``diffs[face]`` holds each face's paired difference; the emotion of each face comes from
    ``emotion`` or the ``emotion`` coordinate. Faces of ``exclude`` (neutral: no expression to
    lose) and non-finite differences are left out. The interval is the expanded percentile
    interval of a cluster bootstrap over faces stratified by emotion (module docstring), seeded by
    :func:`facesym.stats.bootstrap_seed` of (``seed``, "omnibus", ``classifier``,
    ``comparison``): the same names and seed give the same bytes, and a cell keeps its stream
    when others are added. Returns mean, ci_low, ci_high, half_width ((high − low)/2), se (the
    bootstrap SD), half_width_formula, sd_omnibus = √(Σ_e s_e²)/E (the half-width is
    z · sd_omnibus / √n at n faces per emotion) and sd_omnibus_q90 (the 90th percentile of its
    bootstrap distribution, for a cautious study size), n_faces and n_emotions.

    >>> d = xr.DataArray([-0.1, -0.2, -0.15, 0.0, -0.05, -0.1], dims="face",
    ...                  coords={"emotion": ("face", ["fear", "anger"] * 3)})
    >>> res = omnibus_contrast(d, classifier="clf", comparison="left", seed=1)
    >>> res["mean"], res["n_faces"]
    (-0.1, 6)
    >>> res == omnibus_contrast(d, classifier="clf", comparison="left", seed=1)
    True
    """
    values, labels = _strata(diffs, emotion, exclude)
    if values.size == 0:
        raise ValueError("no faces with a finite difference outside the excluded emotions")
    emotions, counts = np.unique(labels, return_counts=True)
    mean = float(np.mean([values[labels == e].mean() for e in emotions]))
    rng = np.random.default_rng(bootstrap_seed(seed, "omnibus", classifier, comparison))
    boot, boot_variance = _bootstrap_omnibus(values, labels, n_resamples, rng)
    variances = np.array([values[labels == e].var(ddof=1) for e in emotions])
    tail = expanded_tail(variances, counts, confidence)
    low, high = (float(q) for q in np.quantile(boot, [tail, 1 - tail]))
    return {"mean": mean, "ci_low": low, "ci_high": high, "half_width": (high - low) / 2,
            "se": float(boot.std(ddof=1)),
            "half_width_formula": formula_half_width(variances, counts, confidence),
            "sd_omnibus": float(np.sqrt(variances.sum()) / emotions.size),
            "sd_omnibus_q90": float(np.sqrt(np.quantile(boot_variance, PLANNING_QUANTILE))),
            "n_faces": int(values.size), "n_emotions": int(emotions.size)}


def faces_needed(diffs: xr.DataArray, target_half_width: float = TARGET_HALF_WIDTH, *,
                 n_sides: int = 3, n_strengths: int = 5, n_emotions_rendered: int | None = None,
                 seed: int = 0, n_resamples: int = N_RESAMPLES, confidence: float = 0.95,
                 exclude: Sequence[str] = (NEUTRAL,)) -> pd.DataFrame:
    """Per classifier × comparison: the omnibus CI now and the faces per emotion needed for
    a CI half-width of ``target_half_width``.

    ``diffs[classifier, comparison, face]`` (either of the first two may be missing) with an
    ``emotion`` coordinate on ``face`` holds a finished study's per-face differences. Columns
    (:data:`POWER_COLUMNS`): the bootstrap CI of :func:`omnibus_contrast` and its half-width,
    the formula's half-width at the current size (they should agree; a gap means the normal
    approximation or the bootstrap is off), ``sd_omnibus`` (see :func:`omnibus_contrast`), the
    current and the needed faces per emotion (``_q90``: from the 90th bootstrap percentile of
    the variance instead of its estimate, a cautious size), and what
    the needed size implies for the whole study: faces (``n_emotions_rendered`` emotions, by
    default every emotion of the coordinate, neutral included) and images (× ``n_sides`` ×
    ``n_strengths``).

    >>> rng = np.random.default_rng(0)
    >>> emotion = np.repeat(["anger", "fear", "neutral"], 30)
    >>> d = np.where(emotion == "neutral", 0.0, rng.normal(0.0, 0.2, emotion.size))
    >>> diffs = xr.DataArray(d, dims="face", coords={"emotion": ("face", emotion)})
    >>> row = faces_needed(diffs, 0.02, n_resamples=2000).iloc[0]
    >>> int(row["faces_per_emotion"]), int(row["faces_per_emotion_needed"])
    (30, 153)
    >>> int(row["faces_needed"]), int(row["images_needed"])  # 3 emotions rendered, 3 × 5 images
    (459, 6885)
    """
    cube = diffs
    for dim in (CLASSIFIER, COMPARISON):
        if dim not in cube.dims:
            cube = cube.expand_dims({dim: [""]})
    cube = cube.transpose(CLASSIFIER, COMPARISON, FACE)
    labels = [str(e) for e in cube[EMOTION].values]
    rendered = n_emotions_rendered or len(set(labels))
    rows = []
    for clf in cube[CLASSIFIER].values:
        for comp in cube[COMPARISON].values:
            d = cube.sel({CLASSIFIER: clf, COMPARISON: comp}, drop=True)
            res = omnibus_contrast(d, labels, classifier=str(clf), comparison=str(comp),
                                   seed=seed, n_resamples=n_resamples, confidence=confidence,
                                   exclude=exclude)
            strata = stratum_variances(d, labels, exclude)
            need = needed_per_emotion(strata["var"], target_half_width, confidence)
            cautious = needed_per_emotion([res["sd_omnibus_q90"] ** 2], target_half_width,
                                          confidence)
            rows.append({
                "classifier": str(clf), "comparison": str(comp), "mean": res["mean"],
                "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                "half_width": res["half_width"], "half_width_formula": res["half_width_formula"],
                "sd_omnibus": res["sd_omnibus"], "sd_omnibus_q90": res["sd_omnibus_q90"],
                "faces_per_emotion": int(strata["n"].min()),
                "target_half_width": target_half_width, "faces_per_emotion_needed": need,
                "faces_per_emotion_needed_q90": cautious,
                "faces_needed": need * rendered,
                "images_needed": need * rendered * n_sides * n_strengths})
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS))


def cube_differences(cubes: Mapping[str, xr.Dataset],
                     comparisons: Sequence[str] | None = None) -> xr.DataArray:
    """d[classifier, comparison, face] with an ``emotion`` coordinate, from classifier cubes
    (prob[face, side, strength, label], emotion[face]) exactly as the statistics compute it
    (:func:`facesym.stats.intended_probability`, :func:`facesym.stats.paired_differences`).
    ``comparisons`` defaults to every comparison the rendered sides allow.

    >>> from facesym.stats import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.0}, n_per_emotion=4)
    >>> d = cube_differences({"clf": cube})
    >>> dict(d.sizes), d["emotion"].values[:3].tolist()
    ({'classifier': 1, 'comparison': 5, 'face': 12}, ['happiness', 'surprise', 'neutral'])
    """
    names = list(cubes)
    first = cubes[names[0]]
    comps = list(comparisons or comparisons_for(str(s) for s in first[SIDE].values))
    per_classifier = []
    for name in names:
        cube = cubes[name]
        if not np.array_equal(cube[FACE].values, first[FACE].values):
            raise ValueError(f"classifier cube {name} has other faces than {names[0]}")
        p = intended_probability(cube["prob"].load(), cube[EMOTION].load())
        per_classifier.append(paired_differences(p, comps))
    emotion = [str(e) for e in first[EMOTION].values]
    return (xr.concat(per_classifier, dim=CLASSIFIER).assign_coords({CLASSIFIER: names})
            .transpose(CLASSIFIER, COMPARISON, FACE)
            .assign_coords({EMOTION: (FACE, emotion)}))


def _attrs_config(store: Path) -> dict:
    """The ``config`` provenance attribute of a store (empty when absent)."""
    meta = store / "zarr.json"
    if not meta.is_file():
        return {}
    config = json.loads(meta.read_text()).get("attributes", {}).get("config", "{}")
    return json.loads(config) if isinstance(config, str) else dict(config)


def study_seed(results_dir: str | Path) -> int:
    """The study's root seed, from the provenance of ``scenes.zarr`` (else
    ``stats/tests.zarr``), or :data:`FALLBACK_SEED` when neither records one."""
    results_dir = Path(results_dir)
    scenes = sorted((results_dir / "scenes").glob("shard-*.zarr")) or [results_dir / "scenes.zarr"]
    for store in (scenes[0], results_dir / "stats" / "tests.zarr"):
        seed = _attrs_config(store).get("seed")
        if seed is not None:
            return int(seed)
    return FALLBACK_SEED


def open_classifier_cubes(results_dir: str | Path) -> dict[str, xr.Dataset]:
    """Every classifier's cube of a study, by classifier name (sorted): the shards
    ``classify/<classifier>/shard-<k>.zarr`` joined along ``face`` (or a single
    ``classify/<classifier>.zarr``)."""
    from facesym.stages.shards import open_shards

    root = Path(results_dir) / "classify"
    cubes = {}
    for path in sorted(root.glob("*")):
        shards = sorted(path.glob("shard-*.zarr")) if path.is_dir() else []
        if shards:
            cubes[path.name] = open_shards(shards)
        elif path.suffix == ".zarr":
            cubes[path.stem] = open_cube(path)
    if not cubes:
        raise FileNotFoundError(f"no classifier cubes under {root}")
    return cubes


def add_time_estimate(table: pd.DataFrame, render_rate: float = RENDER_RATE,
                      classify_rate: float = CLASSIFY_RATE) -> pd.DataFrame:
    """``table`` with ``hours_needed``: images / render_rate + images / classify_rate (both
    in images per second on the machine meant, e.g. 2 CPU cores; classify_rate for all the
    study's classifiers together). Rendering and classifying dominate; model building and
    statistics are left out.

    >>> add_time_estimate(pd.DataFrame({"images_needed": [36_000]}))["hours_needed"].item()
    0.35
    """
    out = table.copy()
    seconds = out["images_needed"] / render_rate + out["images_needed"] / classify_rate
    out["hours_needed"] = seconds / 3600
    return out


def power_report(results_dir: str | Path, target: float = TARGET_HALF_WIDTH, *,
                 seed: int | None = None, n_resamples: int = N_RESAMPLES,
                 confidence: float = 0.95, render_rate: float = RENDER_RATE,
                 classify_rate: float = CLASSIFY_RATE) -> pd.DataFrame:
    """The power table of a finished study ``results/<study>``: :func:`faces_needed` over
    its classifier cubes (every comparison the rendered sides allow; its strengths and sides
    count the images) with :func:`add_time_estimate`. ``seed`` defaults to the study's
    (:func:`study_seed`)."""
    cubes = open_classifier_cubes(results_dir)
    first = next(iter(cubes.values()))
    seed = study_seed(results_dir) if seed is None else seed
    table = faces_needed(cube_differences(cubes), target, n_sides=first.sizes[SIDE],
                         n_strengths=first.sizes[STRENGTH], seed=seed,
                         n_resamples=n_resamples, confidence=confidence)
    table = add_time_estimate(table, render_rate, classify_rate)
    table.attrs.update(seed=seed, n_resamples=n_resamples, confidence=confidence,
                       render_rate=render_rate, classify_rate=classify_rate,
                       sides=first.sizes[SIDE], strengths=first.sizes[STRENGTH],
                       emotions_rendered=len(set(map(str, first[EMOTION].values))))
    return table


def study_size(table: pd.DataFrame, contrasts_only: bool = True) -> pd.Series:
    """The row of ``table`` that sizes the study: the largest need over classifiers among the
    symmetry contrasts (``contrasts_only``) or among every comparison."""
    rows = table[table[COMPARISON].map(is_contrast)] if contrasts_only else table
    return rows.loc[rows["faces_per_emotion_needed"].idxmax()]


def _fmt(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def power_markdown(table: pd.DataFrame, provenance: str = "") -> str:
    """The power table of :func:`power_report` as Markdown, led by the study size it implies.

    >>> rng = np.random.default_rng(0)
    >>> emotion = np.repeat(["anger", "fear", "neutral"], 30)
    >>> d = np.where(emotion == "neutral", 0.0, rng.normal(0.0, 0.2, emotion.size))
    >>> diffs = xr.DataArray(d, dims="face", coords={"emotion": ("face", emotion)})
    >>> diffs = diffs.expand_dims(classifier=["clf"], comparison=["left_vs_control"])
    >>> text = power_markdown(add_time_estimate(faces_needed(diffs, n_resamples=2000)))
    >>> print(text.splitlines()[2][:72])
    Sizing: **153 faces per emotion** (clf, left_vs_control), 459 faces, 6,8
    """
    target = float(table["target_half_width"].iloc[0])
    attrs = table.attrs
    render = attrs.get("render_rate", RENDER_RATE)
    classify = attrs.get("classify_rate", CLASSIFY_RATE)
    lines = [f"# Power: faces per emotion for an omnibus CI half-width of ±{target:g}", ""]
    has_contrast = table[COMPARISON].map(is_contrast).any()
    top = study_size(table, contrasts_only=bool(has_contrast))
    what = "symmetry contrasts" if has_contrast else "comparisons"
    lines.append(f"Sizing: **{int(top['faces_per_emotion_needed'])} faces per emotion** "
                 f"({top['classifier']}, {top['comparison']}), {int(top['faces_needed']):,} faces, "
                 f"{int(top['images_needed']):,} images, about {top['hours_needed']:.1f} h "
                 f"(render {render:g} images/s, classify {classify:g} images/s); cautious "
                 f"(90th bootstrap percentile of the variance): "
                 f"{int(top['faces_per_emotion_needed_q90'])} faces per emotion.")
    lines += ["", f"The largest need over classifiers among the {what} sizes the study. The "
              "omnibus is the mean over non-neutral emotions of the per-emotion mean paired "
              "difference; its CI is the expanded percentile interval of a cluster bootstrap "
              "over faces stratified by emotion"
              + (f" ({attrs['n_resamples']:,} resamples, seed {attrs['seed']})"
                 if "seed" in attrs else "")
              + ". Needed faces: ⌈z² Σ_e s_e² / (E² h²)⌉ from the per-emotion variances s_e² "
              "of this study (a point estimate: the variances themselves are uncertain by "
              "roughly √(2/(n−1)) each). Hours: images / render rate + images / classify rate "
              "(assumed throughput on 2 CPU cores, all classifiers together).", "",
              "| classifier | comparison | mean | 95% CI | half-width (formula) "
              "| faces/emotion | needed (cautious) | images | hours |",
              "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(
            f"| {r['classifier']} | {r['comparison']} | {_fmt(r['mean'])} "
            f"| [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}] "
            f"| {r['half_width']:.3f} ({r['half_width_formula']:.3f}) "
            f"| {int(r['faces_per_emotion'])} | {int(r['faces_per_emotion_needed'])} "
            f"({int(r['faces_per_emotion_needed_q90'])}) "
            f"| {int(r['images_needed']):,} | {r.get('hours_needed', float('nan')):.2f} |")
    if provenance:
        lines += ["", f"Provenance: {provenance}"]
    return "\n".join(lines) + "\n"


def write_power_report(table: pd.DataFrame, md_path: str | Path | None = None,
                       csv_path: str | Path | None = None, provenance: str = "") -> str:
    """Write the table as CSV and/or Markdown; returns the Markdown."""
    text = power_markdown(table, provenance)
    if csv_path is not None:
        table.to_csv(csv_path, index=False, float_format="%.6g")
    if md_path is not None:
        Path(md_path).write_text(text)
    return text
