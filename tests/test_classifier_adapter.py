"""The common classifier interface: cropping, preprocessing, label mapping, real models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facesym.classifiers.base import (
    CANONICAL_LABELS,
    InputSpec,
    canonical_index,
    crop_resize,
    preprocess,
    square_crop_boxes,
)
from facesym.classifiers.zoo import load_classifier, load_zoo


def test_label_synonyms_map_onto_canonical():
    idx = canonical_index(["neutral", "happy", "sad", "angry", "fearful", "disgusted",
                           "surprised", "contempt"])
    names = [CANONICAL_LABELS[i] if i >= 0 else None for i in idx]
    assert names == ["neutral", "happiness", "sadness", "anger", "fear", "disgust", "surprise",
                     None]


def test_square_crop_box_geometry():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    sq = square_crop_boxes(boxes, 0.5)
    np.testing.assert_allclose(sq.numpy(), [[-10.0, 10.0, 50.0, 70.0]])


def test_crop_resize_takes_the_box_content():
    img = torch.zeros(1, 1, 100, 100)
    img[:, :, 40:60, 20:40] = 1.0  # a white square, 20 px wide
    out = crop_resize(img, torch.tensor([[20.0, 40.0, 40.0, 60.0]]), 8)
    assert out.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(out.numpy(), 1.0, atol=1e-6)
    half = crop_resize(img, torch.tensor([[10.0, 40.0, 30.0, 60.0]]), 8)[0, 0]
    np.testing.assert_allclose(half[:, :4].numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(half[:, 4:].numpy(), 1.0, atol=1e-6)


def test_preprocess_grey_normalisation():
    img = np.full((2, 50, 50, 3), 255, np.uint8)
    spec = InputSpec(size=16, colour="grey", mean=(127.5,), std=(127.5,), margin=0.0)
    x = preprocess(img, np.array([[5, 5, 45, 45]] * 2, np.float32), spec)
    assert x.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(x.numpy(), 1.0, atol=1e-6)
    rgb = InputSpec(size=16, colour="rgb", mean=(0, 0, 0), std=(255, 255, 255), margin=0.0)
    assert preprocess(img, np.array([[5, 5, 45, 45]] * 2, np.float32), rgb).shape == (2, 3, 16,
                                                                                       16)


def test_zoo_entries_are_complete():
    zoo = load_zoo()
    for name, entry in zoo.items():
        for key in ("format", "weights", "input", "labels", "output"):
            assert key in entry, (name, key)
        assert (canonical_index(entry["labels"]) >= 0).sum() == 7, name


@pytest.fixture(scope="module")
def happy_render(ict_model):
    """A real render of a smiling ICT face and its landmark box."""
    from facesym.appearance import appearance_masks, vertex_albedo
    from facesym.config import validate_config
    from facesym.expressions import prototype_weights
    from facesym.render import frontal_camera, project_points, render_batch

    cfg = validate_config({})
    w = prototype_weights("happiness", cfg["expressions"], ict_model)
    verts = ict_model.template + np.tensordot(w.astype(np.float32), ict_model.expression, 1)
    pivot = tuple(float(c) for c in ict_model.template[ict_model.landmarks].mean(0))
    cam = frontal_camera(75.0, 20.0, 160, target=pivot)
    v = torch.as_tensor(verts[None])
    img = render_batch(v, torch.as_tensor(ict_model.triangles),
                       torch.as_tensor(vertex_albedo(appearance_masks(ict_model), 0.3)), cam,
                       light_dir=(0.2, 0.3, 1.0), background_rgb=(0.45, 0.45, 0.45)).numpy()
    lm = project_points(v[:, ict_model.landmarks], cam).numpy()
    box = np.concatenate([lm.min(1), lm.max(1)], axis=1)
    return img, box


@pytest.mark.parametrize("name", ["mini_xception", "face_api"])
def test_real_classifier_sees_a_smile(name, happy_render, cache_dir):
    clf = load_classifier(name, load_zoo(), cache_dir=cache_dir)
    raw, probs = clf.predict(*happy_render)
    canon = clf.to_canonical(probs)
    assert canon.shape == (1, 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert CANONICAL_LABELS[int(np.nanargmax(canon[0]))] == "happiness"


@pytest.mark.parametrize(("name", "recipe"), [("mini_xception", "fer"),
                                              ("face_api", "face_api")])
def test_original_preprocessing_still_sees_a_smile(name, recipe, happy_render, cache_dir):
    from facesym.classifiers.runtime import configure

    zoo = load_zoo()
    clf = load_classifier(name, zoo, cache_dir=cache_dir)
    facesym_x = clf.prepare(*happy_render)
    configure(clf, {**zoo[name], "preprocess": "original", "original_preprocess": recipe})
    x = clf.prepare(*happy_render)
    assert tuple(x.shape) == (1, clf.spec.in_channels, clf.spec.size, clf.spec.size)
    _, probs = clf.predict(*happy_render)
    canon = clf.to_canonical(probs)
    assert CANONICAL_LABELS[int(np.nanargmax(canon[0]))] == "happiness"
    assert float((x - facesym_x).abs().max()) > 0.05  # a different pipeline ran


def test_unknown_classifier_is_named():
    with pytest.raises(KeyError, match="unknown classifier 'nope'; zoo has: "):
        load_classifier("nope", load_zoo())
