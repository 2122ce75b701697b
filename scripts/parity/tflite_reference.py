"""Write ai-edge-litert reference outputs of the facex TFLite expression model as a fixture.

The fixture ``tests/fixtures/parity_facex.npz`` lets ``tests/test_tflite.py`` check the PyTorch
port (:mod:`facesym.classifiers.tflite`) against the TFLite interpreter itself without LiteRT
being installed in the project environment. It holds

* ``images_uint8``: (N, 200, 200) uint8 grey test images (deterministic, synthetic: gradients,
  drawn face-like patterns, seeded noise, a constant image; no external data),
* ``probs``: (N, 7) float32 softmax outputs of LiteRT with its default op resolver (XNNPACK
  delegate for the float ops, builtin hybrid kernels for the 8-bit-weight layers),
* ``probs_builtin``: the same with ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (no XNNPACK) and
  ``probs_reference`` with ``BUILTIN_REF`` (reference kernels). The three differ where float
  round-off flips the on-the-fly int8 rounding of an activation; their spread is the
  interpreter's own kernel-to-kernel disagreement, which the tests use as a yardstick,
* ``tap_tensor`` (name), ``tap_images`` (indices), ``tap_inputs`` (K, 6, 6, 320) float32 and
  ``tap_probs`` (K, 7): LiteRT's value of that intermediate tensor (the input of the last two
  layers, both hybrid) for a few images, and the outputs of that same run,
* metadata strings: ``model_file``, ``model_sha256``, ``litert_version``, ``numpy_version``,
  ``normalisation``, ``classes``.

Images are fed one at a time as (1, 200, 200, 3) float32 ``v / 255`` with the grey value
copied to the three channels (the model's input tensor is float32 [1, 200, 200, 3]).

Run by hand, in a separate virtual environment (never the project one)::

    python3 -m venv /tmp/litert-venv
    /tmp/litert-venv/bin/pip install ai-edge-litert numpy
    /tmp/litert-venv/bin/python scripts/parity/tflite_reference.py \\
        --model <cache>/facex/facex/assets/model_optimized.tflite

where ``<cache>`` is ``$FACESYM_CACHE`` (default ``~/.cache/facesym``); the project
environment fetches and verifies the file with::

    .venv/bin/python -c 'from facesym.resources import resource_file as r; \
        print(r("facex", "facex/assets/model_optimized.tflite"))'

``--out`` defaults to ``tests/fixtures/parity_facex.npz`` of this repository. The output is
deterministic for a given LiteRT build and CPU (XNNPACK picks kernels by CPU features).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

SIZE = 200
CLASSES = ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")
NORMALISATION = "grey uint8 / 255 as float32, copied to 3 channels, NHWC (1, 200, 200, 3)"
EXPECTED_SHA256 = "181e9dc6b5b19b7a4a3ee661d8de9969249b72c317b2080d79ac12d2b7027da5"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Intermediate tensor recorded for a few images: the input of the last two (hybrid) layers,
# Conv_1 (1x1, 8-bit weights, ReLU6) and the dense layer. From it on, LiteRT runs only hybrid
# kernels, so the port's emulation can be checked against LiteRT free of upstream round-off.
TAP_TENSOR = "mobilenetv2_1.00_224/block_16_project_BN/FusedBatchNorm"
TAP_IMAGES = (2, 5)  # radial gradient, seeded noise


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inside_ellipse(yy, xx, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def draw_face(size: int, mouth_curve: float, skin: float, tilt: float, eye_open: float):
    """A crude grey face in [0, 1]: head, eyes, brows, nose and a curved mouth."""
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    cos, sin = np.cos(tilt), np.sin(tilt)
    dy, dx = yy - s / 2, xx - s / 2
    yy, xx = cos * dy - sin * dx + s / 2, sin * dy + cos * dx + s / 2
    img = np.full((size, size), 0.2)
    img[_inside_ellipse(yy, xx, 0.52 * s, 0.5 * s, 0.40 * s, 0.31 * s)] = skin
    for ex in (0.38 * s, 0.62 * s):
        img[_inside_ellipse(yy, xx, 0.43 * s, ex, 0.035 * s * eye_open, 0.065 * s)] = 0.08
        brow_y = 0.34 * s - 0.03 * s * mouth_curve * np.sign(ex - 0.5 * s) * (xx - ex) / (0.1 * s)
        img[(np.abs(yy - brow_y) < 0.015 * s) & (np.abs(xx - ex) < 0.08 * s)] = 0.12
    img[(np.abs(xx - 0.5 * s) < 0.02 * s) & (yy > 0.46 * s) & (yy < 0.62 * s)] = skin * 0.75
    u = (xx - 0.5 * s) / (0.15 * s)
    mouth_y = 0.74 * s + 0.04 * s * mouth_curve - 0.07 * s * mouth_curve * u**2
    img[(np.abs(yy - mouth_y) < 0.02 * s) & (np.abs(u) <= 1.0)] = 0.1
    return img


def make_images(size: int = SIZE) -> np.ndarray:
    """Eight deterministic, varied (size, size) uint8 grey images."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    rng = np.random.default_rng(20250611)
    noise = rng.uniform(0.0, 1.0, (size, size))
    smooth = rng.normal(0.0, 1.0, (size, size))
    box = np.ones(9) / 9.0
    for axis in (0, 1):
        smooth = np.apply_along_axis(lambda v: np.convolve(v, box, mode="same"), axis, smooth)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    radius = np.hypot(yy - 0.45, xx - 0.55)
    images = [
        xx,  # horizontal gradient
        0.5 * (yy + xx),  # diagonal gradient
        np.clip(1.0 - 1.5 * radius, 0.0, 1.0),  # radial gradient
        draw_face(size, mouth_curve=1.0, skin=0.85, tilt=0.0, eye_open=1.0),  # smiling
        draw_face(size, mouth_curve=-1.0, skin=0.6, tilt=0.12, eye_open=0.6),  # frowning
        noise,  # seeded uniform noise
        0.5 * smooth + 0.5 * draw_face(size, mouth_curve=0.2, skin=0.9, tilt=-0.1, eye_open=1.4),
        np.full((size, size), 128.0 / 255.0),  # constant
    ]
    return np.stack([np.clip(np.rint(im * 255.0), 0, 255).astype(np.uint8) for im in images])


