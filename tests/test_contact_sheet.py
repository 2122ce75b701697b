"""The contact sheet renders one identity with every emotion, side and strength."""

from __future__ import annotations

import numpy as np
import pytest

from facesym.config import validate_config
from facesym.contact_sheet import contact_sheet, identity_grid, sheet_sides, with_sides
from facesym.scenes import sample_scenes


def _cfg():
    return validate_config({"face_model": {"identity_modes": 10}, "render": {"size": 64},
                            "scenes": {"faces_per_emotion": 1,
                                       "emotions": ["happiness", "neutral"]},
                            "intervention": {"strengths": [0.0, 1.0]}})


def test_identity_grid_shapes_and_scores(ict_model):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    res = identity_grid(ict_model, scenes, cfg, 0, ["happiness", "neutral"])
    images, asym, boxes = res.images, res.asym_3d, res.face_box
    assert images.shape == (2, 3, 2, 64, 64, 3) and boxes.shape == (2, 3, 2, 4)
    assert res.landmarks_2d.shape == (2, 3, 2, 68, 2)
    assert asym[0, 0, 1] > 0.5 and asym[0, 2, 1] < 0.05 and (asym[1] == 0).all()
    # the same identity: neutral renders are identical across the whole design
    assert (images[1] == images[1, 0, 0]).all()


def test_sheet_adds_the_mirror_composites_once():
    cfg = _cfg()
    assert sheet_sides(cfg) == ["left", "right", "control", "mirror_left", "mirror_right"]
    mixed = with_sides(cfg, ["mirror_right", "left"])
    assert sheet_sides(mixed) == ["mirror_right", "left", "mirror_left"]
    assert cfg["intervention"]["sides"] == ["left", "right", "control"]  # not changed


def test_contact_sheet_png(ict_model, tmp_path):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    out = tmp_path / "sheet.png"
    scores = contact_sheet(ict_model, scenes, cfg, [0, 1], out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert set(scores.asym) == {"face0", "face1"}
    assert scores.sides == ["left", "right", "control", "mirror_left", "mirror_right"]
    # the index is scale-free: identities and intensities differ, the scores do not
    np.testing.assert_allclose(scores.asym["face0"], scores.asym["face1"], atol=1e-4)
    # a full 3D mirror composite is symmetric; at a = 0 it is the original
    happy = scores.asym["face0"][0]
    assert happy[3, 1] < 0.05 and happy[4, 1] < 0.05
    np.testing.assert_allclose(happy[3:, 0], happy[0, 0])
    # 2D vs 3D composites of face 0: a neutral face has no expression to mirror, so its 3D
    # composite is the original exactly; the 2D one still mirrors identity, light and pose
    comp = scores.composites
    assert comp.face == 0 and comp.original.shape == (2, 64, 64, 3)
    for side in ("left", "right"):
        assert comp.mae_original_vs_3d[side][1] == 0.0
        # a smile is nearly symmetric already: mirroring it changes little
        assert comp.mae_original_vs_3d[side][0] < 1.0
        assert (comp.mae_2d_vs_3d[side] > 0).all() and (comp.mae_2d_vs_3d[side] < 40).all()
        np.testing.assert_array_equal(comp.composite_3d[side][1], comp.original[1])
    # the error is the masked mean of |2D - 3D| (recomputed here from the images)
    diff = np.abs(comp.composite_2d["left"][0].astype(float)
                  - comp.composite_3d["left"][0].astype(float)).mean(-1)
    np.testing.assert_allclose(comp.mae_2d_vs_3d["left"][0], diff[comp.mask["left"][0]].mean())


def test_contact_sheet_of_a_study_with_mirror_sides(ict_model, tmp_path):
    """A one-sided expression (contempt, AU14 on one side): both composites make it
    symmetric, and the 3D composite visibly changes the render."""
    cfg = with_sides(_cfg(), ["mirror_left", "left"])
    cfg["scenes"] = {**cfg["scenes"], "emotions": ["contempt", "neutral"]}
    scenes = sample_scenes(cfg, ict_model)
    scores = contact_sheet(ict_model, scenes, cfg, [1], tmp_path / "sheet.png")
    assert scores.sides == ["mirror_left", "left", "mirror_right"]
    contempt = scores.asym["face1"][0]
    assert contempt.shape == (3, 2)
    assert contempt[0, 0] > 0.5 and contempt[0, 1] < 0.05 and contempt[2, 1] < 0.05
    comp = scores.composites
    assert comp.face == 1
    for side in ("left", "right"):
        assert comp.mae_original_vs_3d[side][0] > 0.5


@pytest.mark.parametrize("faces", [[0, 2], [-1]])
def test_faces_outside_the_study_are_named(ict_model, tmp_path, faces):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    with pytest.raises(ValueError, match=r"contact_sheet.faces: \[-?\d\] not in the study"):
        contact_sheet(ict_model, scenes, cfg, faces, tmp_path / "sheet.png")
    assert not (tmp_path / "sheet.png").exists()
