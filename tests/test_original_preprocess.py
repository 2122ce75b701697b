"""preprocess: original: the packages' own resizes against the real libraries, and each
recipe's crop geometry on images whose content is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from facesym.classifiers.original import ORIGINALS, grey_cv2, original_preprocess
from facesym.classifiers.resize import (
    cv2_resize_linear,
    pil_resize_bilinear,
    skimage_resize,
    tf_resize_bilinear_legacy,
)
from facesym.classifiers.robustness import preprocessing_agreement

REFERENCE = Path(__file__).parent / "fixtures" / "resize_reference.npz"


@pytest.fixture(scope="module")
def ref():
    return np.load(REFERENCE)


def test_cv2_resize_matches_opencv(ref) -> None:
    i = 0
    while f"src_{i}" in ref:
        src, want = ref[f"src_{i}"], ref[f"cv2_{i}"]
        got = cv2_resize_linear(src, want.shape[1], want.shape[0])
        diff = np.abs(got.astype(int) - want)
        if want.shape[0] <= src.shape[0] and want.shape[1] <= src.shape[1]:
            assert diff.max() == 0, (i, src.shape, want.shape)  # downscale: bit-exact
        else:  # upscale: a few edge-row pixels one grey level off
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (i, src.shape)
        i += 1
    assert i >= 6


def test_grey_matches_opencv(ref) -> None:
    np.testing.assert_array_equal(grey_cv2(ref["rgb"]), ref["grey_cv2"])


def test_skimage_resize_matches_skimage(ref) -> None:
    j = 0
    while f"sk_src_{j}" in ref:
        want = ref[f"sk_{j}"]
        got = skimage_resize(ref[f"sk_src_{j}"], *want.shape)
        np.testing.assert_allclose(got, want, atol=1e-6)
        j += 1
    assert j >= 2


@pytest.mark.parametrize(("shape", "size"), [((131, 117), (48, 48)), ((30, 41), (48, 48)),
                                             ((200, 200), (48, 48)), ((48, 48), (48, 48))])
def test_pil_resize_matches_pillow(shape, size) -> None:
    image_mod = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(shape[0])
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    want = np.asarray(image_mod.fromarray(img).resize(size, image_mod.BILINEAR))
    np.testing.assert_array_equal(pil_resize_bilinear(img, *size), want)


def test_tf_legacy_resize_has_no_half_pixel_offset() -> None:
    # a horizontal ramp 0..7 halved: legacy sampling takes source columns 0, 2, 4, 6 exactly
    ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    np.testing.assert_array_equal(tf_resize_bilinear_legacy(ramp, 4, 4)[0], [0, 2, 4, 6])
    # upscaling by 2 interpolates between neighbours and repeats the last column
    up = tf_resize_bilinear_legacy(ramp[:2, :4], 2, 8)[0]
    np.testing.assert_allclose(up, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])


def _box_image(x0: int, y0: int, x1: int, y1: int, size: int = 160) -> np.ndarray:
    img = np.zeros((1, size, size, 3), np.uint8)
    img[0, y0:y1, x0:x1] = 255
    return img


def test_face_classification_crop_uses_its_offsets() -> None:
    # white exactly over box + (20, 40) offsets: the whole crop is white
    img = _box_image(40, 30, 120, 150)
    x = original_preprocess(img, np.array([[60.0, 70.0, 100.0, 110.0]]), "face_classification",
                            48)
    assert float(x.min()) == 1.0
    # one more pixel of black around it shows up at the edges
    x = original_preprocess(img, np.array([[59.0, 69.0, 101.0, 111.0]]), "face_classification",
                            48)
    assert float(x.min()) < 1.0


def test_fer_crop_is_square_and_padded() -> None:
    # box 40 wide, 60 tall -> tosquare 60x60 (x shifted by 10), +10 px each side = 80x80
    img = _box_image(30, 40, 110, 120)
    x = original_preprocess(img, np.array([[50.0, 50.0, 90.0, 110.0]]), "fer", 64)
    assert float(x.min()) == 1.0
    # near the top-left corner the crop reaches into fer's 40 px padding (bottom-row mean = 0)
    x = original_preprocess(_box_image(0, 0, 160, 160)[:, :, :, :], np.array(
        [[0.0, 0.0, 40.0, 40.0]]), "fer", 64)
    assert float(x[0, 0, 0, 0]) == 1.0  # the crop starts at max(0, ...) of the padded image


def test_face_api_pads_to_square_centred() -> None:
    # a 40 wide x 20 tall white box: padded with 10 rows of zeros above and below
    img = _box_image(10, 10, 50, 30, size=64)
    x = original_preprocess(img, np.array([[10.0, 10.0, 50.0, 30.0]]), "face_api", 40,
                            mean=(0.0, 0.0, 0.0))
    assert tuple(x.shape) == (1, 3, 40, 40)
    np.testing.assert_array_equal(x[0, :, 10:30].numpy(), 1.0)
    np.testing.assert_array_equal(x[0, :, :10].numpy(), 0.0)
    np.testing.assert_array_equal(x[0, :, 30:].numpy(), 0.0)


def test_facex_and_networkv2_crop_the_box() -> None:
    img = _box_image(40, 40, 120, 120)
    box = np.array([[40.0, 40.0, 120.0, 120.0]])
    fx = original_preprocess(img, box, "facex", 200)
    assert tuple(fx.shape) == (1, 3, 200, 200) and float(fx.min()) == 1.0
    nv = original_preprocess(img, box, "facial_emotion_recognition", 48)
    assert tuple(nv.shape) == (1, 1, 48, 48) and float(nv.min()) == 1.0
    shifted = original_preprocess(img, box + 8, "facial_emotion_recognition", 48)
    assert float(shifted.min()) == -1.0


def test_every_recipe_is_deterministic_and_in_range() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 120, 120, 3), dtype=np.uint8)
    boxes = np.array([[20.3, 25.7, 90.2, 101.9], [-5.0, -3.0, 60.0, 70.0],
                      [50.0, 40.0, 130.0, 125.0]])
    for recipe in ORIGINALS:
        a = original_preprocess(images, boxes, recipe, 48, mean=(122.0, 117.0, 104.0))
        b = original_preprocess(images, boxes, recipe, 48, mean=(122.0, 117.0, 104.0))
        assert np.array_equal(a.numpy(), b.numpy()) and np.isfinite(a.numpy()).all(), recipe
        assert float(a.abs().max()) <= 1.0 + 1e-6, recipe


def test_agreement_uses_the_intended_class() -> None:
    def cube(p):
        return xr.Dataset(
            {"prob_native": (("face", "side", "native_label"), np.array(p)),
             "emotion": ("face", np.array(["happiness", "sadness"], dtype=object))},
            coords={"face": [0, 1], "side": ["left"], "native_label": ["sad", "happy"],
                    "label": ["sadness", "happiness"]})

    a = cube([[[0.1, 0.9]], [[0.6, 0.4]]])
    b = cube([[[0.3, 0.7]], [[0.45, 0.55]]])
    row = preprocessing_agreement({"toy": (a, b)}).iloc[0]
    assert row["top1_agreement"] == 0.5
    assert row["max_abs_dp_intended"] == pytest.approx(0.2)  # happy column of face 0
    assert row["mean_abs_dp_intended"] == pytest.approx((0.2 + 0.15) / 2)
    with pytest.raises(ValueError, match="differ along 'face'"):
        preprocessing_agreement({"toy": (a, b.assign_coords(face=[5, 6]))})
