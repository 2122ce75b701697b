"""The symmetry intervention do(S = s) and its intensity-matched symmetric control.

For strength a ∈ [0, 1] and side ∈ {left, right} (the subject's side that loses expression):
- split shapes (``*_L``/``*_R``) of the affected side: weight × (1 − a);
- other non-spared shapes (moving both sides): per vertex Δv = w·(1 − a·m(v))·B(v) with a
  smooth hemiface mask m ∈ [0, 1] (1 on the affected side);
- spared shapes (jaw, eyeballs by default): untouched.
The control ("control" side) scales every non-spared shape by (1 − a/2) on both sides: the same
total expression loss, full symmetry. ``mode="mask"`` treats split shapes like the others (for
models without left/right shapes, e.g. FLAME).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesym.facemodel.base import FaceModel

SIDES = ("left", "right", "control")
# A logistic rising from 5 % to 95 % spans 2·ln(19) scale units.
_LOGISTIC_5_95 = 2.0 * np.log(19.0)


def hemiface_mask(model: FaceModel, side: str, width: float) -> np.ndarray:
    """Smooth mask m(v) ∈ (0, 1), ≈1 on ``side`` of the midline; ``width`` = 5–95 % band."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    sign = 1.0 if side == "left" else -1.0  # +x is the subject's left
    x = (model.template[:, 0].astype(np.float64) - model.midline_x) * sign
    return 1.0 / (1.0 + np.exp(-x * _LOGISTIC_5_95 / width))


@dataclass(frozen=True)
class ShapeGroups:
    """Boolean (E,) masks partitioning a model's expression shapes for the intervention."""

    left: np.ndarray
    right: np.ndarray
    bilateral: np.ndarray
    spared: np.ndarray


def shape_groups(model: FaceModel, spared_patterns: Sequence[str], mode: str = "split"
                 ) -> ShapeGroups:
    """Partition shapes into affected-left, affected-right, masked-bilateral and spared."""
    if mode not in ("split", "mask"):
        raise ValueError(f"mode must be 'split' or 'mask', got {mode!r}")
    names = model.expression_names
    spared = np.array([any(fnmatch.fnmatchcase(n, p) for p in spared_patterns) for n in names])
    side = [model.shape_side(n) if mode == "split" else None for n in names]
    left = np.array([s == "left" for s in side]) & ~spared
    right = np.array([s == "right" for s in side]) & ~spared
    bilateral = ~(left | right | spared)
    return ShapeGroups(left=left, right=right, bilateral=bilateral, spared=spared)


@dataclass
class DisplacementParts:
    """A face's expression displacement split by shape group, each (V, 3)."""

    left: np.ndarray
    right: np.ndarray
    bilateral: np.ndarray
    spared: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """The un-intervened expression displacement."""
        return self.spared + self.left + self.right + self.bilateral


def displacement_parts(model: FaceModel, weights: np.ndarray, groups: ShapeGroups
                       ) -> DisplacementParts:
    """Σ w_e B_e separately over each shape group."""
    w = np.asarray(weights, dtype=np.float32)

    def part(mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask & (w != 0))
        if idx.size == 0:
            return np.zeros_like(model.template)
        return np.tensordot(w[idx], model.expression[idx], axes=(0, 0))

    return DisplacementParts(part(groups.left), part(groups.right), part(groups.bilateral),
                             part(groups.spared))


def intervene(parts: DisplacementParts, side: str, strength: float,
              masks: dict[str, np.ndarray]) -> np.ndarray:
    """Expression displacement (V, 3) after do(S) with ``side`` and strength ``strength``.

    ``masks`` holds :func:`hemiface_mask` for "left" and "right".
    """
    a = float(strength)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {a}")
    # Same summation order as DisplacementParts.total, so a = 0 reproduces it bit for bit.
    if side == "control":
        keep = np.float32(1.0 - a / 2.0)
        return parts.spared + keep * parts.left + keep * parts.right + keep * parts.bilateral
    if side not in ("left", "right"):
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    m = masks[side][:, None].astype(np.float32)
    keep_left = np.float32(1.0 - a) if side == "left" else np.float32(1.0)
    keep_right = np.float32(1.0 - a) if side == "right" else np.float32(1.0)
    return (parts.spared + keep_left * parts.left + keep_right * parts.right
            + (np.float32(1.0) - np.float32(a) * m) * parts.bilateral)


def intervention_masks(model: FaceModel, width: float) -> dict[str, np.ndarray]:
    """Both hemiface masks, for :func:`intervene`."""
    return {s: hemiface_mask(model, s, width) for s in ("left", "right")}
