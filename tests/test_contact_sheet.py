"""The contact sheet renders one identity with every emotion, side and strength."""

from __future__ import annotations

import numpy as np
import pytest

from facesym.config import validate_config
from facesym.contact_sheet import contact_sheet, identity_grid
from facesym.scenes import sample_scenes


def _cfg():
    return validate_config({"face_model": {"identity_modes": 10}, "render": {"size": 64},
                            "scenes": {"faces_per_emotion": 1,
                                       "emotions": ["happiness", "neutral"]},
                            "intervention": {"strengths": [0.0, 1.0]}})


def test_identity_grid_shapes_and_scores(ict_model):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    images, asym, boxes = identity_grid(ict_model, scenes, cfg, 0, ["happiness", "neutral"])
    assert images.shape == (2, 3, 2, 64, 64, 3) and boxes.shape == (2, 3, 2, 4)
    assert asym[0, 0, 1] > 0.5 and asym[0, 2, 1] < 0.05 and (asym[1] == 0).all()
    # the same identity: neutral renders are identical across the whole design
    assert (images[1] == images[1, 0, 0]).all()


def test_contact_sheet_png(ict_model, tmp_path):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    out = tmp_path / "sheet.png"
    scores = contact_sheet(ict_model, scenes, cfg, [0, 1], out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert set(scores) == {"face0", "face1"}
    # the index is scale-free: identities and intensities differ, the scores do not
    np.testing.assert_allclose(scores["face0"], scores["face1"], atol=1e-4)


@pytest.mark.parametrize("faces", [[0, 2], [-1]])
def test_faces_outside_the_study_are_named(ict_model, tmp_path, faces):
    cfg = _cfg()
    scenes = sample_scenes(cfg, ict_model)
    with pytest.raises(ValueError, match=r"contact_sheet.faces: \[-?\d\] not in the study"):
        contact_sheet(ict_model, scenes, cfg, faces, tmp_path / "sheet.png")
    assert not (tmp_path / "sheet.png").exists()
