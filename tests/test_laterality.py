"""Laterality: the image-flip control, its attribution rule and the stimulus-side table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from facesym.classifiers.base import CANONICAL_LABELS, Classifier, InputSpec, preprocess
from facesym.laterality import (
    FLIP,
    NOT_RUN,
    PROB_FLIPPED,
    attribute,
    classify_with_flip,
    flip_control_table,
    flip_images,
    laterality_report,
    stimulus_table,
    study_laterality,
)

EMOTIONS = ["happiness", "anger"]
SIZE = 128  # a power of two: pixel coordinates / width are exact in float32


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    """Smooth random RGB images (n, SIZE, SIZE, 3) with structure at several scales."""
    coarse = rng.uniform(0, 255, size=(n, 3, 16, 16)).astype(np.float32)
    up = torch.nn.functional.interpolate(torch.as_tensor(coarse), size=SIZE, mode="bilinear")
    noise = rng.normal(0, 20, size=(n, 3, SIZE, SIZE))
    return np.clip(up.numpy() + noise, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def test_flipped_crop_is_the_mirrored_crop_exactly(rng):
    images = _images(rng, 3)
    boxes = np.array([[20.0, 30.0, 84.0, 94.0], [10.0, 12.0, 58.0, 60.0],
                      [41.0, 9.0, 105.0, 73.0]])  # integer-aligned, 64 and 48 px wide
    spec = InputSpec(size=32, colour="rgb", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                     margin=0.25)
    flipped, fboxes = flip_images(images, boxes)
    assert np.array_equal(flipped[:, :, ::-1], images)
    original = preprocess(images, boxes, spec)
    mirrored = preprocess(flipped, fboxes, spec)
    assert torch.equal(mirrored, original.flip(-1))
    # the unmapped box on the flipped image is a different crop: the check can fail
    assert not torch.equal(preprocess(flipped, boxes, spec), original.flip(-1))


def test_flipped_crop_with_the_zoo_margin_agrees_to_a_grey_level(rng):
    images = _images(rng, 4)
    boxes = rng.uniform(20, 40, size=(4, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(50, 70, size=(4, 2))], axis=1)
    spec = InputSpec(size=48, colour="grey", mean=(0.0,), std=(1.0,), margin=0.2)
    original = preprocess(images, boxes, spec)
    mirrored = preprocess(*flip_images(images, boxes), spec)
    diff = (mirrored - original.flip(-1)).abs()
    assert diff.max() <= 1.0 and (diff == 0).float().mean() > 0.99  # resampling round-off only


class _TinyNet(torch.nn.Module):
    """A seeded conv net; ``invariant`` averages its outputs on the input and its mirror."""

    def __init__(self, invariant: bool) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=2)
        self.head = torch.nn.Linear(8 * 14 * 14, len(CANONICAL_LABELS))
        self.invariant = invariant

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.invariant:
            return (self._logits(x) + self._logits(x.flip(-1))) / 2
        return self._logits(x)


def _classifier(invariant: bool) -> Classifier:
    spec = InputSpec(size=32, colour="rgb", mean=(127.5,) * 3, std=(127.5,) * 3, margin=0.25)
    return Classifier("tiny", _TinyNet(invariant), spec, labels=CANONICAL_LABELS,
                      output="softmax", channels_last=False)


def _mirror_stimulus(rng: np.random.Generator, n_faces: int):
    """Renders [face, side, strength] whose right-side images are the exact mirrors of the
    left-side ones (a perfectly symmetric stimulus), with integer-aligned mirrored boxes."""
    left = _images(rng, n_faces * 2).reshape(n_faces, 2, SIZE, SIZE, 3)
    left[:, 0] = left[:, 0] // 2 + left[:, 0, :, ::-1] // 2  # a = 0: a symmetric face
    box = np.array([32.0, 32.0, 96.0, 96.0])
    right, _ = flip_images(left, np.broadcast_to(box, (n_faces, 2, 4)))
    images = np.stack([left, right], axis=1)  # (face, side, strength, H, W, 3)
    boxes = np.broadcast_to(box, (*images.shape[:3], 4)).copy()
    coords = {"face": np.arange(n_faces), "side": ["left", "right"], "strength": [0.0, 1.0]}
    emotion = np.array([EMOTIONS[i % 2] for i in range(n_faces)])
    return images, boxes, emotion, coords


def test_flip_control_is_exact_on_a_flip_invariant_classifier(rng):
    images, boxes, emotion, coords = _mirror_stimulus(rng, 6)
    cube = classify_with_flip(_classifier(invariant=True), images, boxes, emotion, coords)
    prob = cube["prob"]
    assert np.array_equal(prob.sel({FLIP: True}).values, prob.sel({FLIP: False}).values)
    table = flip_control_table({"tiny": cube})
    for col in ("left_vs_right", "leftflip_vs_right", "classifier_part", "abs_flip_gap_a0"):
        assert (table[col] == 0).all(), col


def test_flip_control_finds_a_classifier_that_is_not_flip_invariant(rng):
    images, boxes, emotion, coords = _mirror_stimulus(rng, 6)
    cube = classify_with_flip(_classifier(invariant=False), images, boxes, emotion, coords)
    table = flip_control_table({"tiny": cube})
    assert (table["leftflip_vs_right"] == 0).all()  # the stimulus is exactly mirrored
    np.testing.assert_array_equal(table["classifier_part"], table["left_vs_right"])
    assert (table["left_vs_right"].abs() > 1e-4).all()
    # the a = 0 images are mirror-symmetric themselves: flipping them changes nothing
    assert (table["abs_flip_gap_a0"] == 0).all()


def _stage_layout(cube: xr.Dataset) -> xr.Dataset:
    """A ``flip``-dimension cube as the classify stage stores it: prob and prob_flipped."""
    return xr.Dataset({"prob": cube["prob"].sel({FLIP: False}, drop=True),
                       PROB_FLIPPED: cube["prob"].sel({FLIP: True}, drop=True),
                       "emotion": cube["emotion"]})


def test_study_laterality_on_stage_cubes(rng):
    images, boxes, emotion, coords = _mirror_stimulus(rng, 8)
    cubes = {name: _stage_layout(classify_with_flip(_classifier(invariant), images, boxes,
                                                    emotion, coords))
             for name, invariant in (("invariant", True), ("plain", False))}
    cubes["unflipped"] = cubes["plain"].drop_vars(PROB_FLIPPED)
    report = study_laterality(cubes, excluded={"plain": {"anger"}}, margin=1e-9, n_boot=200)
    rows = report.set_index("classifier")
    # flip-invariant classifier on a mirrored stimulus: every part exactly 0, nothing lateral
    inv = rows.loc["invariant"]
    assert inv["n"] == 8 and inv["emotions"] == "happiness anger"
    for key in ("lateral", "classifier_part", "stimulus_part", "abs_flip_gap_a0"):
        assert inv[key] == 0, key
    assert inv["attribution"] == "none"
    # a plain conv net: the stimulus part is exactly 0, the laterality is all classifier
    plain = rows.loc["plain"]
    assert plain["n"] == 4 and plain["emotions"] == "happiness"  # anger left out (floor)
    assert plain["stimulus_part"] == 0 and plain["lateral"] != 0
    assert plain["classifier_part"] == pytest.approx(plain["lateral"], abs=1e-12)
    excludes_zero = plain["lateral_low"] > 0 or plain["lateral_high"] < 0
    assert plain["attribution"] == ("classifier" if excludes_zero else "undecided")
    off = rows.loc["unflipped"]
    assert not off["flip_control"] and off["attribution"] == NOT_RUN
    assert np.isnan(off["lateral"])


def _cube(p_left, p_left_flip, p_right, p0=0.8, emotions=None) -> xr.Dataset:
    """A classify cube with given intended-class probabilities per face at a = 1."""
    n = len(p_left)
    # as the cubes hold them: numpy StringDType (not castable to fixed-width str)
    emotions = np.array(emotions if emotions is not None else
                        [EMOTIONS[i % 2] for i in range(n)], dtype=np.dtypes.StringDType())
    p = np.empty((n, 2, 2, 2))  # face, side, strength, flip
    p[:, :, 0, :] = p0
    p[:, 0, 1, 0], p[:, 0, 1, 1] = p_left, p_left_flip
    p[:, 1, 1, 0] = p[:, 1, 1, 1] = p_right
    prob = np.repeat(((1 - p) / 6)[..., None], len(CANONICAL_LABELS), axis=-1)
    for i, e in enumerate(emotions):
        prob[i, ..., CANONICAL_LABELS.index(e)] = p[i]
    return xr.Dataset(
        {"prob": (("face", "side", "strength", FLIP, "label"), prob),
         "emotion": ("face", emotions)},
        coords={"face": np.arange(n), "side": ["left", "right"], "strength": [0.0, 1.0],
                FLIP: [False, True], "label": list(CANONICAL_LABELS)})


def test_laterality_report_attributes_by_the_documented_rule(rng):
    n = 40
    noise = rng.normal(0, 0.01, size=n)
    right = 0.5 + noise
    # classifier: mirroring the left image gives the right image's score
    by_classifier = _cube(right + 0.1, right, right)
    # stimulus from the face model: flipped left == left, and the mirrored template removes it
    by_model = _cube(right + 0.1, right + 0.1, right)
    mirrored_flat = _cube(right, right, right)
    # stimulus not from the face model: it stays with the mirrored template
    by_other = _cube(right + 0.1, right + 0.1, right)
    none = _cube(right + noise / 10, right + noise / 10, right)
    report = laterality_report(
        {"c": by_classifier, "m": by_model, "o": by_other, "z": none},
        mirrored={"m": mirrored_flat, "o": by_other, "c": by_classifier}, n_boot=500)
    got = report.set_index("classifier")[["attribution", "stimulus_source"]]
    assert tuple(got.loc["c"]) == ("classifier", "n/a")
    assert tuple(got.loc["m"]) == ("stimulus", "face_model")
    assert tuple(got.loc["o"]) == ("stimulus", "other")
    assert tuple(got.loc["z"]) == ("none", "n/a")
    row = report.set_index("classifier").loc["m"]
    assert row["lateral"] == pytest.approx(0.1)
    assert row["classifier_part"] + row["stimulus_part"] == pytest.approx(row["lateral"])
    assert row["template_part"] == pytest.approx(0.1)


def test_attribute_undecided_and_both():
    ci = {"lateral": (-0.05, 0.1), "classifier_part": (0, 0.1), "stimulus_part": (0, 0.1)}
    est = {"lateral": 0.03, "classifier_part": 0.01, "stimulus_part": 0.02}
    assert attribute(est, ci) == ("undecided", "n/a")
    ci = {"lateral": (0.05, 0.15), "classifier_part": (0.02, 0.08),
          "stimulus_part": (0.02, 0.08)}
    est = {"lateral": 0.1, "classifier_part": 0.05, "stimulus_part": 0.05}
    assert attribute(est, ci) == ("both", "unknown")


def test_stimulus_table_left_and_right_are_mirrors_only_with_the_mirrored_template(
        ict_model, default_config):
    cfg = default_config
    cfg["intervention"]["strengths"] = [0.0, 1.0]
    models = {"normal": ict_model, "mirrored": ict_model.with_mirrored_shapes("left")}
    table = stimulus_table(models, cfg["expressions"], ["happiness", "surprise"], cfg)
    assert len(table) == 2 * 2 * 2
    at1 = table[table.strength == 1.0].set_index(["template", "emotion"])
    mirrored, normal = at1.loc["mirrored"], at1.loc["normal"]
    assert (mirrored["mirror_gap_max"] < 1e-5).all()
    assert (normal["mirror_gap_max"] > 1e-3).all()
    for m in ("asym_3d", "asym_2d", "expression_norm"):
        assert (mirrored[f"{m}_diff"].abs() < 1e-5).all(), m
    assert (mirrored["asym_3d_left"] > 0.1).all()
    at0 = table[table.strength == 0.0]
    assert (at0["mirror_gap_max"][at0.template == "mirrored"] < 1e-5).all()
