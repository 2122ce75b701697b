"""The symmetry intervention do(S = s) and its intensity-matched symmetric control.

For strength a ∈ [0, 1] and side ∈ {left, right} (the subject's side that loses expression):
- split shapes (``*_L``/``*_R``) of the affected side: weight × (1 − a);
- other non-spared shapes (moving both sides): per vertex Δv = w·(1 − a·m(v))·B(v) with a
  smooth hemiface mask m ∈ [0, 1] (1 on the affected side);
- spared shapes (jaw, eyeballs by default): untouched.
The control ("control" side) scales every non-spared shape by (1 − a/2) on both sides: the same
total expression loss, full symmetry. ``mode="mask"`` treats split shapes like the others (for
models without left/right shapes, e.g. FLAME).

The mirror composites ``mirror_left``/``mirror_right`` ("chimeric" faces) give both hemifaces
the expression displacement of one: with the composite C(d)(v) = d(v) on the kept hemiface
and F d(m(v)) on the other (m the model's mirror map, F the reflection x → −x; midline
vertices keep their symmetric part), the displacement at strength a is (1 − a)·d + a·C(d).
a = 0 is the original bit for bit and a = 1 is exactly mirror-symmetric wherever the mirror
map is reciprocal (every vertex of ICT's face region). Only the expression is mirrored; the
identity and the neutral head stay as they are. The composite mirrors every shape, the spared
jaw shapes included (a symmetric chimeric face has a symmetric jaw), but not the eyeballs:
vertices of the eyeball regions (:data:`EYEBALL_REGIONS`) keep their own displacement, so
the look direction and pupils stay as they are.

The examples use :func:`_toy_model`: two vertices, one each side of the midline.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facesym.facemodel.base import FaceModel
from facesym.vocab import (
    ALL_SIDES,
    CONTROL,
    HEMIFACES,
    LEFT,
    MIRROR_KEEPS,
    MIRROR_SIDES,
    RIGHT,
    SIDES,
)

__all__ = ["ALL_SIDES", "EYEBALL_REGIONS", "MIRROR_SIDES", "SIDES", "DisplacementParts",
           "InterventionMasks", "MirrorComposite", "ShapeGroups", "displacement_parts",
           "hemiface_mask", "intervene", "intervention_masks", "mirror_blend",
           "mirror_composite_map", "shape_groups"]

#: fnmatch patterns of the region names whose vertices a mirror composite leaves alone
EYEBALL_REGIONS = ("sclera*", "iris*", "eyeball*")
_FLIP_X = np.array([-1.0, 1.0, 1.0], dtype=np.float32)


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
              masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Expression displacement (V, 3) after do(S) with ``side`` and strength ``strength``.

    ``masks`` holds :func:`hemiface_mask` for "left" and "right"; the mirror sides need the
    :class:`InterventionMasks` of :func:`intervention_masks` (which carry the composites).

    >>> toy = _toy_model()
    >>> parts = displacement_parts(toy, np.array([1.0, 1.0, 0.5, 0.0]),
    ...                            shape_groups(toy, ["jaw*"]))
    >>> masks = intervention_masks(toy, width=0.5)
    >>> intervene(parts, "left", 1.0, masks)[:, 1].round(3).tolist()  # left loses it all
    [0.0, 1.5]
    >>> intervene(parts, "control", 1.0, masks)[:, 1].round(3).tolist()  # both lose half
    [0.75, 0.75]
    >>> smile_left = displacement_parts(toy, np.array([1.0, 0.0, 0.5, 0.0]),
    ...                                 shape_groups(toy, ["jaw*"]))
    >>> intervene(smile_left, "mirror_left", 1.0, masks)[:, 1].tolist()  # left-left face
    [1.5, 1.5]
    >>> intervene(smile_left, "mirror_right", 0.5, masks)[:, 1].tolist()  # half-way to right
    [1.0, 0.5]
    """
    a = float(strength)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {a}")
    if side in MIRROR_SIDES:
        return mirror_blend(parts.total, side, a, masks)
    # Same summation order as DisplacementParts.total, so a = 0 reproduces it bit for bit.
    if side == CONTROL:
        keep = np.float32(1.0 - a / 2.0)
        return parts.spared + keep * parts.left + keep * parts.right + keep * parts.bilateral
    if side not in HEMIFACES:
        raise ValueError(f"side must be one of {', '.join(ALL_SIDES)}, got {side!r}")
    m = masks[side][:, None].astype(np.float32)
    keep_left = np.float32(1.0 - a) if side == LEFT else np.float32(1.0)
    keep_right = np.float32(1.0 - a) if side == RIGHT else np.float32(1.0)
    return (parts.spared + keep_left * parts.left + keep_right * parts.right
            + (np.float32(1.0) - np.float32(a) * m) * parts.bilateral)


