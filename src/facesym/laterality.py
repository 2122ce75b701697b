"""Laterality, explained: the image-flip control and what a left/right difference is due to.

A classifier's laterality at strength a_max is, per face, L = p_left − p_right (intended-class
probability of the left- and of the right-intervened image). Scoring each left image also
horizontally flipped (``flip`` = True) splits it exactly into two parts,

    L = (p_left − p_left,flipped) + (p_left,flipped − p_right) = C + S,

- C, the **classifier** part: how much the output changes when the same image is mirrored
  (0 for a flip-invariant classifier);
- S, the **stimulus** part: the difference between two images that would be identical if the
  stimulus were mirror-symmetric (flipped left vs right: face model shapes, identity, pose,
  lighting).

A second render of the same faces with the mirrored template
(``face_model.mirrored_shapes: from_left``) gives L_M; T = L − L_M is the part the face
model's ``_L``/``_R`` shapes cause. :func:`laterality_report` turns these into one
attribution per classifier with the rule documented there.

Flipping keeps the face boxes in pixel coordinates whose pixel i spans [i, i + 1) (the
convention of the renders' ``face_box`` and of :func:`facesym.classifiers.base.crop_resize`),
so x → W − x maps a box onto the mirrored face and the classifier sees the mirrored crop.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from facesym.classifiers.base import Classifier
from facesym.facemodel.base import FaceModel
from facesym.image_flip import FLIP, FLIPPED_SUFFIX, PROB_FLIPPED, flip_images  # noqa: F401
from facesym.stats.paired import intended_probability
from facesym.vocab import CANONICAL_LABELS, FACE, LEFT, NEUTRAL, RIGHT, SIDE, STRENGTH

#: ``attribution`` of a classifier whose cubes were scored without the flip control
NOT_RUN = "not run"
#: ``attribution`` when no faces are left (every emotion neutral or at floor, or no left/right)
NOT_ASSESSABLE = "not assessable"
#: default equivalence margin of the laterality verdicts (probability units)
LATERALITY_MARGIN = 0.02
#: share of L a part must carry to be named the cause alone
DOMINANT_SHARE = 2.0 / 3.0
_FLIP_X = np.array([-1.0, 1.0, 1.0])


def _strings(values: np.ndarray) -> np.ndarray:
    """Labels as a plain object array of str (cubes hold numpy StringDType)."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=object)


def classify_with_flip(clf: Classifier, images: np.ndarray, boxes: np.ndarray,
                       emotion: np.ndarray, coords: Mapping[str, np.ndarray],
                       batch_size: int = 64) -> xr.Dataset:
    """Score images[face, side, strength, H, W, 3] (boxes [..., 4]) as they are and flipped,
    the classify stage's way (:func:`facesym.stages.classify.classify_renders` with ``flip``):
    a classify cube prob[face, side, strength, flip, label] on the canonical labels, with
    ``emotion[face]``; ``coords`` gives the face, side and strength coordinates."""
    from facesym.stages.classify import classify_renders

    dims = (FACE, SIDE, STRENGTH)
    renders = xr.Dataset(
        {"image": ((*dims, "y", "x", "channel"), images),
         "face_box": ((*dims, "box"), boxes), "emotion": (FACE, _strings(emotion))},
        coords={k: coords[k] for k in dims})
    cube = classify_renders(clf, renders, batch_size=batch_size, progress=False, flip=True)
    return with_flip_dimension(cube).assign_coords(label=list(CANONICAL_LABELS))


def _p_intended(cube: xr.Dataset) -> xr.DataArray:
    """p(intended)[face, side, strength, (flip)] of a classify cube."""
    prob = cube["prob"].transpose(..., "label")
    return intended_probability(prob, cube["emotion"])


def flip_parts(cube: xr.Dataset, strength: float | None = None) -> xr.Dataset:
    """Per face at ``strength`` (default: the largest): L, C and S of the module docstring and
    the flip gap on the untouched images, g0 = p(flipped) − p at a = 0, from a classify cube
    with a ``flip`` dimension (False, True)."""
    if FLIP not in cube.dims:
        raise ValueError("the classify cube has no 'flip' dimension: score flipped images too")
    p = _p_intended(cube)
    a_max = float(p[STRENGTH].max()) if strength is None else float(strength)

    def at(side: str, a: float, flip: bool) -> xr.DataArray:
        return p.sel({SIDE: side, STRENGTH: a, FLIP: flip}).drop_vars([SIDE, STRENGTH, FLIP])

    left, left_f, right = at(LEFT, a_max, False), at(LEFT, a_max, True), at(RIGHT, a_max, False)
    a0 = float(p[STRENGTH].min())
    return xr.Dataset({
        "lateral": left - right, "classifier": left - left_f, "stimulus": left_f - right,
        "flip_gap_a0": at(LEFT, a0, True) - at(LEFT, a0, False),
        "emotion": cube["emotion"],
    })


