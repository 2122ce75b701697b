"""The ICT-FaceKit face model: topology, regions, mirror map and the cache round trip."""

from __future__ import annotations

import numpy as np

from facesym.facemodel.base import LANDMARK68_MIRROR, FaceModel
from facesym.facemodel.ict import ICT_HIDDEN


def test_ict_counts(ict_model: FaceModel):
    assert ict_model.n_vertices == 26719
    assert len(ict_model.expression_names) == 57
    assert ict_model.identity.shape == (10, 26719, 3)
    assert ict_model.triangles.max() < ict_model.n_vertices


def test_hidden_helper_meshes_are_not_rendered(ict_model: FaceModel):
    hidden = ict_model.region_mask(*ICT_HIDDEN)
    assert not hidden[ict_model.triangles].any()


def test_mirror_map_is_an_involution_with_small_error(ict_model: FaceModel):
    face = np.flatnonzero(ict_model.region_mask("face"))
    m = ict_model.mirror
    assert (m[face] >= 0).all()
    assert (m[m[face]] == face).mean() > 0.99
    assert ict_model.mirror_error[face].max() < 0.01  # cm
    v = ict_model.template
    assert np.allclose(v[m[face], 0], 2 * ict_model.midline_x - v[face, 0], atol=0.01)


def test_eyes_pair_across_regions(ict_model: FaceModel):
    left = np.flatnonzero(ict_model.region_mask("iris_left"))
    partners = ict_model.mirror[left]
    assert ict_model.region_mask("iris_right")[partners].all()


def test_landmarks_follow_the_mirror_table(ict_model: FaceModel):
    lm = ict_model.template[ict_model.landmarks]
    mirrored = lm[LANDMARK68_MIRROR]
    assert np.allclose(lm[:, 0], -mirrored[:, 0], atol=0.3)
    assert lm[0, 0] < 0 < lm[16, 0]  # landmark 0 is on the subject's right (−x)


def test_identity_modes_are_symmetric(ict_model: FaceModel):
    face = np.flatnonzero(ict_model.region_mask("face"))
    d = ict_model.identity[0]
    flipped = d[ict_model.mirror[face]] * np.array([-1, 1, 1])
    assert np.abs(d[face] - flipped).max() < 0.02


def test_save_load_round_trip(ict_model: FaceModel, tmp_path):
    path = tmp_path / "m.npz"
    ict_model.save(path)
    again = FaceModel.load(path)
    assert again.expression_names == ict_model.expression_names
    np.testing.assert_array_equal(again.triangles, ict_model.triangles)
    np.testing.assert_array_equal(again.expression, ict_model.expression)
    assert again.meta == ict_model.meta
