"""Procedural per-vertex albedo for a face model (ICT has no albedo texture).

Regions come from the model's vertex sets and its 68 landmarks: skin (tone blended between a
light and a dark albedo), darker lips, tapered brows, a hair cap, white sclera with iris and
pupil (coloured by the angle around each eyeball's forward axis, since the sclera mesh covers
the iris mesh), teeth, gums, a dark mouth socket and eyelashes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.path import Path as PolyPath

from facesym.facemodel.base import FaceModel

SKIN_LIGHT = np.array([0.93, 0.76, 0.65])
SKIN_DARK = np.array([0.42, 0.28, 0.20])
COLOURS = {
    "lips": np.array([0.62, 0.30, 0.30]),
    "brows": np.array([0.16, 0.11, 0.08]),
    "hair": np.array([0.12, 0.09, 0.07]),
    "sclera": np.array([0.93, 0.92, 0.90]),
    "iris": np.array([0.30, 0.20, 0.12]),
    "pupil": np.array([0.03, 0.03, 0.03]),
    "teeth": np.array([0.93, 0.91, 0.85]),
    "gums_tongue": np.array([0.65, 0.28, 0.28]),
    "mouth_socket": np.array([0.18, 0.06, 0.06]),
    "eye_socket": np.array([0.55, 0.35, 0.32]),
    "eyelashes": np.array([0.05, 0.04, 0.04]),
}
IRIS_ANGLE_DEG = 26.0
PUPIL_ANGLE_DEG = 11.0


@dataclass(frozen=True)
class AppearanceMasks:
    """Per-vertex weights of each appearance class (skin is what remains)."""

    weights: dict[str, np.ndarray]  # class -> (V,) in [0, 1]


def _eye_classes(model: FaceModel, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.flatnonzero(model.region_mask(f"sclera_{side}", f"iris_{side}"))
    v = model.template[idx].astype(np.float64)
    centre = v.mean(axis=0)
    centre[2] = v[:, 2].min() + (v[:, 2].max() - v[:, 2].min()) / 2  # sphere centre in depth
    d = v - centre
    angle = np.degrees(np.arccos(np.clip(d[:, 2] / np.linalg.norm(d, axis=1), -1, 1)))
    return idx, angle < PUPIL_ANGLE_DEG, (angle >= PUPIL_ANGLE_DEG) & (angle < IRIS_ANGLE_DEG)


def _near_polyline(points: np.ndarray, line: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Soft weight of 2D ``points`` within a per-segment-tapered ``radius`` of a polyline."""
    best = np.zeros(len(points))
    for i in range(len(line) - 1):
        a, b = line[i], line[i + 1]
        ab = b - a
        t = np.clip(((points - a) @ ab) / (ab @ ab), 0, 1)
        dist = np.linalg.norm(points - (a + t[:, None] * ab), axis=1)
        r = radius[i] + t * (radius[i + 1] - radius[i])
        best = np.maximum(best, np.clip(1.5 - dist / r, 0, 1))
    return best


def appearance_masks(model: FaceModel) -> AppearanceMasks:
    """Compute the appearance classes of every vertex from regions and landmarks."""
    n = model.n_vertices
    v = model.template.astype(np.float64)
    lm = v[model.landmarks]
    w: dict[str, np.ndarray] = {}
    face = model.region_mask("face")
    front = face & (v[:, 2] > lm[:, 2].min() - 1.0)

    lips = np.zeros(n)
    lips[front] = PolyPath(lm[48:60, :2]).contains_points(v[front, :2], radius=0.05)
    w["lips"] = lips

    brows = np.zeros(n)
    taper = np.array([0.25, 0.45, 0.5, 0.45, 0.35]) * 0.9
    for sl, r in ((slice(17, 22), taper), (slice(22, 27), taper[::-1])):
        brows[front] = np.maximum(brows[front], _near_polyline(v[front, :2], lm[sl, :2], r))
    w["brows"] = brows

    brow_top = lm[17:27, 1].max()
    hair = np.zeros(n)
    head = model.region_mask("head")
    hair[face] = np.clip((v[face, 1] - (brow_top + 5.0)) / 0.8, 0, 1)
    hair[head] = np.clip((v[head, 1] - (brow_top - 1.0)) / 1.0, 0, 1) * (v[head, 2] < 8)
    w["hair"] = hair

    for cls in ("sclera", "iris", "pupil"):
        w[cls] = np.zeros(n)
    for side in ("left", "right"):
        idx, pupil, iris = _eye_classes(model, side)
        w["pupil"][idx[pupil]] = 1
        w["iris"][idx[iris]] = 1
        w["sclera"][idx[~(pupil | iris)]] = 1
    for region in ("teeth", "gums_tongue", "mouth_socket", "eye_socket", "eyelashes"):
        w[region] = model.region_mask(region).astype(np.float64)
    return AppearanceMasks(weights=w)


def vertex_albedo(masks: AppearanceMasks, skin_tone: float | np.ndarray) -> np.ndarray:
    """Per-vertex RGB albedo (B, V, 3) float32 for skin tone(s) in [0, 1]."""
    tones = np.atleast_1d(np.asarray(skin_tone, dtype=np.float64))
    skin = SKIN_LIGHT[None] + tones[:, None] * (SKIN_DARK - SKIN_LIGHT)[None]  # (B, 3)
    n = len(next(iter(masks.weights.values())))
    out = np.broadcast_to(skin[:, None, :], (len(tones), n, 3)).copy()
    for cls, weight in masks.weights.items():
        colour = COLOURS[cls]
        if cls == "lips":  # lips follow the skin tone, darker and redder
            colour = 0.72 * skin + 0.28 * COLOURS["lips"]
            colour = colour[:, None, :]
        out += weight[None, :, None] * (colour - out)
    return out.astype(np.float32)
