"""Execution runtimes (facesym.classifiers.runtime): every runtime a model may be given in the
zoo computes the same probabilities as the plain torch module (max |Δp| ≤ 1e-5) on the real
parity fixtures' images, for every shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facesym.classifiers.runtime import RUNTIMES, Runner, configure, entry_options
from facesym.classifiers.zoo import check_zoo, load_classifier, load_zoo
from facesym.config import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-5
# runtimes that reproduce each model within TOL (the facex hybrid-int8 emulation rounds layer
# inputs, so any change of summation order flips roundings: it runs as plain torch only)
# torch.compile costs 10-200 s per model on 2 cores: checked on the smallest model only
CASES = [(name, rt) for name in ("mini_xception", "big_xception", "mini_xception_48",
                                 "face_api", "networkv2")
         for rt in ("torch_channels_last", "onnxruntime")] + [("mini_xception_48",
                                                               "torch_compile")]


def fixture_input(name: str, clf) -> torch.Tensor:
    """The parity fixture's images as the network input (B, C, s, s)."""
    images = np.load(FIXTURES / f"parity_{name}.npz")["images_uint8"].astype(np.float32)
    x = torch.from_numpy(images)
    x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
    if clf.spec.in_channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(clf.spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(clf.spec.std).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()


@pytest.fixture(scope="module")
def zoo():
    return load_zoo()


@pytest.mark.parametrize(("name", "runtime"), CASES)
def test_runtime_reproduces_torch(name: str, runtime: str, zoo, cache_dir) -> None:
    clf = load_classifier(name, zoo, cache_dir=cache_dir)
    x = fixture_input(name, clf)
    with torch.inference_mode():
        _, ref = clf.activate(clf.module.to(memory_format=torch.contiguous_format)(x))
    # batch 3 over 8-10 images: exercises the padded last batch of the fixed-batch runtimes
    runner = Runner(clf.module, runtime, batch=3)
    _, probs = clf.activate(runner(x))
    dp = float((probs - ref).abs().max())
    assert dp <= TOL, (name, runtime, dp)
    assert runner.runtime == runtime


def test_predict_runs_the_configured_runtime(zoo, cache_dir) -> None:
    clf = load_classifier("mini_xception_48", zoo, cache_dir=cache_dir)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(5, 96, 96, 3), dtype=np.uint8)
    boxes = np.array([[20.0, 22.0, 76.0, 80.0]] * 5)
    _, ref = clf.predict(images, boxes, batch_size=4)
    assert clf.engine_info["runtime"] == "torch_channels_last"
    configure(clf, {**zoo["mini_xception_48"], "runtime": "onnxruntime", "batch_size": 2})
    _, probs = clf.predict(images, boxes, batch_size=64)  # the entry's batch_size wins
    info = clf.engine_info
    assert info["runtime"] == "onnxruntime" and info["runtime_batch"] == 2
    assert np.abs(probs - ref).max() <= TOL


def test_entry_options_defaults_and_errors() -> None:
    assert entry_options({"format": "keras_hdf5"})["runtime"] == "torch_channels_last"
    assert entry_options({"format": "tflite"})["runtime"] == "torch"
    assert entry_options({"format": "keras_hdf5", "channels_last": False})["runtime"] == "torch"
    with pytest.raises(ValueError, match="runtime must be one of"):
        entry_options({"format": "keras_hdf5", "runtime": "tvm"})
    assert set(RUNTIMES) == {"torch", "torch_channels_last", "torch_compile", "onnxruntime"}


def test_configure_checks_the_original_recipe(zoo, cache_dir) -> None:
    clf = load_classifier("mini_xception_48", zoo, cache_dir=cache_dir)
    no_recipe = {k: v for k, v in zoo["mini_xception_48"].items() if k != "original_preprocess"}
    with pytest.raises(ValueError, match="needs original_preprocess"):
        configure(clf, {**no_recipe, "preprocess": "original"})
    with pytest.raises(ValueError, match="preprocess must be facesym or original"):
        configure(clf, {**zoo["mini_xception_48"], "preprocess": "cv2"})
    configure(clf, {**zoo["mini_xception_48"], "preprocess": "original",
                    "original_preprocess": "face_classification"})
    assert clf.engine_info["preprocess"] == "original:face_classification"


def test_non_cpu_device_falls_back_to_channels_last() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    runner = Runner(net, "onnxruntime", batch=2, device="meta")
    assert runner.runtime == "torch_channels_last"
    assert runner.info["runtime_requested"] == "onnxruntime"


def test_running_a_classifier_leaves_its_module_usable_for_autograd() -> None:
    """The runner converts the memory format outside inference mode: the caller's module keeps
    normal parameters (tracing and autograd still work after a classification)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    Runner(net, "torch_channels_last", batch=2)(torch.zeros(2, 1, 8, 8))
    assert not any(p.is_inference() for p in net.parameters())
    net(torch.zeros(1, 1, 8, 8, requires_grad=True)).sum().backward()


def test_load_classifier_applies_the_zoo_entry_options(zoo, cache_dir) -> None:
    entry = {**zoo["mini_xception_48"], "runtime": "torch", "batch_size": 7,
             "preprocess": "original", "original_preprocess": "face_classification"}
    clf = load_classifier("mini_xception_48", {"mini_xception_48": entry}, cache_dir=cache_dir)
    assert (clf.runtime, clf.batch_size, clf.preprocess_mode) == ("torch", 7, "original")
    assert clf.engine_info["preprocess"] == "original:face_classification"
    shipped = load_classifier("mini_xception_48", zoo, cache_dir=cache_dir)
    assert (shipped.runtime, shipped.preprocess_mode) == ("torch_channels_last", "facesym")


def test_zoo_schema_names_a_missing_original_recipe(zoo) -> None:
    entry = {k: v for k, v in zoo["mini_xception"].items() if k != "original_preprocess"}
    with pytest.raises(ConfigError, match="original_preprocess"):
        check_zoo({"mini_xception": {**entry, "preprocess": "original"}}, "zoo")
    with pytest.raises(ConfigError, match="runtime"):
        check_zoo({"mini_xception": {**zoo["mini_xception"], "runtime": "tensorrt"}}, "zoo")
