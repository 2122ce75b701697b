"""Contact sheet: chosen identities with every emotion × side × strength of the design.

The 3D mirror composites (sides ``mirror_left``/``mirror_right``) are always shown, whether or
not the study renders them, and for the first identity the sheet ends with one row per emotion
comparing the 2D mirror composite of its untouched (a = 0) render, reflected about the midline
fitted on the projected landmarks, with the 3D composite at a = 1 and their masked pixel error
(:func:`facesym.photos.compare.composite_gap`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from facesym.expressions import prototype_weights  # noqa: E402
from facesym.facemodel.base import FaceModel  # noqa: E402
from facesym.photos.compare import SIDE_3D, composite_gap, side_by_side  # noqa: E402
from facesym.plots import save_png  # noqa: E402
from facesym.stages.render import SCENE_VARS, RenderedFaces, StudyRenderer  # noqa: E402

MIRROR_SIDES = ("mirror_left", "mirror_right")
#: seam half-width of the 2D composites, × the outer-eye-corner distance (as ``facesym score``)
FEATHER_FRAC = 0.05
#: |2D − 3D| is shown × this gain
DIFF_GAIN = 4.0


def with_sides(cfg: Mapping, sides: Sequence[str], strengths: Sequence[float] | None = None
               ) -> dict:
    """``cfg`` with ``intervention.sides`` (and optionally ``strengths``) replaced."""
    icfg = {**cfg["intervention"], "sides": list(sides)}
    if strengths is not None:
        icfg["strengths"] = [float(a) for a in strengths]
    return {**cfg, "intervention": icfg}


def sheet_sides(cfg: Mapping) -> list[str]:
    """The study's sides plus the 3D mirror composites it does not render itself."""
    sides = list(cfg["intervention"]["sides"])
    return sides + [s for s in MIRROR_SIDES if s not in sides]


def identity_grid(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, face: int,
                  emotions: Sequence[str]) -> RenderedFaces:
    """Render face ``face`` (its global index)'s identity and scene with each emotion, over
    the sides and strengths of ``cfg["intervention"]``.

    Each emotion is shown at the face's own intensity. Returns the renders with leading axes
    (E, S, A): images (E, S, A, H, W, 3), ``asym_3d``, ``landmarks_2d``, ``face_box``, ….
    """
    r = StudyRenderer(model, cfg)
    row = scenes.sel(face=face)
    n = len(emotions)
    weights = np.stack([prototype_weights(e, cfg["expressions"], model) for e in emotions])
    weights = weights * float(row["intensity"])
    scene = {k: np.full(n, float(row[k])) for k in SCENE_VARS}
    identity = np.repeat(row["identity"].values[None], n, axis=0)
    return r.render(identity, weights, scene)


@dataclass
class CompositeRows:
    """The 2D-vs-3D comparison of one identity, per emotion (E) and 2D side (left, right)."""

    face: int
    original: np.ndarray  # (E, H, W, 3) the a = 0 render
    composite_2d: dict[str, np.ndarray]  # side -> (E, H, W, 3)
    composite_3d: dict[str, np.ndarray]  # side -> (E, H, W, 3), 3D side SIDE_3D[side], a = 1
    mask: dict[str, np.ndarray]  # side -> (E, H, W) face mask the errors are taken over
    mae_2d_vs_3d: dict[str, np.ndarray]  # side -> (E,) mean absolute error, 0-255
    mae_original_vs_3d: dict[str, np.ndarray]  # side -> (E,) what the 3D composite changes
    boxes: np.ndarray  # (E, 3, 4) landmark boxes of original and both 3D composites


def composite_rows(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, face: int,
                   emotions: Sequence[str]) -> CompositeRows:
    """2D mirror composites of face ``face``'s a = 0 renders beside its 3D composites at a = 1.

    The 2D composite reflects the render about the midline fitted on its projected
    landmarks (seam feather :data:`FEATHER_FRAC` × outer-eye-corner distance); the error is
    the mean absolute pixel difference inside the union of both faces' landmark hulls.
    """
    res = identity_grid(model, scenes, with_sides(cfg, MIRROR_SIDES, (0.0, 1.0)), face,
                        emotions)
    original = res.images[:, 0, 0]
    lm0 = res.landmarks_2d[:, 0, 0].astype(np.float64)
    feather = FEATHER_FRAC * float(np.linalg.norm(lm0[:, 45] - lm0[:, 36], axis=-1).mean())
    out = CompositeRows(face=face, original=original, composite_2d={}, composite_3d={}, mask={},
                        mae_2d_vs_3d={}, mae_original_vs_3d={},
                        boxes=np.concatenate([res.face_box[:, :1, 0], res.face_box[:, :, 1]],
                                             axis=1))
    for side, side3d in SIDE_3D.items():
        s = MIRROR_SIDES.index(side3d)
        comp3d = res.images[:, s, 1]
        gap = composite_gap(original, comp3d, lm0, side,
                            landmarks_3d=res.landmarks_2d[:, s, 1].astype(np.float64),
                            feather=feather)
        out.composite_2d[side], out.composite_3d[side] = gap.composite_2d, comp3d
        out.mask[side] = gap.mask
        out.mae_2d_vs_3d[side] = gap.mae_2d_vs_3d
        out.mae_original_vs_3d[side] = gap.mae_original_vs_3d
    return out


