"""Landmark geometry of a face image: the fitted midline, reflections, similarity alignment.

Coordinates follow the renderer's convention: pixel (row i, column j) covers [j, j+1] × [i, i+1],
so its centre is (j + 0.5, i + 0.5); x right, y down. dlib's landmarks (pixel indices) are
shifted by +0.5 when read (see :mod:`facesym.photos.detect`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesym.facemodel.base import LANDMARK68_MIRROR, FaceModel

# 68-point indices that are their own mirror partner: nose bridge and tip, lip centres, chin.
MIDLINE68 = np.flatnonzero(np.arange(68) == LANDMARK68_MIRROR)
RIGHT_EYE68 = np.arange(36, 42)  # subject's right eye (image left in a photograph)
LEFT_EYE68 = np.arange(42, 48)


@dataclass(frozen=True)
class Midline:
    """A line in the image: a point on it and the unit normal pointing to the subject's left."""

    point: np.ndarray  # (..., 2)
    normal: np.ndarray  # (..., 2) unit

    def signed_distance(self, xy: np.ndarray) -> np.ndarray:
        """Signed distance of points (..., N, 2) from the line; > 0 on the subject's left."""
        return ((xy - self.point[..., None, :]) * self.normal[..., None, :]).sum(-1)

    def reflect(self, xy: np.ndarray) -> np.ndarray:
        """Mirror points (..., N, 2) about the line."""
        s = self.signed_distance(xy)
        return xy - 2.0 * s[..., None] * self.normal[..., None, :]

    def angle_deg(self) -> np.ndarray:
        """Tilt of the line from the image vertical, degrees (positive: top leans right)."""
        return np.degrees(np.arctan2(self.normal[..., 1], self.normal[..., 0]))


def fit_midline(landmarks: np.ndarray, indices: np.ndarray = MIDLINE68) -> Midline:
    """Least-squares midline of 68-point landmarks (..., 68, 2).

    Total least squares (orthogonal distances, so any tilt is fitted alike) through the
    self-mirrored landmarks ``indices``; the normal is oriented towards the subject's left eye.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    pts = lm[..., indices, :]
    centre = pts.mean(-2)
    dev = pts - centre[..., None, :]
    cov = np.einsum("...ni,...nj->...ij", dev, dev)
    _, vecs = np.linalg.eigh(cov)
    direction = vecs[..., :, 1]  # eigenvector of the largest eigenvalue: along the line
    normal = np.stack([direction[..., 1], -direction[..., 0]], axis=-1)
    towards_left = lm[..., LEFT_EYE68, :].mean(-2) - lm[..., RIGHT_EYE68, :].mean(-2)
    sign = np.where((towards_left * normal).sum(-1) < 0, -1.0, 1.0)
    return Midline(point=centre, normal=normal * sign[..., None])


def line_through(point: tuple[float, float], angle_deg: float) -> Midline:
    """A midline through ``point`` tilted ``angle_deg`` from the vertical (subject's left at +x)."""
    a = np.radians(angle_deg)
    return Midline(point=np.asarray(point, dtype=np.float64),
                   normal=np.array([np.cos(a), np.sin(a)]))


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (scale, rotation, translation) mapping ``src`` (N, 2) onto ``dst``.

    Umeyama's solution without reflection: dst ≈ scale · src @ rot.T + shift.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ d @ vt
    scale = float((sig * np.diag(d)).sum() / (a**2).sum())
    return scale, rot, mu_d - scale * mu_s @ rot.T


def neutral_template(model: FaceModel) -> np.ndarray:
    """Frontal 68-landmark template (68, 2) of a face model's neutral face.

    Orthographic front view (x right, y down), made exactly mirror-symmetric about x = 0, and
    scaled to unit distance between the outer eye corners (landmarks 36 and 45).
    """
    pts = model.template[model.landmarks][:, :2].astype(np.float64) * np.array([1.0, -1.0])
    pts[:, 0] -= model.midline_x
    mirrored = pts[LANDMARK68_MIRROR] * np.array([-1.0, 1.0])
    sym = (pts + mirrored) / 2
    sym -= np.array([0.0, sym[:, 1].mean()])
    return sym / np.linalg.norm(sym[45] - sym[36])