@dataclass(frozen=True)
class MirrorComposite:
    """Per-vertex recipe of a 3D mirror composite of displacements d (V, 3):

        C(d)(v) = keep(v) · d(v) + take(v) · F d(partner(v)),

    (keep, take) = (1, 0) on the kept hemiface, on eyeball vertices and on vertices without
    a mirror partner; (0, 1) on the other hemiface; (½, ½) on the seam (vertices that are
    their own partner, or pairs at the same x), which leaves the symmetric part.
    """

    side: str
    partner: np.ndarray  # (V,) int64, a vertex's own index where it has no partner
    keep: np.ndarray  # (V, 1) float32
    take: np.ndarray  # (V, 1) float32

    def apply(self, displacement: np.ndarray) -> np.ndarray:
        """The composite of displacement(s) (..., V, 3)."""
        d = np.asarray(displacement)
        return self.keep * d + self.take * (d[..., self.partner, :] * _FLIP_X)


def mirror_composite_map(model: FaceModel, side: str) -> MirrorComposite:
    """The :class:`MirrorComposite` of ``side`` ('mirror_left' keeps the subject's left).

    Which vertex of a mirror pair is kept is decided within the pair (the one farther towards
    the kept side in the template), so it needs no midline estimate.

    >>> mc = mirror_composite_map(_toy_model(), "mirror_left")
    >>> mc.partner.tolist(), mc.keep[:, 0].tolist(), mc.take[:, 0].tolist()
    ([1, 0], [1.0, 0.0], [0.0, 1.0])
    """
    if side not in MIRROR_SIDES:
        raise ValueError(f"side must be one of {', '.join(MIRROR_SIDES)}, got {side!r}")
    sign = 1.0 if MIRROR_KEEPS[side] == LEFT else -1.0  # +x is the subject's left
    own = np.arange(model.n_vertices)
    paired = model.mirror >= 0
    eyeball_codes = [i for i, n in enumerate(model.region_names)
                     if any(fnmatch.fnmatchcase(n, p) for p in EYEBALL_REGIONS)]
    mirrored = paired & ~np.isin(model.region, eyeball_codes)
    partner = np.where(mirrored, model.mirror, own)
    x = model.template[:, 0].astype(np.float64) * sign
    towards_kept = x - x[partner]
    take = np.where(towards_kept < 0, 1.0, 0.0)
    take[mirrored & (towards_kept == 0)] = 0.5  # seam: its own partner, or a pair at equal x
    take[~mirrored] = 0.0
    keep = 1.0 - take
    return MirrorComposite(side=side, partner=partner.astype(np.int64),
                           keep=keep[:, None].astype(np.float32),
                           take=take[:, None].astype(np.float32))


class InterventionMasks(Mapping[str, np.ndarray]):
    """What :func:`intervene` needs of the model's geometry: the smooth hemiface masks (the
    mapping's items, "left" and "right") and the mirror composites (``composites``)."""

    def __init__(self, hemiface: Mapping[str, np.ndarray],
                 composites: Mapping[str, MirrorComposite]) -> None:
        self._hemiface = dict(hemiface)
        self.composites = dict(composites)

    def __getitem__(self, side: str) -> np.ndarray:
        return self._hemiface[side]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hemiface)

    def __len__(self) -> int:
        return len(self._hemiface)


def mirror_blend(displacement: np.ndarray, side: str, strength: float,
                 masks: Mapping[str, np.ndarray]) -> np.ndarray:
    """(1 − a)·d + a·C(d) for any displacement d (..., V, 3), e.g. an already intervened one
    (the composite of a palsy face); ``masks`` from :func:`intervention_masks`.

    a = 0 returns d exactly (1·d + 0) and a = 1 returns C(d) exactly (0·d + C(d)).

    >>> toy = _toy_model()
    >>> d = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    >>> mirror_blend(d, "mirror_left", 0.25, intervention_masks(toy, 0.5))[:, 1].tolist()
    [2.0, 0.5]
    """
    a = float(strength)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"strength must lie in [0, 1], got {a}")
    composites = getattr(masks, "composites", None)
    if composites is None:
        raise TypeError(f"side {side!r} needs the mirror map: pass the masks "
                        "intervention_masks(model, width) returns")
    if side not in composites:
        raise ValueError(f"side must be one of {', '.join(MIRROR_SIDES)}, got {side!r}")
    d = np.asarray(displacement)
    return np.float32(1.0 - a) * d + np.float32(a) * composites[side].apply(d)


def intervention_masks(model: FaceModel, width: float) -> InterventionMasks:
    """Both hemiface masks and both mirror composites, for :func:`intervene`.

    >>> toy = _toy_model()
    >>> masks = intervention_masks(toy, width=0.5)
    >>> sorted(masks), sorted(masks.composites)
    (['left', 'right'], ['mirror_left', 'mirror_right'])
    """
    return InterventionMasks({side: hemiface_mask(model, side, width) for side in HEMIFACES},
                             {side: mirror_composite_map(model, side) for side in MIRROR_SIDES})
