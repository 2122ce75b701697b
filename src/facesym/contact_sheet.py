"""Contact sheet: one identity shown with every emotion × side × strength of the design."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from facesym.expressions import prototype_weights  # noqa: E402
from facesym.facemodel.base import FaceModel  # noqa: E402
from facesym.plots import save_png  # noqa: E402
from facesym.stages.render import SCENE_VARS, StudyRenderer  # noqa: E402


def identity_grid(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, face: int,
                  emotions: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render face ``face`` (its global index)'s identity and scene with each emotion.

    Each emotion is shown at the face's own intensity.

    Returns images (E, S, A, H, W, 3), the 3D asymmetry scores (E, S, A) and the landmark
    boxes (E, S, A, 4).
    """
    r = StudyRenderer(model, cfg)
    row = scenes.sel(face=face)
    n = len(emotions)
    weights = np.stack([prototype_weights(e, cfg["expressions"], model) for e in emotions])
    weights = weights * float(row["intensity"])
    scene = {k: np.full(n, float(row[k])) for k in SCENE_VARS}
    identity = np.repeat(row["identity"].values[None], n, axis=0)
    res = r.render(identity, weights, scene)
    return res.images, res.asym_3d, res.face_box


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


def contact_sheet(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, faces: Sequence[int],
                  out: str | Path, provenance: str | None = None) -> dict[str, np.ndarray]:
    """Write a PNG grid (rows: identity × emotion; columns: side × strength); return scores.

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
    r = StudyRenderer(model, cfg)
    sides, strengths = r.sides, r.strengths
    blocks, scores = [], {}
    for f in faces:
        images, asym, boxes = identity_grid(model, scenes, cfg, int(f), emotions)
        blocks.append(crop_to_faces(images, boxes))
        scores[f"face{f}"] = asym
    nrow = len(faces) * len(emotions)
    ncol = len(sides) * len(strengths)
    h, w = blocks[0].shape[-3:-1]
    scale = 1.2 / max(h, w) * 1.0
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * w * scale + 1.2, nrow * h * scale + 0.8),
                             squeeze=False)
    for b, f in enumerate(faces):
        for e, emo in enumerate(emotions):
            rr = b * len(emotions) + e
            for s, side in enumerate(sides):
                for a, strength in enumerate(strengths):
                    ax = axes[rr, s * len(strengths) + a]
                    ax.imshow(blocks[b][e, s, a])
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if rr == 0:
                        ax.set_title(f"{side}\na={strength:g}", fontsize=7)
                    ax.set_xlabel(f"asym {scores[f'face{f}'][e, s, a]:.2f}", fontsize=6,
                                  labelpad=1)
            axes[rr, 0].set_ylabel(f"face {f}\n{emo}", fontsize=7)
    fig.suptitle("Symmetry intervention: rows emotion, columns affected side × strength "
                 "(asym = 3D asymmetry index)", fontsize=8)
    fig.tight_layout(pad=0.3, h_pad=0.2, w_pad=0.1, rect=(0, 0, 1, 0.985))
    save_png(fig, out, provenance, dpi=110)
    plt.close(fig)
    return scores
