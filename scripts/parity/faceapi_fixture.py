"""Convert faceapi_reference.mjs's JSON output into tests/fixtures/parity_face_api.npz.

How to run (from the repository root, after faceapi_reference.mjs; see its header)::

    .venv/bin/python scripts/parity/faceapi_fixture.py /tmp/faceapi_parity/faceapi_reference.json \
        [--out tests/fixtures/parity_face_api.npz] [--bin path/to/face_expression_model.bin]

The .npz holds ``images_uint8`` (N, 112, 112, 3) uint8 RGB, ``probs`` (N, 7) float32 (face-api's
softmax output), ``logits`` (N, 7) float32, ``names`` and ``labels`` (unicode arrays) and
metadata strings (``package``, ``package_version``, ``bin_sha256``, ``manifest_sha256``,
``tfjs_version``, ``tfjs_backend``, ``normalisation``, ...). All arrays load without pickle.
With ``--bin`` the sha256 recorded by node is checked against that file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "parity_face_api.npz"


def convert(json_path: Path, out_path: Path, bin_path: Path | None = None) -> dict[str, str]:
    """Write the .npz fixture from the node reference JSON; return its metadata."""
    ref = json.loads(json_path.read_text(encoding="utf-8"))
    h, w = int(ref["height"]), int(ref["width"])
    images = np.asarray(ref["images"], dtype=np.int64)
    if images.min() < 0 or images.max() > 255:
        raise ValueError("image values outside 0..255")
    images = images.astype(np.uint8).reshape(-1, h, w, 3)
    probs = np.asarray(ref["probs"], dtype=np.float32)
    logits = np.asarray(ref["logits"], dtype=np.float32)
    n = images.shape[0]
    if probs.shape != (n, len(LABELS)) or logits.shape != probs.shape:
        raise ValueError(f"unexpected probs/logits shapes {probs.shape} {logits.shape}")
    if tuple(ref["labels"]) != LABELS:
        raise ValueError(f"unexpected label order {ref['labels']}")
    if not np.allclose(probs.sum(axis=1), 1.0, atol=1e-5):
        raise ValueError("probabilities do not sum to 1")

    meta = {str(k): str(v) for k, v in ref["meta"].items()}
    if bin_path is not None:
        digest = hashlib.sha256(bin_path.read_bytes()).hexdigest()
        if digest != meta["bin_sha256"]:
            raise ValueError(f"{bin_path}: sha256 {digest} != {meta['bin_sha256']} (node side)")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_path,
        images_uint8=images,
        probs=probs,
        logits=logits,
        names=np.asarray(ref["names"], dtype=np.str_),
        labels=np.asarray(LABELS, dtype=np.str_),
        **{k: np.asarray(v, dtype=np.str_) for k, v in meta.items()},
    )
    return meta


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json_path", type=Path)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--bin", type=Path, default=None, help="check sha256 of this .bin")
    args = ap.parse_args()
    meta = convert(args.json_path, args.out, args.bin)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.1f} KiB); {meta['package']}@{meta['package_version']}")
    print(f"bin sha256 {meta['bin_sha256']}, tfjs {meta['tfjs_version']} {meta['tfjs_backend']}")


if __name__ == "__main__":
    main()
