"""The 2D asymmetry of a face in a photo, from its 68 landmarks.

Renders store ``asym_2d`` = :func:`facesym.symmetry.asymmetry_2d` of the landmarks' displacement
from the same face without expression. A photo has no such reference, so :func:`asym_2d_photo`
uses the nearest stand-in: the face model's neutral face (ICT-FaceKit, frontal, made exactly
symmetric), aligned to the photo's landmarks by a least-squares similarity. The index is then the
same formula on the same 68 indices, 0 for a mirror-symmetric face, growing as one side departs
from neutral alone. Identity shape that differs from the template enters it too (symmetrically,
so it dilutes rather than adds asymmetry), and so does head yaw: compare photos, not absolutes.

:func:`mirror_asymmetry` needs no reference at all: the mean distance between each landmark and
its reflected mirror partner about the fitted midline, in units of the outer-eye-corner distance.
"""

from __future__ import annotations

import numpy as np

from facesym.facemodel.base import LANDMARK68_MIRROR
from facesym.photos.geometry import fit_midline, similarity_fit
from facesym.symmetry import asymmetry_2d

# neutral_template() of the ICT-FaceKit model (tests check it against the fetched model):
# x right, y down, symmetric about x = 0, unit distance between landmarks 36 and 45.
NEUTRAL_TEMPLATE = np.array([
    (-0.8256, -0.4414), (-0.8159, -0.1964), (-0.7779, 0.0226), (-0.7352, 0.2351),
    (-0.6419, 0.4740), (-0.4824, 0.6669), (-0.3421, 0.7460), (-0.1723, 0.7847),
    (0.0000, 0.8194), (0.1723, 0.7847), (0.3421, 0.7460), (0.4824, 0.6669),
    (0.6419, 0.4740), (0.7352, 0.2351), (0.7779, 0.0226), (0.8159, -0.1964),
    (0.8256, -0.4414), (-0.6521, -0.6121), (-0.5531, -0.6993), (-0.4253, -0.7306),
    (-0.2708, -0.7234), (-0.1314, -0.6917), (0.1314, -0.6917), (0.2708, -0.7234),
    (0.4253, -0.7306), (0.5531, -0.6993), (0.6521, -0.6121), (0.0000, -0.4486),
    (0.0000, -0.3245), (0.0000, -0.2099), (0.0000, -0.0747), (-0.1405, 0.0992),
    (-0.0676, 0.0984), (0.0000, 0.1058), (0.0676, 0.0984), (0.1405, 0.0992),
    (-0.5000, -0.4140), (-0.4339, -0.4636), (-0.3119, -0.4705), (-0.2068, -0.3938),
    (-0.3060, -0.3751), (-0.4324, -0.3736), (0.2068, -0.3938), (0.3119, -0.4705),
    (0.4339, -0.4636), (0.5000, -0.4140), (0.4324, -0.3736), (0.3060, -0.3751),
    (-0.2842, 0.3655), (-0.1909, 0.2822), (-0.0817, 0.2425), (0.0000, 0.2492),
    (0.0817, 0.2425), (0.1909, 0.2822), (0.2842, 0.3655), (0.2019, 0.4257),
    (0.1160, 0.4533), (0.0000, 0.4616), (-0.1160, 0.4533), (-0.2019, 0.4257),
    (-0.2477, 0.3622), (-0.1117, 0.3405), (0.0000, 0.3435), (0.1117, 0.3405),
    (0.2477, 0.3622), (0.1199, 0.3498), (0.0000, 0.3521), (-0.1199, 0.3498),
])


def align_to_template(landmarks: np.ndarray, template: np.ndarray = NEUTRAL_TEMPLATE
                      ) -> np.ndarray:
    """Map one face's landmarks (68, 2) into the template's frame by a similarity fit."""
    scale, rot, shift = similarity_fit(landmarks, template)
    return scale * np.asarray(landmarks, dtype=np.float64) @ rot.T + shift


def asym_2d_photo(landmarks: np.ndarray, template: np.ndarray = NEUTRAL_TEMPLATE) -> np.ndarray:
    """2D asymmetry index of landmarks (..., 68, 2) against the aligned neutral template."""
    lm = np.asarray(landmarks, dtype=np.float64)
    flat = lm.reshape(-1, 68, 2)
    aligned = np.stack([align_to_template(f, template) for f in flat])
    return asymmetry_2d(aligned, template).reshape(lm.shape[:-2])


def mirror_asymmetry(landmarks: np.ndarray) -> np.ndarray:
    """Mean landmark-to-reflected-partner distance / outer-eye-corner distance, (..., 68, 2)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    line = fit_midline(lm)
    partners = line.reflect(lm[..., LANDMARK68_MIRROR, :])
    dist = np.linalg.norm(lm - partners, axis=-1).mean(-1)
    return dist / np.linalg.norm(lm[..., 45, :] - lm[..., 36, :], axis=-1)
