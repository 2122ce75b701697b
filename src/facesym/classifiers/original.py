"""``preprocess: original``: each classifier's input as its own package would make it.

From the same face box facesym uses (the landmark box, taken as the package's detector box),
each recipe reproduces the package's crop, grey conversion, resize and scaling, as read in
the packages' code (see the recipe docstrings):

- ``fer`` (fer 25.10.3, ``FER.detect_emotions``): OpenCV grey; the image padded by 40 px with
  the mean of its bottom two rows; the box made square by growing its short side
  (``tosquare``), widened by 10 px each side; ``cv2.resize`` bilinear to the input size;
  ``(x / 255 − 0.5) · 2``.
- ``face_classification`` (oarriaga, ``video_emotion_color_demo.py``): OpenCV grey; the box
  widened by 20 px left/right and 40 px top/bottom (``emotion_offsets``), clipped at the image;
  ``cv2.resize`` bilinear; ``(x / 255 − 0.5) · 2``.
- ``facial_emotion_recognition`` (0.3.4, NetworkV2): OpenCV grey; the box corners rounded;
  torchvision ``Resize((48, 48))`` on a PIL image (PIL bilinear, antialiased); ``ToTensor``,
  ``Normalize(0.5, 0.5)``. (Not OpenCV's resize, as once assumed: the package uses PIL.)
- ``facex`` (1.1.0, ``EmotionClassifier.predict``): OpenCV grey; ``img[y:y+h, x:x+w]``;
  ``skimage.transform.resize(face, (200, 200, 3))`` (float in [0, 1], antialiased).
- ``face_api`` (@vladmandic/face-api 1.7.15, ``extractFaceTensors`` + ``toBatchTensor``): the
  RGB box clipped at the image and floored, zero-padded to a square (centred, the odd pixel
  after), ``tf.image.resizeBilinear`` (legacy, no half-pixel centres) to 112, float;
  ``(x − mean_rgb) / 255``.
"""

from __future__ import annotations

import numpy as np
import torch

from facesym.classifiers.resize import (
    cv2_resize_linear,
    pil_resize_bilinear,
    skimage_resize,
    tf_resize_bilinear_legacy,
)

ORIGINALS = ("fer", "face_classification", "facial_emotion_recognition", "facex", "face_api")
FER_PADDING = 40
FER_OFFSETS = (10, 10)
FACE_CLASSIFICATION_OFFSETS = (20, 40)


def check_original(recipe: str | None, name: str = "classifier") -> str:
    """``recipe`` if it names a known original pipeline, else ValueError listing them.

    >>> check_original("fer")
    'fer'
    >>> check_original(None, "mini")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: mini: preprocess: original needs original_preprocess, one of fer, ...
    """
    if recipe not in ORIGINALS:
        raise ValueError(f"{name}: preprocess: original needs original_preprocess, one of "
                         f"{', '.join(ORIGINALS)}" + (f"; got {recipe!r}" if recipe else ""))
    return recipe


def grey_cv2(rgb: np.ndarray) -> np.ndarray:
    """``cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)`` for uint8 (15-bit fixed point), bit-exact.

    >>> grey_cv2(np.array([[[255, 0, 0], [10, 200, 30]]], dtype=np.uint8))
    array([[ 76, 124]], dtype=uint8)
    """
    x = rgb.astype(np.int64)
    g = (x[..., 0] * 9798 + x[..., 1] * 19235 + x[..., 2] * 3735 + (1 << 14)) >> 15
    return g.astype(np.uint8)


