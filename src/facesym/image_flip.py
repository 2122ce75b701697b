"""Images mirrored left-right with their face boxes, and the names the flip control stores
them under: what the classify stage needs of the laterality, without its statistics."""

from __future__ import annotations

import numpy as np

FLIP = "flip"  # dimension of a classify cube scored on original (False) and mirrored (True) images
#: the classify stage stores the scores of the mirrored images as ``<variable>_flipped``
FLIPPED_SUFFIX = "_flipped"
PROB_FLIPPED = "prob" + FLIPPED_SUFFIX


def flip_images(images: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror images (..., H, W, C) left–right and their face boxes (..., 4) = (x0, y0, x1, y1)
    in pixels with it, so a crop of the flipped image is the mirror of the original crop.

    >>> images = np.arange(2 * 4 * 1).reshape(1, 2, 4, 1).astype(np.uint8)
    >>> flipped, box = flip_images(images, np.array([[1.0, 0.0, 2.0, 2.0]]))
    >>> flipped[0, 0, :, 0].tolist(), box.tolist()
    ([3, 2, 1, 0], [[2.0, 0.0, 3.0, 2.0]])
    """
    images = np.asarray(images)
    boxes = np.asarray(boxes)
    width = images.shape[-2]
    flipped = np.ascontiguousarray(images[..., ::-1, :])
    out = boxes.copy()
    out[..., 0] = width - boxes[..., 2]
    out[..., 2] = width - boxes[..., 0]
    return flipped, out
