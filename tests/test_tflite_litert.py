"""The LiteRT engine of :mod:`facesym.classifiers.tflite` and the engine choice.

LiteRT is TFLite's own runtime, so against ``tests/fixtures/parity_facex.npz`` (made with LiteRT
one image per invoke) it must agree to float round-off of the final softmax: the engine reads
LiteRT's logits (the file's output redirected to the softmax input) and the test applies torch's
softmax (measured 1.2e-7; asserted 1e-6), for each kernel set against its own column.

Against the torch port the tolerance is the port's end-to-end one from ``tests/test_tflite.py``
(max 0.25, mean 0.05 in probability with ``emulate_hybrid=True``; max 0.25, mean 0.1 for the
float path): the hybrid layers quantise their float input to int8 on the fly, so a last-ulp
difference between the port's and LiteRT's float kernels flips roundings that cascade; LiteRT's
own kernel sets disagree with each other by up to ~0.1-0.14 for the same reason.
"""

from __future__ import annotations

import hashlib
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch

from facesym.classifiers.base import Classifier, InputSpec
from facesym.classifiers.tflite import load_tflite, read_tflite, resolve_engine
from facesym.classifiers.tflite.reader import with_outputs

FIXTURE = Path(__file__).parent / "fixtures" / "parity_facex.npz"
FACEX = ("facex", "facex/assets/model_optimized.tflite")


@pytest.fixture(scope="module")
def facex_path() -> Path:
    from facesym.resources import resource_file

    return resource_file(*FACEX)


@pytest.fixture(scope="module")
def fixture(facex_path: Path):
    data = np.load(FIXTURE, allow_pickle=False)
    assert hashlib.sha256(facex_path.read_bytes()).hexdigest() == str(data["model_sha256"])
    return data


@pytest.fixture(scope="module")
def images(fixture) -> torch.Tensor:
    x = fixture["images_uint8"].astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(np.repeat(x[:, None], 3, axis=1))


def _probs(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(x), dim=1).numpy()


# ------------------------------------------------------------------------------------------
# engine choice (no LiteRT needed)
# ------------------------------------------------------------------------------------------


def test_unknown_engine_is_refused(facex_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown TFLite engine 'onnx'.*torch, litert, auto"):
        load_tflite(facex_path, engine="onnx")


def test_torch_engine_reports_itself(facex_path: Path) -> None:
    model = load_tflite(facex_path, emulate_hybrid=True)
    assert model.engine == "torch"
    assert model.engine_info["kernels"] == "hybrid-emulated"
    assert load_tflite(facex_path).engine_info["kernels"] == "float"


def test_auto_falls_back_to_torch_without_litert(facex_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    assert resolve_engine("auto") == "torch"
    model = load_tflite(facex_path, emulate_hybrid=True, engine="auto")
    assert model.engine == "torch" and model.emulate_hybrid
    with pytest.raises(ImportError):
        load_tflite(facex_path, engine="litert")


def test_with_outputs_rewrites_the_output_vector(facex_path: Path) -> None:
    data = facex_path.read_bytes()
    graph = read_tflite(data)
    (softmax,) = [op for op in graph.operators if op.name == "SOFTMAX"]
    patched = read_tflite(with_outputs(data, [softmax.inputs[0]]))
    assert patched.outputs == (softmax.inputs[0],) != graph.outputs
    assert len(patched.operators) == len(graph.operators)
    with pytest.raises(ValueError, match="1 output"):
        with_outputs(data, [1, 2])


# ------------------------------------------------------------------------------------------
# LiteRT
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def litert(facex_path: Path):
    pytest.importorskip("ai_edge_litert.interpreter")
    return load_tflite(facex_path, engine="litert", num_threads=2)


@pytest.mark.parametrize("kernels,column", [
    ("xnnpack", "probs"), ("builtin", "probs_builtin"), ("reference", "probs_reference"),
])
def test_litert_matches_its_fixture(litert, facex_path, fixture, images, kernels, column) -> None:
    model = litert if kernels == "xnnpack" else load_tflite(
        facex_path, engine="litert", kernels=kernels, num_threads=2)
    assert model.engine == "litert" and model.kernels == kernels
    assert model.output_activation == "softmax" and model.input_shape_hw == (200, 200)
    probs = np.concatenate([_probs(model, images[i : i + 1]) for i in range(len(images))])
    assert np.abs(probs - fixture[column]).max() <= 1e-6


def test_litert_vs_torch_port(litert, facex_path, images) -> None:
    reference = _probs(litert, images)
    for emulate, mean_tol in ((True, 0.05), (False, 0.1)):
        port = _probs(load_tflite(facex_path, emulate_hybrid=emulate), images)
        delta = np.abs(port - reference).max(axis=1)
        assert delta.max() <= 0.25 and delta.mean() <= mean_tol, (emulate, delta)


def test_litert_is_deterministic_over_batches_threads_and_instances(
        litert, facex_path, images) -> None:
    batch = _probs(litert, images)
    assert _probs(litert, images).tobytes() == batch.tobytes()  # same input, same bytes
    # per-image hybrid quantisation: the batch does not change any image's result
    singles = np.concatenate([_probs(litert, images[i : i + 1]) for i in range(len(images))])
    assert singles.tobytes() == batch.tobytes()
    assert _probs(litert, images[:3]).tobytes() == batch[:3].tobytes()  # resized back
    other = load_tflite(facex_path, engine="litert", num_threads=1)
    assert other.engine_info["threads"] == 1
    assert _probs(other, images).tobytes() == batch.tobytes()


def test_litert_behind_the_classifier_adapter(litert) -> None:
    spec = InputSpec(size=200, colour="grey", mean=(0.0,) * 3, std=(255.0,) * 3, channels=3)
    labels = ("anger", "disgust", "fear", "happy", "neutral", "sadness", "surprised")
    clf = Classifier("facex", litert, spec, labels=labels, output="softmax")
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 240, 240, 3), dtype=np.uint8)
    boxes = np.tile(np.array([[40.0, 40.0, 200.0, 200.0]]), (5, 1))
    raw, probs = clf.predict(images, boxes, batch_size=2)
    raw2, _ = clf.predict(images, boxes, batch_size=5)
    assert raw.shape == (5, 7) and raw.tobytes() == raw2.tobytes()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    info = clf.engine_info
    assert info["engine"] == "litert" and info["kernels"] == "xnnpack"
    assert info["engine_version"] == version("ai-edge-litert")