def _int_box(box: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) in whole pixels, as a detector returns it, from (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return round(x0), round(y0), round(x1 - x0), round(y1 - y0)


def _to_square(x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
    """fer's ``tosquare``: grow the short side, centred (floor division)."""
    if h > w:
        diff = h - w
        x, w = x - diff // 2, w + diff
    elif w > h:
        diff = w - h
        y, h = y - diff // 2, h + diff
    return x, y, w, h


def _fer(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    grey = grey_cv2(img)
    fill = np.rint(grey[-2:].mean())  # cv2.mean of the bottom rows, saturate_cast to uint8
    padded = np.pad(grey, FER_PADDING, constant_values=int(fill))
    x, y, w, h = _to_square(*_int_box(box))
    dx, dy = FER_OFFSETS
    x1, x2 = max(0, x - dx + FER_PADDING), x + w + dx + FER_PADDING
    y1, y2 = max(0, y - dy + FER_PADDING), y + h + dy + FER_PADDING
    face = cv2_resize_linear(np.ascontiguousarray(padded[y1:y2, x1:x2]), size, size)
    return ((face.astype(np.float32) / np.float32(255.0) - np.float32(0.5))
            * np.float32(2.0))[None]


def _face_classification(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    grey = grey_cv2(img)
    x, y, w, h = _int_box(box)
    dx, dy = FACE_CLASSIFICATION_OFFSETS
    # the demo slices with the raw offsets; negative starts would wrap in numpy: clip at 0
    face = grey[max(0, y - dy):y + h + dy, max(0, x - dx):x + w + dx]
    face = cv2_resize_linear(np.ascontiguousarray(face), size, size)
    return ((face.astype(np.float32) / np.float32(255.0) - np.float32(0.5))
            * np.float32(2.0))[None]


def _facial_emotion_recognition(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    grey = grey_cv2(img)
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    face = pil_resize_bilinear(np.ascontiguousarray(grey[max(0, y1):y2, max(0, x1):x2]),
                               size, size)
    t = torch.from_numpy(face).float().div(255)  # ToTensor
    return ((t - 0.5) / 0.5).numpy()[None]  # Normalize(mean=[0.5], std=[0.5])


def _facex(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    grey = grey_cv2(img)
    x, y, w, h = _int_box(box)
    face = skimage_resize(grey[max(0, y):y + h, max(0, x):x + w], size, size)
    return np.repeat(face.astype(np.float32)[None], 3, axis=0)  # resize to (200, 200, 3)


def _face_api(img: np.ndarray, box: np.ndarray, size: int,
              mean: tuple[float, ...]) -> np.ndarray:
    ih, iw = img.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    cx, cy = max(x0, 0.0), max(y0, 0.0)  # Box.clipAtImageBorders, then floor()
    w = int(np.floor(min(x1 - cx, iw - cx)))
    h = int(np.floor(min(y1 - cy, ih - cy)))
    x, y = int(np.floor(cx)), int(np.floor(cy))
    face = img[y:y + h, x:x + w].astype(np.float32)
    diff = abs(h - w)
    if diff:  # padToSquare(isCenterImage=true): round(diff / 2) after, the rest before
        after = int(np.floor(diff * 0.5 + 0.5))
        before = diff - after
        pads = ((before, after), (0, 0)) if h < w else ((0, 0), (before, after))
        face = np.pad(face, (*pads, (0, 0)))
    if face.shape[0] != size or face.shape[1] != size:
        face = tf_resize_bilinear_legacy(face, size, size)
    out = (face - np.asarray(mean, np.float32)) / np.float32(255.0)
    return out.transpose(2, 0, 1)


def original_preprocess(images: np.ndarray, boxes: np.ndarray, recipe: str, size: int,
                        mean: tuple[float, ...] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """uint8 RGB images (B, H, W, 3) + face boxes (B, 4) → network input (B, C, size, size)
    made by the original package's pipeline ``recipe`` (``mean``: face_api's mean RGB).

    >>> images = np.full((2, 100, 100, 3), 255, dtype=np.uint8)
    >>> boxes = np.array([[30.0, 25.0, 70.0, 75.0]] * 2)
    >>> x = original_preprocess(images, boxes, "fer", 64)
    >>> tuple(x.shape), float(x.min()), float(x.max())
    ((2, 1, 64, 64), 1.0, 1.0)
    >>> tuple(original_preprocess(images, boxes, "facex", 200).shape)
    (2, 3, 200, 200)
    """
    check_original(recipe)
    images = np.asarray(images)
    boxes = np.asarray(boxes, dtype=np.float64)
    out = []
    for img, box in zip(images, boxes, strict=True):
        if recipe == "face_api":
            out.append(_face_api(img, box, size, mean))
        else:
            fn = {"fer": _fer, "face_classification": _face_classification,
                  "facial_emotion_recognition": _facial_emotion_recognition,
                  "facex": _facex}[recipe]
            out.append(fn(img, box, size))
    return torch.from_numpy(np.ascontiguousarray(np.stack(out), dtype=np.float32))
