"""Symmetry measures of an expression: 3D (mirror-paired displacement) and 2D (landmarks).

Both use the same index: for displacements d(v) and their mirror partners' reflected
displacements d'(v) = F d(m(v)) (F flips x),

    asym = Σ ‖d − d'‖ / Σ (‖d‖ + ‖d'‖)  ∈ [0, 1],

0 for a mirror-symmetric expression, 1 when only one side moves; 0 when nothing moves.
"""

from __future__ import annotations

import numpy as np

from facesym.facemodel.base import LANDMARK68_MIRROR, FaceModel

_FLIP_X = np.array([-1.0, 1.0, 1.0], dtype=np.float32)


def _index(d: np.ndarray, d_mirror: np.ndarray) -> np.ndarray:
    num = np.linalg.norm(d - d_mirror, axis=-1).sum(axis=-1)
    den = (np.linalg.norm(d, axis=-1) + np.linalg.norm(d_mirror, axis=-1)).sum(axis=-1)
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 1e-12)


def paired_vertices(model: FaceModel, regions: tuple[str, ...] = ("face",)) -> np.ndarray:
    """Vertices of ``regions`` that have a validated mirror partner."""
    return np.flatnonzero(model.region_mask(*regions) & (model.mirror >= 0))


def asymmetry_3d(displacement: np.ndarray, model: FaceModel, vertices: np.ndarray | None = None
                 ) -> np.ndarray:
    """3D asymmetry index of expression displacement(s) (..., V, 3) → (...)."""
    v = paired_vertices(model) if vertices is None else vertices
    d = displacement[..., v, :]
    d_mirror = displacement[..., model.mirror[v], :] * _FLIP_X
    return _index(d, d_mirror)


def asymmetry_rms_3d(displacement: np.ndarray, model: FaceModel,
                     vertices: np.ndarray | None = None) -> np.ndarray:
    """RMS (model units) of the antisymmetric part (d − d')/2 of the displacement."""
    v = paired_vertices(model) if vertices is None else vertices
    anti = (displacement[..., v, :] - displacement[..., model.mirror[v], :] * _FLIP_X) / 2
    return np.sqrt((anti**2).sum(-1).mean(-1))


def asymmetry_2d(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """2D asymmetry index of 68-landmark image displacement ``landmarks − reference``.

    Both (..., 68, 2) in pixels (x right); ``reference`` is the same face without expression.
    """
    d = (landmarks - reference).astype(np.float64)
    d_mirror = d[..., LANDMARK68_MIRROR, :] * np.array([-1.0, 1.0])
    return _index(d, d_mirror)
