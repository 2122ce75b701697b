"""The words facesym's cubes and tables share: dimension names, sides, comparisons, labels.

Import these instead of re-typing the strings, so a cube written by one stage and read by
another (or by a user with ``xarray.open_zarr``) agrees on every name.

>>> SIDES
('left', 'right', 'control')
>>> vs_control(LEFT)
'left_vs_control'
>>> comparisons_for(["left", "right", "control"])
('left', 'right', 'control', 'left_vs_control', 'right_vs_control')
>>> comparisons_for(["left", "right", "control"], laterality=True)[-1]
'left_vs_right'
>>> comparison_side("right_vs_control"), comparison_side(CONTROL)
('right', 'control')
>>> compared_sides("left_vs_right"), compared_sides("left_vs_control"), compared_sides("left")
(('left', 'right'), ('left', 'control'), ('left', 'left'))
"""

from __future__ import annotations

from collections.abc import Iterable

# --- dimension names of the cubes and of the statistics -------------------------------------
FACE = "face"
SIDE = "side"
STRENGTH = "strength"
LABEL = "label"  # canonical expression labels of a classifier's output
NATIVE_LABEL = "native_label"  # the classifier's own labels, in its own order
EMOTION = "emotion"  # the rendered (intended) emotion of a face
CLASSIFIER = "classifier"
COMPARISON = "comparison"
PREDICTED = "predicted"  # the top class, in confusion matrices
METRIC = "metric"
TEST = "test"  # one test of the family: stacked (classifier, emotion, comparison)

# --- sides: which hemiface loses its expression under the intervention ----------------------
LEFT = "left"  # the subject's left
RIGHT = "right"
CONTROL = "control"  # both sides lose a/2: the intensity-matched symmetric control
HEMIFACES = (LEFT, RIGHT)
SIDES = (LEFT, RIGHT, CONTROL)
#: mirror composites: both hemifaces show this hemiface's expression (and its reflection)
MIRROR_LEFT = "mirror_left"
MIRROR_RIGHT = "mirror_right"
MIRROR_SIDES = (MIRROR_LEFT, MIRROR_RIGHT)
#: every side the intervention knows (``SIDES`` stays the default design)
ALL_SIDES = (*SIDES, *MIRROR_SIDES)
#: the hemiface a mirror composite keeps
MIRROR_KEEPS = {MIRROR_LEFT: LEFT, MIRROR_RIGHT: RIGHT}

# --- comparisons of the test family -----------------------------------------------------------
VS_CONTROL = "_vs_control"
#: laterality: d = p_left(a_max) − p_right(a_max), the same expression loss on either hemiface
LEFT_VS_RIGHT = LEFT + "_vs_" + RIGHT
#: the two mirror composites against each other at a_max
MIRROR_LEFT_VS_RIGHT = MIRROR_LEFT + "_vs_" + MIRROR_RIGHT
#: every comparison, in the order tables list them: raw effects, symmetry contrasts, laterality,
#: then the mirror composites (each against the original, and against each other)
COMPARISONS = (LEFT, RIGHT, CONTROL, LEFT + VS_CONTROL, RIGHT + VS_CONTROL, LEFT_VS_RIGHT,
               MIRROR_LEFT, MIRROR_RIGHT, MIRROR_LEFT_VS_RIGHT)

# --- canonical expression labels --------------------------------------------------------------
NEUTRAL = "neutral"
CANONICAL_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", NEUTRAL)


def vs_control(side: str) -> str:
    """The symmetry contrast of hemiface ``side`` against the control, e.g. 'left_vs_control'."""
    if side not in HEMIFACES:
        raise ValueError(f"side must be one of {', '.join(HEMIFACES)}, got {side!r}")
    return side + VS_CONTROL


def is_contrast(comparison: str) -> bool:
    """True for a symmetry contrast (``<side>_vs_control``), False for a raw effect and for
    the laterality comparison."""
    return comparison.endswith(VS_CONTROL)


def is_laterality(comparison: str) -> bool:
    """True for the laterality comparison ``left_vs_right``."""
    return comparison == LEFT_VS_RIGHT


def is_raw_effect(comparison: str) -> bool:
    """True for a side's own effect p(a_max) − p(0) ('left', 'right', 'control', and the
    mirror composites against the original at equal expression)."""
    return comparison in ALL_SIDES


def comparison_side(comparison: str) -> str:
    """The side a comparison is about: 'left' for both 'left' and 'left_vs_control' (the
    laterality comparison is about both hemifaces and keeps its name)."""
    return comparison.removesuffix(VS_CONTROL)


def compared_sides(comparison: str) -> tuple[str, str]:
    """(side of the minuend, side of the subtrahend) at a_max of a comparison; a raw effect
    compares a side with itself (at a_max and at 0)."""
    if is_laterality(comparison):
        return LEFT, RIGHT
    if comparison == MIRROR_LEFT_VS_RIGHT:
        return MIRROR_LEFT, MIRROR_RIGHT
    if is_contrast(comparison):
        return comparison_side(comparison), CONTROL
    if is_raw_effect(comparison):
        return comparison, comparison
    raise ValueError(f"unknown comparison {comparison!r} (allowed: {', '.join(COMPARISONS)})")


def comparisons_for(sides: Iterable[str], laterality: bool = False) -> tuple[str, ...]:
    """The comparisons a set of rendered sides allows: each side's raw effect, each hemiface
    against the control when the control was rendered, and (``laterality``) left against
    right when both hemifaces were rendered (sides keep their order)."""
    present = [str(s) for s in sides]
    contrasts = [vs_control(s) for s in HEMIFACES if s in present and CONTROL in present]
    lateral = [LEFT_VS_RIGHT] if laterality and all(s in present for s in HEMIFACES) else []
    mirrors = [MIRROR_LEFT_VS_RIGHT] if all(s in present for s in MIRROR_SIDES) else []
    return (*present, *contrasts, *lateral, *mirrors)