def crop_to_faces(images: np.ndarray, boxes: np.ndarray, margin: float = 0.3) -> np.ndarray:
    """Crop all images (…, H, W, 3) to the union of their landmark boxes (…, 4) + margin."""
    flat = boxes.reshape(-1, 4)
    x0, y0 = flat[:, 0].min(), flat[:, 1].min()
    x1, y1 = flat[:, 2].max(), flat[:, 3].max()
    pad = margin * max(x1 - x0, y1 - y0)
    h, w = images.shape[-3:-1]
    rows = slice(max(0, int(y0 - 1.3 * pad)), min(h, int(np.ceil(y1 + 0.7 * pad))))
    cols = slice(max(0, int(x0 - pad)), min(w, int(np.ceil(x1 + pad))))
    return images[..., rows, cols, :]


@dataclass
class SheetScores:
    """What the sheet shows in numbers: the 3D asymmetry index of every panel, per identity
    (``face<k>`` → (E, S, A) over ``sides`` × strengths), and the 2D-vs-3D comparison."""

    asym: dict[str, np.ndarray]
    sides: list[str]
    composites: CompositeRows


def _comparison_panels(c: CompositeRows, e: int) -> list[tuple[np.ndarray, str, str]]:
    """(image, column title, label) of one comparison row: original, then per side 2D | 3D |
    |2D − 3D| × gain."""
    panels = [(c.original[e], "original\na=0", "")]
    for side, side3d in SIDE_3D.items():
        strip = side_by_side(c.original[e], c.composite_2d[side][e], c.composite_3d[side][e],
                             c.mask[side][e], gain=DIFF_GAIN)
        w = c.original.shape[2]
        diff = strip[:, 3 * w:]
        panels += [(c.composite_2d[side][e], f"2D {side3d}\n(a=0 render)", ""),
                   (c.composite_3d[side][e], f"3D {side3d}\na=1", ""),
                   (diff, f"|2D-3D| x{DIFF_GAIN:g}",
                    f"MAE {c.mae_2d_vs_3d[side][e]:.1f} (3D vs orig "
                    f"{c.mae_original_vs_3d[side][e]:.1f})")]
    return panels


def contact_sheet(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, faces: Sequence[int],
                  out: str | Path, provenance: str | None = None) -> SheetScores:
    """Write a PNG grid (rows: identity × emotion; columns: side × strength, the 3D mirror
    composites included) and, below it, the 2D-vs-3D composite rows of the first identity.

    Raises ValueError naming ``contact_sheet.faces`` when a face is not in the study.
    """
    held = {int(f) for f in scenes["face"].values}
    outside = [int(f) for f in faces if int(f) not in held]
    if outside:
        span = f"{min(held)}..{max(held)}" if held else "none"
        raise ValueError(f"config key contact_sheet.faces: {outside} not in the study's scenes "
                         f"given, which hold faces {span} (the study has scenes."
                         "faces_per_emotion × emotions faces)")
    emotions = [e for e in cfg["scenes"]["emotions"]]
    sides = sheet_sides(cfg)
    grid_cfg = with_sides(cfg, sides)
    strengths = [float(a) for a in grid_cfg["intervention"]["strengths"]]
    blocks, scores = [], {}
    for f in faces:
        res = identity_grid(model, scenes, grid_cfg, int(f), emotions)
        blocks.append(crop_to_faces(res.images, res.face_box))
        scores[f"face{f}"] = res.asym_3d
    comp = composite_rows(model, scenes, cfg, int(faces[0]), emotions)
    comp_panels = [_comparison_panels(comp, e) for e in range(len(emotions))]
    stacked = np.stack([[p[0] for p in row] for row in comp_panels])  # (E, P, H, W, 3)
    comp_crops = crop_to_faces(stacked, comp.boxes)  # one crop for the comparison block

    ngrid = len(faces) * len(emotions)
    nrow = ngrid + len(emotions)
    ncol = max(len(sides) * len(strengths), stacked.shape[1])
    h, w = blocks[0].shape[-3:-1]
    scale = 1.2 / max(h, w) * 1.0
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * w * scale + 1.2, nrow * h * scale + 1.0),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_axis_off()
    for b, f in enumerate(faces):
        for e, emo in enumerate(emotions):
            rr = b * len(emotions) + e
            for s, side in enumerate(sides):
                for a, strength in enumerate(strengths):
                    ax = axes[rr, s * len(strengths) + a]
                    ax.set_axis_on()
                    ax.imshow(blocks[b][e, s, a])
                    if rr == 0:
                        ax.set_title(f"{side}\na={strength:g}", fontsize=7)
                    ax.set_xlabel(f"asym {scores[f'face{f}'][e, s, a]:.2f}", fontsize=6,
                                  labelpad=1)
            axes[rr, 0].set_ylabel(f"face {f}\n{emo}", fontsize=7)
    for e, emo in enumerate(emotions):
        rr = ngrid + e
        for p, (_, title, label) in enumerate(comp_panels[e]):
            ax = axes[rr, p]
            ax.set_axis_on()
            ax.imshow(comp_crops[e, p])
            if e == 0:
                ax.set_title(title, fontsize=7)
            if label:
                ax.set_xlabel(label, fontsize=5.5, labelpad=1)
        axes[rr, 0].set_ylabel(f"face {comp.face}\n{emo}\n2D vs 3D", fontsize=7)
    fig.suptitle("Symmetry intervention: rows emotion, columns affected side × strength "
                 "(asym = 3D asymmetry index; mirror_* = 3D mirror composites).\nLast rows: 2D "
                 "mirror composite of the a=0 render vs the 3D composite at a=1; MAE in 0-255 "
                 "inside the face (union of landmark hulls)", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.1,
                     rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    save_png(fig, out, provenance, dpi=110)
    plt.close(fig)
    return SheetScores(asym=scores, sides=sides, composites=comp)
