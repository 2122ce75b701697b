"""The symmetry intervention do(S = s) and its intensity-matched symmetric control.

For strength a ∈ [0, 1] and side ∈ {left, right} (the subject's side that loses expression):
- split shapes (``*_L``/``*_R``) of the affected side: weight × (1 − a);
- other non-spared shapes (moving both sides): per vertex Δv = w·(1 − a·m(v))·B(v) with a
  smooth hemiface mask m ∈ [0, 1] (1 on the affected side);
- spared shapes (jaw, eyeballs by default): untouched.
The control ("control" side) scales every non-spared shape by (1 − a/2) on both sides: the same
total expression loss, full symmetry. ``mode="mask"`` treats split shapes like the others (for
models without left/right shapes, e.g. FLAME).

The examples use :func:`_toy_model`: two vertices, one each side of the midline.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from facesym.facemodel.base import FaceModel
from facesym.vocab import CONTROL, HEMIFACES, LEFT, RIGHT, SIDES

__all__ = ["SIDES", "DisplacementParts", "ShapeGroups", "displacement_parts", "hemiface_mask",
           "intervene", "intervention_masks", "shape_groups"]


def _toy_model() -> FaceModel:
    """Two vertices at x = ±1 (+x is the subject's left), a one-sided smile per side, a brow
    raise moving both and a jaw opening: the smallest model the examples can show."""
    template = np.array([[1.0, 0, 0], [-1.0, 0, 0]], dtype=np.float32)
    up = np.array([[0.0, 1, 0], [0.0, 1, 0]], dtype=np.float32)
    return FaceModel(
        name="toy", template=template, triangles=np.zeros((0, 3), np.int64),
        identity=np.zeros((0, 2, 3), np.float32),
        expression=np.stack([up * [[1], [0]], up * [[0], [1]], up, up]),
        expression_names=["smile_L", "smile_R", "browRaise", "jawOpen"],
        landmarks=np.zeros(0, np.int64), region=np.zeros(2, np.int16), region_names=["face"],
        mirror=np.array([1, 0]), mirror_error=np.zeros(2, np.float32))


# A logistic rising from 5 % to 95 % spans 2·ln(19) scale units.
_LOGISTIC_5_95 = 2.0 * np.log(19.0)


def hemiface_mask(model: FaceModel, side: str, width: float) -> np.ndarray:
    """Smooth mask m(v) ∈ (0, 1), ≈1 on ``side`` of the midline; ``width`` = 5–95 % band
    (in model units, across the midline).

    >>> toy = _toy_model()
    >>> hemiface_mask(toy, "left", width=0.5).round(3)
    array([1., 0.])
    >>> hemiface_mask(toy, "left", width=4.0).round(3)  # 5–95 % over x ∈ [−2, 2]
    array([0.813, 0.187])
    """
    if side not in HEMIFACES:
        raise ValueError(f"side must be one of {', '.join(HEMIFACES)}, got {side!r}")
    sign = 1.0 if side == LEFT else -1.0  # +x is the subject's left
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
    """Partition shapes into affected-left, affected-right, masked-bilateral and spared
    (``spared_patterns`` are fnmatch patterns of shape names; ``mode="mask"`` puts one-sided
    shapes with the bilateral ones).

    >>> toy = _toy_model()
    >>> groups = shape_groups(toy, ["jaw*"])
    >>> groups.left.tolist(), groups.bilateral.tolist(), groups.spared.tolist()
    ([True, False, False, False], [False, False, True, False], [False, False, False, True])
    >>> shape_groups(toy, ["jaw*"], mode="mask").bilateral.tolist()
    [True, True, True, False]
    """
    if mode not in ("split", "mask"):
        raise ValueError(f"mode must be 'split' or 'mask', got {mode!r}")
    names = model.expression_names
    spared = np.array([any(fnmatch.fnmatchcase(n, p) for p in spared_patterns) for n in names])
    side = [model.shape_side(n) if mode == "split" else None for n in names]
    left = np.array([s == LEFT for s in side]) & ~spared
    right = np.array([s == RIGHT for s in side]) & ~spared
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
    """Σ w_e B_e separately over each shape group.

    >>> toy = _toy_model()
    >>> parts = displacement_parts(toy, np.array([1.0, 0.0, 0.5, 0.0]),
    ...                            shape_groups(toy, ["jaw*"]))
    >>> parts.left[:, 1].tolist(), parts.bilateral[:, 1].tolist(), parts.total[:, 1].tolist()
    ([1.0, 0.0], [0.5, 0.5], [1.5, 0.5])
    """
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

    >>> toy = _toy_model()
    >>> parts = displacement_parts(toy, np.array([1.0, 1.0, 0.5, 0.0]),
    ...                            shape_groups(toy, ["jaw*"]))
    >>> masks = intervention_masks(toy, width=0.5)
    >>> intervene(parts, "left", 1.0, masks)[:, 1].round(3).tolist()  # left loses it all
    [0.0, 1.5]
    >>> intervene(parts, "control", 1.0, masks)[:, 1].round(3).tolist()  # both lose half
    [0.75, 0.75]
    """
    a = float(strength)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {a}")
    # Same summation order as DisplacementParts.total, so a = 0 reproduces it bit for bit.
    if side == CONTROL:
        keep = np.float32(1.0 - a / 2.0)
        return parts.spared + keep * parts.left + keep * parts.right + keep * parts.bilateral
    if side not in HEMIFACES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    m = masks[side][:, None].astype(np.float32)
    keep_left = np.float32(1.0 - a) if side == LEFT else np.float32(1.0)
    keep_right = np.float32(1.0 - a) if side == RIGHT else np.float32(1.0)
    return (parts.spared + keep_left * parts.left + keep_right * parts.right
            + (np.float32(1.0) - np.float32(a) * m) * parts.bilateral)


def intervention_masks(model: FaceModel, width: float) -> dict[str, np.ndarray]:
    """Both hemiface masks, for :func:`intervene`.

    >>> toy = _toy_model()
    >>> sorted(intervention_masks(toy, width=0.5))
    ['left', 'right']
    """
    return {side: hemiface_mask(model, side, width) for side in HEMIFACES}
