"""Make tests/fixtures/resize_reference.npz: OpenCV and scikit-image outputs on seeded images.

facesym reproduces the resizes of the classifiers' own packages in numpy
(``facesym.classifiers.resize``) without depending on OpenCV or scikit-image; this fixture
holds what those libraries return, so the tests check the reproduction against them.

How to run (a throwaway venv, not the project's)::

    python3.11 -m venv /tmp/parityvenv
    /tmp/parityvenv/bin/pip install opencv-python-headless scikit-image numpy
    /tmp/parityvenv/bin/python scripts/parity/resize_reference.py [--out tests/fixtures/...]

The .npz holds, for case i: ``src_i`` (H, W) uint8 grey, ``cv2_i`` (h, w) uint8 =
``cv2.resize(src_i, (w, h))``; for RGB: ``rgb`` (N, H, W, 3) uint8 and ``grey_cv2`` =
``cv2.cvtColor(rgb[k], cv2.COLOR_RGB2GRAY)``; for scikit-image: ``sk_src_j`` and ``sk_j``
(float32 of ``skimage.transform.resize(sk_src_j, (h, w))``); plus ``cv2_version``,
``skimage_version``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "resize_reference.npz"
# (source h, w) -> (target h, w): the classifiers' downscales and upscales, odd ratios, edges
CV2_CASES = [((130, 130), (64, 64)), ((151, 151), (48, 48)), ((97, 97), (64, 64)),
             ((40, 40), (64, 64)), ((120, 83), (48, 48)), ((64, 64), (64, 64)),
             ((200, 180), (48, 48)), ((33, 47), (64, 64))]
SK_CASES = [((150, 150), (200, 200)), ((231, 231), (40, 40)), ((60, 45), (32, 32))]


def image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth gradient plus noise and a sharp square: exercises weights and rounding."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 255 * (0.5 + 0.5 * np.sin(xx / 7.0) * np.cos(yy / 5.0))
    img = np.clip(base + rng.normal(0, 30, (h, w)), 0, 255)
    img[h // 3:h // 2, w // 4:w // 2] = 255
    return img.astype(np.uint8)


def main() -> None:
    """Write the fixture."""
    import cv2
    import skimage
    from skimage.transform import resize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(20240607)
    out: dict[str, np.ndarray] = {"cv2_version": np.array(cv2.__version__),
                                  "skimage_version": np.array(skimage.__version__)}
    for i, ((h, w), (th, tw)) in enumerate(CV2_CASES):
        src = image(rng, h, w)
        out[f"src_{i}"] = src
        out[f"cv2_{i}"] = cv2.resize(src, (tw, th))
    rgb = rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    out["rgb"] = rgb
    out["grey_cv2"] = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in rgb])
    for j, ((h, w), (th, tw)) in enumerate(SK_CASES):
        src = image(rng, h, w)
        out[f"sk_src_{j}"] = src
        out[f"sk_{j}"] = resize(src, (th, tw)).astype(np.float32)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} (cv2 {cv2.__version__}, skimage {skimage.__version__})")


if __name__ == "__main__":
    main()
