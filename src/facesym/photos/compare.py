"""2D mirror composites of renders against the 3D composites of the same faces.

A 2D composite (:func:`facesym.photos.composite.mirror_composite`) reflects the whole image
about the fitted midline: expression, identity, shading and perspective alike. The 3D
composite (sides ``mirror_left``/``mirror_right`` of :mod:`facesym.interventions`) mirrors
only the expression displacement of the mesh and renders it under the scene's own pose and
light. :func:`composite_gap` measures how far apart the two are inside the face, next to how
far the 3D composite is from the original render (the size of the change being imitated).

Sides: the 2D composite ``left`` (the subject's left shown twice) corresponds to the 3D side
``mirror_left`` (:data:`SIDE_3D`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from facesym.photos.composite import mirror_composite

#: 2D composite side → the 3D intervention side it imitates
SIDE_3D = {"left": "mirror_left", "right": "mirror_right"}


def landmark_hull_mask(landmarks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centres lie inside the convex hull of landmarks (..., N, 2) → (..., H, W).

    Pixel (i, j) has its centre at (j + 0.5, i + 0.5) (x right, y down), the renderer's
    convention.

    >>> square = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
    >>> landmark_hull_mask(square, 4, 4).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    flat = lm.reshape(-1, *lm.shape[-2:])
    yy, xx = np.mgrid[0:height, 0:width]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], axis=-1)
    out = np.empty((len(flat), height * width), dtype=bool)
    for k, pts in enumerate(flat):
        hull = ConvexHull(pts)
        # hull.equations: outward normal · p + offset <= 0 inside
        inside = centres @ hull.equations[:, :2].T + hull.equations[:, 2] <= 1e-9
        out[k] = inside.all(axis=1)
    return out.reshape(*lm.shape[:-2], height, width)


def masked_mae(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean absolute difference of images (..., H, W, C) over the pixels of mask (..., H, W)
    and all channels, in the images' units (0–255 for uint8); NaN where the mask is empty.

    >>> a = np.zeros((2, 2, 3), np.uint8); b = a.copy(); b[0, 0] = 30
    >>> float(masked_mae(a, b, np.ones((2, 2), bool))), float(masked_mae(a, b, np.eye(2) > 0))
    (7.5, 15.0)
    """
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean(-1)
    m = np.asarray(mask, dtype=bool)
    count = m.sum(axis=(-2, -1))
    total = np.where(m, diff, 0.0).sum(axis=(-2, -1))
    return np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)


@dataclass
class CompositeGap:
    """Per image: the 2D composite, the face mask and three mean absolute errors (0–255)."""

    composite_2d: np.ndarray  # (B, H, W, 3) uint8
    mask: np.ndarray  # (B, H, W) bool: union of the original's and the 3D composite's hulls
    mae_2d_vs_3d: np.ndarray  # (B,) the gap measured
    mae_original_vs_3d: np.ndarray  # (B,) what the 3D composite changes
    mae_original_vs_2d: np.ndarray  # (B,) what the 2D composite changes


def composite_gap(originals: np.ndarray, composites_3d: np.ndarray, landmarks: np.ndarray,
                  side: str, landmarks_3d: np.ndarray | None = None,
                  feather: float = 4.0) -> CompositeGap:
    """Compare the 2D composite of renders with their 3D composites, inside the face.

    ``originals`` (B, H, W, 3): the renders at a = 0; ``composites_3d``: the same faces with
    side :data:`SIDE_3D` [``side``] at a = 1; ``landmarks`` (B, 68, 2): the originals' projected
    landmarks (they fit the midline and bound the face); ``landmarks_3d``: the composites'
    (their hull joins the mask; default: the originals'). ``side`` is the 2D side ('left'
    keeps the subject's left).
    """
    originals = np.asarray(originals)
    composites_3d = np.asarray(composites_3d)
    if originals.shape != composites_3d.shape or originals.ndim != 4:
        raise ValueError("originals and composites_3d must both be (B, H, W, C), got "
                         f"{originals.shape} and {composites_3d.shape}")
    h, w = originals.shape[1:3]
    comp = mirror_composite(originals, landmarks, side, 1.0, feather)
    mask = landmark_hull_mask(landmarks, h, w)
    if landmarks_3d is not None:
        mask |= landmark_hull_mask(landmarks_3d, h, w)
    return CompositeGap(
        composite_2d=comp, mask=mask,
        mae_2d_vs_3d=masked_mae(comp, composites_3d, mask),
        mae_original_vs_3d=masked_mae(originals, composites_3d, mask),
        mae_original_vs_2d=masked_mae(originals, comp, mask),
    )


def side_by_side(original: np.ndarray, composite_2d: np.ndarray, composite_3d: np.ndarray,
                 mask: np.ndarray | None = None, gain: float = 4.0) -> np.ndarray:
    """One strip (H, 4W, 3) uint8: original | 2D composite | 3D composite | |2D − 3D|·gain
    (the difference dimmed outside ``mask``)."""
    diff = np.abs(composite_2d.astype(np.float64) - composite_3d.astype(np.float64)) * gain
    if mask is not None:
        diff = np.where(mask[..., None], diff, diff * 0.25)
    diff = np.clip(diff, 0, 255).astype(np.uint8)
    return np.concatenate([original, composite_2d, composite_3d, diff], axis=1)
