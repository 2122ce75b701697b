"""The torch ports reproduce, bit for bit, outputs captured before the classifier refactor.

``tests/fixtures/golden_torch_ports.npz`` was written by ``scripts/parity/torch_golden.py`` from
the code before ``classifiers/tflite.py`` became a subpackage and ``keras_hdf5.py`` was split.
Exact equality needs the same oneDNN kernels: one torch thread (the script pins it) and the
same CPU capability. On another capability the outputs are still compared, to float
round-off for the smooth ports; the hybrid emulation flips int8 roundings there (see
``tests/test_tflite.py``), so it gets the end-to-end tolerance of the parity tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "golden_torch_ports.npz"


@pytest.fixture(scope="module")
def golden_script():
    spec = importlib.util.spec_from_file_location(
        "torch_golden", REPO / "scripts" / "parity" / "torch_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outputs(golden_script) -> dict[str, np.ndarray]:
    return golden_script.golden_outputs()


@pytest.mark.parametrize("name", ["facex_float", "facex_emulated", "mini_xception"])
def test_outputs_equal_pre_refactor_capture(outputs, name: str) -> None:
    fixture = np.load(FIXTURE, allow_pickle=False)
    expected = fixture[name]
    got = outputs[name]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if str(fixture["cpu_capability"]) == torch.backends.cpu.get_cpu_capability():
        np.testing.assert_array_equal(got, expected)
    elif name == "facex_emulated":
        delta = torch.softmax(torch.from_numpy(got), 1) - torch.softmax(
            torch.from_numpy(expected), 1)
        assert float(delta.abs().max()) <= 0.25
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)

