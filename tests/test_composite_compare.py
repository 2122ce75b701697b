"""2D mirror composites of real renders against the 3D composites (facesym.photos.compare)."""

from __future__ import annotations

import numpy as np
import pytest

from facesym.expressions import prototype_weights
from facesym.photos.compare import (
    SIDE_3D,
    composite_gap,
    landmark_hull_mask,
    masked_mae,
    side_by_side,
)

EMOTIONS = ["happiness", "anger"]
SIZE = 128


@pytest.fixture(scope="module")
def renders(ict_model):
    """Frontal, frontally lit renders of the template head with a right-palsy expression
    (every *_R shape off): original (a = 0) and both 3D composites (a = 1)."""
    from facesym.config import validate_config
    from facesym.stages.render import StudyRenderer

    cfg = validate_config({})
    cfg["render"]["size"] = SIZE
    cfg["intervention"]["sides"] = list(SIDE_3D.values())
    cfg["intervention"]["strengths"] = [0.0, 1.0]
    weights = np.stack([prototype_weights(e, cfg["expressions"], ict_model) for e in EMOTIONS])
    weights[:, [i for i, n in enumerate(ict_model.expression_names) if n.endswith("_R")]] = 0
    n = len(EMOTIONS)
    scene = {"yaw": np.zeros(n), "pitch": np.zeros(n), "roll": np.zeros(n),
             "camera_distance_offset": np.zeros(n), "ambient": np.full(n, 0.4),
             "light_azimuth": np.zeros(n), "light_elevation": np.full(n, 20.0),
             "skin_tone": np.full(n, 0.5)}
    res = StudyRenderer(ict_model, cfg).render(
        np.zeros((n, ict_model.identity.shape[0])), weights, scene)
    assert np.array_equal(res.images[:, 0, 0], res.images[:, 1, 0])  # a = 0: the original
    assert (res.asym_3d[:, :, 1] < 1e-6).all() and (res.asym_3d[:, :, 0] > 0.4).all()
    return res


@pytest.mark.parametrize("s, side", list(enumerate(SIDE_3D)))
def test_2d_composite_of_a_frontal_render_matches_the_3d_one(renders, s, side):
    orig, lm = renders.images[:, 0, 0], renders.landmarks_2d[:, 0, 0]
    comp3d = renders.images[:, s, 1]
    gap = composite_gap(orig, comp3d, lm, side, landmarks_3d=renders.landmarks_2d[:, s, 1])
    # measured at 128 px (mirror_left): the gap is 0.61–0.62 grey levels, the change 3.8–4.3
    assert (gap.mae_original_vs_3d > 1.5).all()
    assert (gap.mae_2d_vs_3d < 0.4 * gap.mae_original_vs_3d).all()
    # the other side's 2D composite imitates the wrong face: the measure must see it
    other = "right" if side == "left" else "left"
    wrong = composite_gap(orig, comp3d, lm, other)
    assert (wrong.mae_2d_vs_3d > 2.0 * gap.mae_2d_vs_3d).all()
    assert gap.mask.sum(axis=(1, 2)).min() > 0.2 * SIZE * SIZE
    strip = side_by_side(orig[0], gap.composite_2d[0], comp3d[0], gap.mask[0])
    assert strip.shape == (SIZE, 4 * SIZE, 3) and strip.dtype == np.uint8


def test_hull_mask_and_masked_mae():
    tri = np.array([[[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]])
    mask = landmark_hull_mask(tri, 8, 8)
    assert mask.shape == (1, 8, 8) and mask.sum() == 36  # centres (j+½, i+½): i + j <= 7
    a = np.zeros((1, 8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 7, 7] = 200  # outside the triangle: not counted
    assert masked_mae(a, b, mask)[0] == 0.0
    b[0, 0, 0] = 72  # 72 / 36 pixels
    assert masked_mae(a, b, mask)[0] == pytest.approx(2.0)
    assert np.isnan(masked_mae(a, b, np.zeros((1, 8, 8), bool))[0])
    with pytest.raises(ValueError, match="both be"):
        composite_gap(a, a[0], np.zeros((1, 68, 2)), "left")