def normalise(images_uint8: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 grey -> (N, H, W, 3) float32 ``v / 255``."""
    x = images_uint8.astype(np.float32) / np.float32(255.0)
    return np.repeat(x[..., None], 3, axis=-1)


def run_litert(model: Path, x: np.ndarray, resolver: str) -> np.ndarray:
    """Softmax outputs of LiteRT for ``x`` (N, 200, 200, 3), one image per invoke."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs = {}
    if resolver != "AUTO":
        kwargs["experimental_op_resolver_type"] = getattr(OpResolverType, resolver)
    interp = Interpreter(model_path=str(model), **kwargs)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    if tuple(inp["shape"]) != (1, SIZE, SIZE, 3) or inp["dtype"] != np.float32:
        raise SystemExit(f"unexpected input tensor: {inp['shape']} {inp['dtype']}")
    if tuple(out["shape"]) != (1, len(CLASSES)):
        raise SystemExit(f"unexpected output tensor: {out['shape']}")
    probs = []
    for image in x:
        interp.set_tensor(inp["index"], image[None])
        interp.invoke()
        probs.append(interp.get_tensor(out["index"])[0].copy())
    return np.asarray(probs, dtype=np.float32)


def run_litert_tap(model: Path, x: np.ndarray, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    """LiteRT (default resolver) value of intermediate ``tensor`` and the softmax outputs."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    index = {t["name"]: t["index"] for t in interp.get_tensor_details()}[tensor]
    taps, probs = [], []
    for image in x:
        interp.set_tensor(inp["index"], image[None])
        interp.invoke()
        taps.append(interp.get_tensor(index)[0].copy())
        probs.append(interp.get_tensor(out["index"])[0].copy())
    return np.asarray(taps, dtype=np.float32), np.asarray(probs, dtype=np.float32)


def _litert_version() -> str:
    from importlib.metadata import version

    return version("ai-edge-litert")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="model_optimized.tflite")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "tests" / "fixtures" / "parity_facex.npz",
        help="fixture to write (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.model.is_file():
        parser.error(f"{args.model}: no such file")
    digest = sha256_file(args.model)
    if digest != EXPECTED_SHA256:
        raise SystemExit(f"{args.model}: sha256 {digest}, expected {EXPECTED_SHA256}")

    images = make_images()
    x = normalise(images)
    probs = run_litert(args.model, x, "AUTO")
    probs_builtin = run_litert(args.model, x, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
    probs_reference = run_litert(args.model, x, "BUILTIN_REF")
    tap_inputs, tap_probs = run_litert_tap(args.model, x[list(TAP_IMAGES)], TAP_TENSOR)
    for p in (probs, probs_builtin, probs_reference, tap_probs):
        if not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
            raise SystemExit("outputs are not probabilities")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        images_uint8=images,
        probs=probs,
        probs_builtin=probs_builtin,
        probs_reference=probs_reference,
        tap_tensor=np.array(TAP_TENSOR),
        tap_images=np.asarray(TAP_IMAGES, dtype=np.int64),
        tap_inputs=tap_inputs,
        tap_probs=tap_probs,
        model_file=np.array(args.model.name),
        model_sha256=np.array(digest),
        litert_version=np.array(_litert_version()),
        numpy_version=np.array(np.__version__),
        normalisation=np.array(NORMALISATION),
        classes=np.array(",".join(CLASSES)),
    )
    spread = np.abs(probs - probs_builtin).max(axis=1)
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): {len(images)} images, "
        f"ai-edge-litert {_litert_version()}, argmax {probs.argmax(1).tolist()}, "
        f"XNNPACK-vs-builtin spread per image {np.array2string(spread, precision=2)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
