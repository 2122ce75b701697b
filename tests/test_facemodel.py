"""The ICT-FaceKit face model: topology, regions, mirror map and the cache round trip."""

from __future__ import annotations

import numpy as np
import pytest

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


# --- the mirrored template (face_model.mirrored_shapes) ---------------------------------------

SPARED = ["jaw*", "eyeLook*", "PupilDilate*"]
PROTOTYPE = {"mouthSmile": 0.9, "cheekSquint": 0.6, "browInnerUp": 0.5, "eyeBlink": 0.4,
             "mouthShrugUpper": 0.3, "jawOpen": 0.3}  # symmetric: both sides of each pair


def _symmetric_weights(model: FaceModel) -> np.ndarray:
    w = np.zeros(len(model.expression_names))
    for base, value in PROTOTYPE.items():
        for name in (base, base + "_L", base + "_R"):
            if name in model.expression_names:
                w[model.shape_index(name)] = value
    return w


def _left_right_meshes(model: FaceModel, strength: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    from facesym.interventions import (
        displacement_parts,
        intervene,
        intervention_masks,
        shape_groups,
    )

    parts = displacement_parts(model, _symmetric_weights(model), shape_groups(model, SPARED))
    masks = intervention_masks(model, 0.8)
    return (model.template + intervene(parts, "left", strength, masks),
            model.template + intervene(parts, "right", strength, masks))


def _mirror_error(model: FaceModel, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """|left(v) − R right(m(v))| per vertex, R the reflection about the midline."""
    reflected = right[model.mirror].copy()
    reflected[:, 0] = 2 * model.midline_x - reflected[:, 0]
    return np.abs(left - reflected).max(axis=1)


@pytest.mark.parametrize("source", ["left", "right"])
def test_mirrored_template_makes_left_and_right_exact_mirrors(ict_model: FaceModel, source):
    from facesym.symmetry import asymmetry_3d

    reciprocal = ict_model.mirror[ict_model.mirror] == np.arange(ict_model.n_vertices)
    assert reciprocal[ict_model.region_mask("face")].all()
    before = _mirror_error(ict_model, *_left_right_meshes(ict_model))
    assert before[reciprocal].max() > 1e-3  # ICT's own _R shapes are not exact mirrors
    mirrored = ict_model.with_mirrored_shapes(source)
    for a in (0.5, 1.0):
        left, right = _left_right_meshes(mirrored, a)
        assert _mirror_error(mirrored, left, right)[reciprocal].max() < 1e-5
        asym = asymmetry_3d(np.stack([left, right]) - mirrored.template, mirrored)
        assert asym[0] == pytest.approx(asym[1], abs=1e-7) and asym[0] > 0.1
    kept = "mouthSmile_L" if source == "left" else "mouthSmile_R"
    np.testing.assert_array_equal(mirrored.expression[mirrored.shape_index(kept)],
                                  ict_model.expression[ict_model.shape_index(kept)])
    assert mirrored.meta["mirrored_shapes"]["source"] == source
    np.testing.assert_array_equal(mirrored.identity, ict_model.identity)  # left as they are


def test_mirror_twins_by_name():
    from facesym.facemodel.mirror import mirror_twin

    assert mirror_twin("eyeLookIn_L") == ("left", "eyeLookIn_R")
    assert mirror_twin("mouthLeft") == ("left", "mouthRight")
    assert mirror_twin("mouthFunnel") is None


def test_identity_and_shape_pair_symmetry_reports(ict_model: FaceModel):
    from facesym.facemodel.mirror import identity_symmetry, shape_pair_asymmetry

    report = identity_symmetry(ict_model)
    assert len(report["ratio"]) == 10
    # ICT's PCA basis: mode 0 symmetric, mode 9 purely antisymmetric (measured)
    assert report["ratio"][0] < 0.01 and report["ratio"][9] > 100
    pairs = shape_pair_asymmetry(ict_model)
    assert 0 < pairs["mouthSmile"] < 0.05
    assert max(shape_pair_asymmetry(ict_model.with_mirrored_shapes("left")).values()) < 1e-6


def test_build_face_model_reads_mirrored_shapes(ict_folder, default_config):
    from facesym.facemodel import build_face_model

    assert default_config["face_model"]["mirrored_shapes"] == "none"
    cfg = {**default_config["face_model"], "identity_modes": 0, "mirrored_shapes": "from_right"}
    model = build_face_model(cfg, ict_folder)
    assert model.meta["mirrored_shapes"]["source"] == "right"
    assert "mouthSmile_L" in model.meta["mirrored_shapes"]["replaced"]
    with pytest.raises(ValueError, match="mirrored_shapes"):
        build_face_model({**cfg, "mirrored_shapes": "both"}, ict_folder)
