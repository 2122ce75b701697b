"""Procedural appearance of the ICT head: region colours and skin tone."""

from __future__ import annotations

import numpy as np

from facesym.appearance import SKIN_DARK, SKIN_LIGHT, appearance_masks, vertex_albedo


def test_region_classes_land_where_expected(ict_model):
    w = appearance_masks(ict_model).weights
    lm = ict_model.template[ict_model.landmarks]
    lips = np.flatnonzero(w["lips"] > 0.5)
    assert lips.size > 50
    # lip vertices lie between the mouth corners and around the mouth's height
    assert (np.abs(ict_model.template[lips, 0]) <= np.abs(lm[[48, 54], 0]).max() + 0.3).all()
    assert w["teeth"][ict_model.region_mask("teeth")].all()
    for side in ("left", "right"):
        eye = ict_model.region_mask(f"sclera_{side}", f"iris_{side}")
        assert w["pupil"][eye].sum() > 0 and w["iris"][eye].sum() > 0
        assert w["sclera"][eye].sum() > w["iris"][eye].sum()
    assert w["brows"].max() == 1.0 and w["hair"].max() == 1.0


def test_skin_tone_blends_light_to_dark(ict_model):
    masks = appearance_masks(ict_model)
    albedo = vertex_albedo(masks, np.array([0.0, 1.0]))
    assert albedo.shape == (2, ict_model.n_vertices, 3)
    plain = np.flatnonzero(sum(masks.weights.values()) == 0)  # pure skin vertices
    np.testing.assert_allclose(albedo[0, plain[0]], SKIN_LIGHT, atol=1e-6)
    np.testing.assert_allclose(albedo[1, plain[0]], SKIN_DARK, atol=1e-6)
    teeth = np.flatnonzero(ict_model.region_mask("teeth"))[0]
    np.testing.assert_allclose(albedo[0, teeth], albedo[1, teeth])  # teeth ignore skin tone
    assert ((albedo >= 0) & (albedo <= 1)).all()
