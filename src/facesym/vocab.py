"""The words facesym's cubes and tables share: dimension names, sides, comparisons, labels.

Import these instead of re-typing the strings, so a cube written by one stage and read by
another (or by a user with ``xarray.open_zarr``) agrees on every name.

>>> SIDES
('left', 'right', 'control')
>>> vs_control(LEFT)
'left_vs_control'
>>> comparisons_for(["left", "right", "control"])
('left', 'right', 'control', 'left_vs_control', 'right_vs_control')
>>> comparison_side("right_vs_control"), comparison_side(CONTROL)
('right', 'control')
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

# --- comparisons of the test family -----------------------------------------------------------
VS_CONTROL = "_vs_control"
#: every comparison, in the order tables list them: raw effects, then symmetry contrasts
COMPARISONS = (LEFT, RIGHT, CONTROL, LEFT + VS_CONTROL, RIGHT + VS_CONTROL)

# --- canonical expression labels --------------------------------------------------------------
NEUTRAL = "neutral"
CANONICAL_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", NEUTRAL)


def vs_control(side: str) -> str:
    """The symmetry contrast of hemiface ``side`` against the control, e.g. 'left_vs_control'."""
    if side not in HEMIFACES:
        raise ValueError(f"side must be one of {', '.join(HEMIFACES)}, got {side!r}")
    return side + VS_CONTROL


def is_contrast(comparison: str) -> bool:
    """True for a symmetry contrast (``<side>_vs_control``), False for a raw effect."""
    return comparison.endswith(VS_CONTROL)


def comparison_side(comparison: str) -> str:
    """The side a comparison is about: 'left' for both 'left' and 'left_vs_control'."""
    return comparison.removesuffix(VS_CONTROL)


def comparisons_for(sides: Iterable[str]) -> tuple[str, ...]:
    """The comparisons a set of rendered sides allows: each side's raw effect, and each
    hemiface against the control when the control was rendered (sides keep their order)."""
    present = [str(s) for s in sides]
    contrasts = [vs_control(s) for s in HEMIFACES if s in present and CONTROL in present]
    return (*present, *contrasts)