def flip_control_table(cubes: Mapping[str, xr.Dataset],
                       strength: float | None = None) -> pd.DataFrame:
    """Per classifier × emotion (means over faces): ``left_vs_right`` (L), ``leftflip_vs_right``
    (S: agrees with L when the classifier is flip-invariant), ``classifier_part`` (C = L − S),
    ``flip_gap_a0`` and ``abs_flip_gap_a0`` (flip non-invariance on untouched images), n."""
    rows = []
    for name, cube in cubes.items():
        parts = flip_parts(cube, strength)
        emotions = _strings(parts["emotion"].values)
        for emotion in dict.fromkeys(emotions):
            sel = parts.isel({FACE: np.flatnonzero(emotions == emotion)})
            rows.append({
                "classifier": name, "emotion": emotion, "n": int(sel.sizes[FACE]),
                "left_vs_right": float(sel["lateral"].mean()),
                "leftflip_vs_right": float(sel["stimulus"].mean()),
                "classifier_part": float(sel["classifier"].mean()),
                "flip_gap_a0": float(sel["flip_gap_a0"].mean()),
                "abs_flip_gap_a0": float(abs(sel["flip_gap_a0"]).mean()),
            })
    return pd.DataFrame(rows)


def _stratified_means(values: dict[str, np.ndarray], emotions: np.ndarray, n_boot: int,
                      seed: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Omnibus (mean over emotions of the per-emotion mean) of each per-face array, and its
    bootstrap replicates resampling faces within each emotion (the same faces for every
    array, so sums of parts stay sums)."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(emotions == e) for e in dict.fromkeys(emotions)]
    draws = [g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups]
    est, boot = {}, {}
    for key, v in values.items():
        est[key] = float(np.mean([v[g].mean() for g in groups]))
        boot[key] = np.mean([v[d].mean(axis=1) for d in draws], axis=0)
    return est, boot


def _excludes_zero(low: float, high: float) -> bool:
    return low > 0 or high < 0


def attribute(est: Mapping[str, float], ci: Mapping[str, tuple[float, float]],
              margin: float = LATERALITY_MARGIN) -> tuple[str, str]:
    """(attribution, stimulus source) of one classifier's laterality by the documented rule.

    1. L's CI within (−margin, margin): **none** (no laterality worth the name);
       L's CI contains 0 otherwise: **undecided** (at this size).
    2. Else a part P ∈ {classifier C, stimulus S} counts when its CI excludes 0 and it has
       L's sign. One part carrying ≥ 2/3 of L alone → **classifier** or **stimulus**; both
       counting → **both**; neither → **undecided**.
    3. Where the stimulus counts and the mirrored template was run (T = L − L_M), the source
       is **face_model** if T's CI excludes 0, has L's sign and T ≥ 2/3 of S, **other**
       (identity, pose, lighting) if L_M's CI excludes 0 with L's sign and T does not
       count, **both** if both, else **unknown**; ``n/a`` when the stimulus does not count.
    """
    lo, hi = ci["lateral"]
    if -margin < lo and hi < margin:
        return "none", "n/a"
    if not _excludes_zero(lo, hi):
        return "undecided", "n/a"
    sign = np.sign(est["lateral"])

    def counts(key: str) -> bool:
        return key in est and _excludes_zero(*ci[key]) and np.sign(est[key]) == sign

    share = {k: est[k] / est["lateral"] for k in ("classifier_part", "stimulus_part")}
    c, s = counts("classifier_part"), counts("stimulus_part")
    if c and share["classifier_part"] >= DOMINANT_SHARE:
        verdict = "classifier"
    elif s and share["stimulus_part"] >= DOMINANT_SHARE:
        verdict = "stimulus"
    elif c and s:
        verdict = "both"
    else:
        verdict = "undecided"
    if verdict not in ("stimulus", "both"):
        return verdict, "n/a"
    if "template_part" not in est:
        return verdict, "unknown"
    model_part = (counts("template_part")
                  and abs(est["template_part"]) >= DOMINANT_SHARE * abs(est["stimulus_part"]))
    other = counts("lateral_mirrored")
    source = ("both" if model_part and other else "face_model" if model_part
              else "other" if other else "unknown")
    return verdict, source


def laterality_report(normal: Mapping[str, xr.Dataset],
                      mirrored: Mapping[str, xr.Dataset] | None = None,
                      margin: float = LATERALITY_MARGIN, n_boot: int = 2000,
                      seed: int = 0, strength: float | None = None) -> pd.DataFrame:
    """One row per classifier: what its laterality is due to.

    ``normal`` maps classifier → classify cube with a ``flip`` dimension (normal template);
    ``mirrored`` (optional) maps classifier → classify cube of the *same faces* rendered with
    the mirrored template (a ``flip`` dimension is used if present, unflipped scores only).
    Columns: for ``lateral`` (L), ``classifier_part`` (C), ``stimulus_part`` (S),
    ``lateral_mirrored`` (L_M) and ``template_part`` (T = L − L_M, paired by face) the
    omnibus estimate (mean over non-neutral emotions of the per-emotion mean) with a 95 %
    percentile CI (``<column>_low``, ``<column>_high``) from a bootstrap of faces within
    emotions; ``attribution`` and ``stimulus_source`` by :func:`attribute`;
    n faces.
    """
    rows = []
    for name, cube in normal.items():
        parts = flip_parts(cube, strength)
        emotions = _strings(parts["emotion"].values)
        keep = emotions != NEUTRAL
        values = {"lateral": parts["lateral"].values[keep],
                  "classifier_part": parts["classifier"].values[keep],
                  "stimulus_part": parts["stimulus"].values[keep]}
        if mirrored is not None and name in mirrored:
            m = mirrored[name]
            if FLIP in m.dims:
                m = m.sel({FLIP: False}).drop_vars(FLIP)
            pm = _p_intended(m)
            a_max = float(pm[STRENGTH].max()) if strength is None else float(strength)
            at = pm.sel({STRENGTH: a_max})
            lat_m = (at.sel({SIDE: LEFT}) - at.sel({SIDE: RIGHT})).drop_vars(
                [SIDE, STRENGTH], errors="ignore")
            lat_m = lat_m.sel({FACE: parts[FACE].values})  # pair by face
            values["lateral_mirrored"] = lat_m.values[keep]
            values["template_part"] = values["lateral"] - values["lateral_mirrored"]
        est, boot = _stratified_means(values, emotions[keep], n_boot, seed)
        ci = {k: (float(np.quantile(b, 0.025)), float(np.quantile(b, 0.975)))
              for k, b in boot.items()}
        verdict, source = attribute(est, ci, margin)
        row: dict[str, object] = {"classifier": name, "n": int(keep.sum())}
        for k in est:
            row[k], row[f"{k}_low"], row[f"{k}_high"] = est[k], *ci[k]
        row.update(attribution=verdict, stimulus_source=source)
        rows.append(row)
    return pd.DataFrame(rows)


def with_flip_dimension(cube: xr.Dataset) -> xr.Dataset:
    """A classify stage cube (``prob`` and ``prob_flipped`` beside each other) as the cube
    :func:`flip_parts` reads: prob[face, side, strength, flip, label] and emotion."""
    if PROB_FLIPPED not in cube:
        raise ValueError(f"the classify cube has no {PROB_FLIPPED!r}: run the classify stage "
                         "with classify.flip: laterality (or all)")
    prob = xr.concat([cube["prob"], cube[PROB_FLIPPED]], dim=FLIP, join="exact")
    prob = prob.assign_coords({FLIP: [False, True]}).transpose(FACE, SIDE, STRENGTH, FLIP, ...)
    return xr.Dataset({"prob": prob, "emotion": cube["emotion"]})


#: columns of :func:`study_laterality` (``stats/laterality.csv``), in order
STUDY_COLUMNS = (
    "classifier", "flip_control", "n", "emotions",
    *(f"{k}{s}" for k in ("lateral", "classifier_part", "stimulus_part")
      for s in ("", "_low", "_high")),
    "abs_flip_gap_a0", "attribution", "stimulus_source", "margin")


def study_laterality(cubes: Mapping[str, xr.Dataset],
                     excluded: Mapping[str, set[str]] | None = None,
                     margin: float = LATERALITY_MARGIN, n_boot: int = 2000, seed: int = 0
                     ) -> pd.DataFrame:
    """The laterality report of a study's classify cubes (as the classify stage writes them),
    one row per classifier with :data:`STUDY_COLUMNS`.

    Faces of neutral and of ``excluded[classifier]`` emotions (the floor) are left out, so
    ``lateral`` is the omnibus ``left_vs_right`` of the statistics. A classifier whose cube
    has no :data:`PROB_FLIPPED` gets ``flip_control`` False, attribution :data:`NOT_RUN` and
    NaN estimates; one without faces left or without both left and right renders gets
    :data:`NOT_ASSESSABLE`. ``abs_flip_gap_a0`` is the mean over those faces of
    |p(flipped) − p| on the untouched left image (0 for a flip-invariant classifier).
    """
    rows = []
    for name, cube in cubes.items():
        emotions = _strings(cube["emotion"].values)
        drop = {NEUTRAL, *((excluded or {}).get(name, ()))}
        keep = ~np.isin(emotions, list(drop))
        kept = list(dict.fromkeys(emotions[keep]))
        row: dict[str, object] = {k: np.nan for k in STUDY_COLUMNS}
        row.update(classifier=name, flip_control=PROB_FLIPPED in cube, n=int(keep.sum()),
                   emotions=" ".join(kept), stimulus_source="n/a", margin=float(margin))
        sides = {str(s) for s in cube[SIDE].values}
        if not row["flip_control"]:
            row["attribution"] = NOT_RUN
        elif not keep.any() or not {LEFT, RIGHT} <= sides:
            row["attribution"] = NOT_ASSESSABLE
        else:
            flipped = with_flip_dimension(cube.isel({FACE: np.flatnonzero(keep)}))
            report = laterality_report({name: flipped}, margin=margin, n_boot=n_boot,
                                       seed=seed).iloc[0]
            row.update({k: report[k] for k in STUDY_COLUMNS if k in report.index})
            row["abs_flip_gap_a0"] = float(abs(flip_parts(flipped)["flip_gap_a0"]).mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=list(STUDY_COLUMNS))


# --- the stimulus side: what the face model itself does on either hemiface ---------------------

STIMULUS_MEASURES = ("asym_3d", "asym_rms_3d", "asym_2d", "expression_norm")


def stimulus_table(models: Mapping[str, FaceModel], tables: Mapping, emotions: list[str],
                   cfg: Mapping, identity: np.ndarray | None = None,
                   intensity: float = 1.0) -> pd.DataFrame:
    """Left vs right intervention measured on the face model, per template × emotion × strength.

    ``models`` maps a template name (e.g. "normal", "mirrored") to a model; ``tables`` is the
    ``expressions`` config section, ``cfg`` holds ``intervention`` and ``render`` (the frontal
    camera of the study, no pose). The face is the template (``identity`` None) or the given
    identity coefficients, expression = prototype × ``intensity``. Columns: for each of
    :data:`STIMULUS_MEASURES` ``<m>_left``, ``<m>_right`` and ``<m>_diff`` (left − right), and
    ``mirror_gap_max`` / ``mirror_gap_mean``: |mesh_left − F mesh_right∘m| over the face
    vertices (model units; 0 when the two interventions are exact mirror images).
    """
    import torch

    from facesym.expressions import prototype_weights
    from facesym.interventions import intervention_masks
    from facesym.render import frontal_camera, project_points
    from facesym.stages.render import face_meshes
    from facesym.symmetry import asymmetry_2d

    icfg, rcfg = cfg["intervention"], cfg["render"]
    strengths = [float(a) for a in icfg["strengths"]]
    rows = []
    for template, model in models.items():
        masks = intervention_masks(model, icfg["mask_width_cm"])
        pivot = model.template[model.landmarks].mean(0)
        camera = frontal_camera(rcfg["distance_cm"], rcfg["fov_deg"], int(rcfg["size"]),
                                target=tuple(float(c) for c in pivot))
        beta = np.zeros(0) if identity is None else np.asarray(identity, dtype=np.float64)
        face = np.flatnonzero(model.region_mask("face") & (model.mirror >= 0))
        for emotion in emotions:
            w = prototype_weights(emotion, tables, model) * intensity
            fm = face_meshes(model, beta, w, [LEFT, RIGHT], strengths, icfg, masks)
            lm = project_points(torch.as_tensor(fm.vertices[:, :, model.landmarks]),
                                camera).numpy()
            ref = project_points(torch.as_tensor(fm.neutral[model.landmarks][None]),
                                 camera).numpy()[0]
            measures = {"asym_3d": fm.asym_3d, "asym_rms_3d": fm.asym_rms_3d,
                        "asym_2d": asymmetry_2d(lm, ref), "expression_norm": fm.expression_norm}
            reflected = fm.vertices[1][:, model.mirror[face]] * _FLIP_X
            gap = np.linalg.norm(fm.vertices[0][:, face] - reflected, axis=-1)
            for j, a in enumerate(strengths):
                row: dict[str, object] = {"template": template, "emotion": emotion,
                                          "strength": a}
                for name, values in measures.items():
                    row[f"{name}_left"] = float(values[0, j])
                    row[f"{name}_right"] = float(values[1, j])
                    row[f"{name}_diff"] = float(values[0, j] - values[1, j])
                row["mirror_gap_max"] = float(gap[j].max())
                row["mirror_gap_mean"] = float(gap[j].mean())
                rows.append(row)
    return pd.DataFrame(rows)
