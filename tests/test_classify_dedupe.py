"""The classify stage scores each distinct image of a face once, and the flip control's
``laterality`` mode scores mirrored just the images the laterality reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from facesym.classifiers.base import CANONICAL_LABELS, Classifier, InputSpec
from facesym.laterality import PROB_FLIPPED, flip_images, study_laterality
from facesym.stages.classify import classify_renders, flip_wanted

SIZE = 64
SIDES = ["left", "right", "control"]
STRENGTHS = [0.0, 0.5, 1.0]


class _TinyNet(torch.nn.Module):
    """A seeded conv net that is not flip-invariant."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 4, 5, stride=2)
        self.head = torch.nn.Linear(4 * 14 * 14, len(CANONICAL_LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).flatten(1))


class _Counting(Classifier):
    """The real classifier adapter, counting the images it is asked to score."""

    seen = 0

    def predict(self, images, boxes, batch_size=64, device="cpu"):
        self.seen += len(images)
        return super().predict(images, boxes, batch_size=batch_size, device=device)


def _classifier() -> _Counting:
    spec = InputSpec(size=32, colour="rgb", mean=(127.5,) * 3, std=(127.5,) * 3, margin=0.2)
    return _Counting("tiny", _TinyNet(), spec, labels=CANONICAL_LABELS, output="softmax",
                     channels_last=False)


def _renders(rng: np.random.Generator, n_faces: int = 5) -> xr.Dataset:
    """A render cube like the render stage's: every side's a = 0 image is the same image."""
    shape = (n_faces, len(SIDES), len(STRENGTHS), SIZE, SIZE, 3)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    images[:, 1:, 0] = images[:, :1, 0]
    boxes = np.broadcast_to(np.array([8.0, 6.0, 56.0, 58.0]), (*shape[:3], 4)).copy()
    boxes[:, :, 1:, 0] += rng.integers(0, 4, size=(n_faces, len(SIDES), len(STRENGTHS) - 1))
    dims = ("face", "side", "strength")
    return xr.Dataset(
        {"image": ((*dims, "y", "x", "channel"), images), "face_box": ((*dims, "box"), boxes),
         "emotion": ("face", np.array(["happiness", "anger"] * n_faces)[:n_faces])},
        coords={"face": np.arange(10, 10 + n_faces), "side": SIDES, "strength": STRENGTHS})


def _one_by_one(clf: Classifier, renders: xr.Dataset, flipped: bool) -> np.ndarray:
    """Canonical probabilities of every image scored on its own (no de-duplication)."""
    images = renders["image"].values.reshape(-1, SIZE, SIZE, 3)
    boxes = renders["face_box"].values.reshape(-1, 4)
    if flipped:
        images, boxes = flip_images(images, boxes)
    _, p = clf.predict(images, boxes, batch_size=1)
    return clf.to_canonical(p).reshape(renders["image"].shape[:3] + (len(CANONICAL_LABELS),))


@pytest.fixture
def renders(rng) -> xr.Dataset:
    return _renders(rng)


def test_each_distinct_image_is_scored_once_with_its_own_scores(renders):
    clf = _classifier()
    cube = classify_renders(clf, renders, batch_size=8, progress=False, flip="none")
    nf = renders.sizes["face"]
    # 9 images per face, of which the three a = 0 ones are one image: 7 distinct
    assert clf.seen == nf * 7
    expected = _one_by_one(_classifier(), renders, flipped=False)
    np.testing.assert_allclose(cube["prob"].values, expected, atol=1e-6)
    p0 = cube["prob"].sel(strength=0.0).values
    assert (p0 == p0[:, :1]).all()  # the same pixels get the same numbers, exactly
    assert PROB_FLIPPED not in cube


def test_flip_all_scores_every_image_mirrored(renders):
    clf = _classifier()
    cube = classify_renders(clf, renders, batch_size=8, progress=False, flip=True)
    assert clf.seen == renders.sizes["face"] * 7 * 2
    expected = _one_by_one(_classifier(), renders, flipped=True)
    np.testing.assert_allclose(cube[PROB_FLIPPED].values, expected, atol=1e-6)
    assert not np.allclose(cube[PROB_FLIPPED].values, cube["prob"].values, atol=1e-3)


def test_flip_laterality_scores_what_the_laterality_reads_and_gives_its_numbers(renders):
    full = classify_renders(_classifier(), renders, batch_size=8, progress=False, flip="all")
    clf = _classifier()
    lean = classify_renders(clf, renders, batch_size=8, progress=False, flip="laterality")
    # per face: 7 distinct images, then mirrored: the shared a = 0 image, left and right at 1
    assert clf.seen == renders.sizes["face"] * (7 + 3)
    want = flip_wanted(SIDES, STRENGTHS, "laterality")
    scored = ~np.isnan(lean[PROB_FLIPPED].values).any(axis=-1)
    assert (scored == want[None]).all()
    np.testing.assert_allclose(lean[PROB_FLIPPED].values[:, want],
                               full[PROB_FLIPPED].values[:, want], atol=1e-6)
    np.testing.assert_allclose(lean["prob"].values, full["prob"].values, atol=1e-6)
    a = study_laterality({"tiny": full}, n_boot=200)
    b = study_laterality({"tiny": lean}, n_boot=200)
    cols = ["lateral", "classifier_part", "stimulus_part", "abs_flip_gap_a0"]
    np.testing.assert_allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), atol=1e-6)
    assert (a["attribution"] == b["attribution"]).all()


def test_an_unknown_flip_mode_names_the_key_and_the_allowed_values(renders):
    with pytest.raises(ValueError, match=r"classify\.flip.*laterality, all"):
        classify_renders(_classifier(), renders, progress=False, flip="half")
