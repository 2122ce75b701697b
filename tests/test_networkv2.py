"""Tests for :mod:`facesym.classifiers.networkv2`.

* Parity: the ``facial-emotion-recognition`` 0.3.4 checkpoint against the package's own
  NetworkV2 class, outputs stored in ``tests/fixtures/parity_networkv2.npz`` (made by
  ``scripts/parity/networkv2_reference.py``).
* Strict loading: tampered state dicts (a key removed, renamed, added, or mis-shaped) fail,
  naming the keys.
* Shapes and attributes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from facesym.classifiers.networkv2 import (
    NETWORKV2_LABELS,
    NetworkV2,
    StateDictMismatchError,
    load_networkv2,
    networkv2_from_state_dict,
    normalize_networkv2_input,
)

FIXTURE = Path(__file__).parent / "fixtures" / "parity_networkv2.npz"
RESOURCE = ("facial_emotion_recognition", "facial_emotion_recognition/model/model.pkl")


@pytest.fixture(scope="module")
def checkpoint_path() -> Path:
    """The verified model.pkl from the sdist (fetched into the resource cache if needed)."""
    from facesym.resources import resource_file

    return resource_file(*RESOURCE)


@pytest.fixture(scope="module")
def model(checkpoint_path: Path) -> NetworkV2:
    """The loaded NetworkV2."""
    return load_networkv2(checkpoint_path)


@pytest.fixture(scope="module")
def state_dict(checkpoint_path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's state dict (CPU)."""
    blob = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    return dict(blob["network"])


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    """The reference outputs of the original package."""
    with np.load(FIXTURE, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


# ------------------------------------------------------------------------------------------
# parity with the original package
# ------------------------------------------------------------------------------------------


def test_parity_with_original(model: NetworkV2, fixture: dict, checkpoint_path: Path) -> None:
    digest = hashlib.sha256(checkpoint_path.read_bytes()).hexdigest()
    assert digest == str(fixture["model_sha256"]), "fixture was made from another checkpoint"
    assert str(fixture["package_version"]) == "0.3.4"
    assert str(fixture["output_activation"]) == model.output_activation == "sigmoid"

    images = fixture["images_uint8"]
    assert images.dtype == np.uint8 and images.shape == (8, *model.input_shape_hw)
    with torch.no_grad():
        raw = model(normalize_networkv2_input(images))
    assert raw.dtype == torch.float32 and raw.shape == (len(images), 7)
    outputs = torch.sigmoid(raw).numpy()

    expected = fixture["outputs"]
    delta = float(np.abs(outputs - expected).max())
    assert delta <= 1e-5, f"max |Δ sigmoid output| = {delta:.3g}"
    # pre-activations too (the sigmoid saturates for some of them)
    # (values reach |90|: relative tolerance, float32 rounding differs between batch 8 and 1)
    ref_raw = torch.from_numpy(fixture["pre_activation"])
    torch.testing.assert_close(raw, ref_raw, rtol=1e-5, atol=1e-5)

    # the label the package's _predict reports (argmax of exp(sigmoid(.)))
    names = str(fixture["labels"]).lower().split(",")
    assert tuple(names) == model.labels == NETWORKV2_LABELS
    predicted = [model.labels[i] for i in raw.argmax(1).tolist()]
    assert predicted == [s.lower() for s in fixture["predicted_labels"].tolist()]


def test_normalisation_matches_package() -> None:
    images = np.array([[[0, 255], [128, 64]]], dtype=np.uint8)
    x = normalize_networkv2_input(images)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    ref = (images.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    np.testing.assert_array_equal(x.numpy()[:, 0], ref)
    with pytest.raises(ValueError, match="grey images"):
        normalize_networkv2_input(np.zeros((2, 48, 48, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------
# attributes and shapes
# ------------------------------------------------------------------------------------------


def test_attributes_and_shapes(model: NetworkV2) -> None:
    assert isinstance(model, torch.nn.Module) and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.input_shape_hw == (48, 48) and model.input_channels == 1
    assert model.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert model.checkpoint_info.get("epochs") == 50
    assert sum(p.numel() for p in model.parameters()) == 2_750_151
    with torch.no_grad():
        x = torch.zeros(3, 1, 48, 48)
        assert model.features(x).shape == (3, 256 * 6 * 6)
        assert model(x).shape == (3, 7)
        # batch composition does not matter (eval-mode BatchNorm)
        y = torch.randn(4, 1, 48, 48, generator=torch.Generator().manual_seed(0))
        single = torch.cat([model(y[i : i + 1]) for i in range(4)])
        torch.testing.assert_close(model(y), single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 48, 48), (1, 1, 64, 64), (1, 48, 48), (48, 48)])
def test_wrong_input_shape(model: NetworkV2, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"expects \(N, 1, 48, 48\)"):
        model(torch.zeros(shape))


# ------------------------------------------------------------------------------------------
# strict loading
# ------------------------------------------------------------------------------------------


def test_bare_state_dict_file(tmp_path: Path, state_dict: dict, model: NetworkV2) -> None:
    path = tmp_path / "bare.pt"
    torch.save(state_dict, path)
    other = load_networkv2(path)
    assert other.checkpoint_info == {}
    x = torch.randn(2, 1, 48, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(other(x), model(x), rtol=0, atol=0)


def _save_tampered(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "tampered.pkl"
    torch.save({"network": state, "epochs": 1}, path)
    return path


def test_missing_key(tmp_path: Path, state_dict: dict) -> None:
    state = dict(state_dict)
    del state["conv_3.2.running_var"]
    with pytest.raises(StateDictMismatchError, match=r"missing keys: conv_3\.2\.running_var"):
        load_networkv2(_save_tampered(tmp_path, state))


def test_renamed_key(tmp_path: Path, state_dict: dict) -> None:
    state = dict(state_dict)
    state["linear.3.weight"] = state.pop("linear.2.weight")
    with pytest.raises(StateDictMismatchError) as err:
        load_networkv2(_save_tampered(tmp_path, state))
    msg = str(err.value)
    assert "missing keys: linear.2.weight" in msg
    assert "unexpected keys: linear.3.weight" in msg
    assert "tampered.pkl" in msg


def test_extra_key(state_dict: dict) -> None:
    state = dict(state_dict)
    state["linear.3.bias"] = torch.zeros(7)
    with pytest.raises(StateDictMismatchError, match=r"unexpected keys: linear\.3\.bias"):
        networkv2_from_state_dict(state)


def test_wrong_shape(state_dict: dict) -> None:
    state = dict(state_dict)
    state["linear.2.bias"] = torch.zeros(8)
    with pytest.raises(StateDictMismatchError, match=r"linear\.2\.bias: shape \(8,\)"):
        networkv2_from_state_dict(state)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(StateDictMismatchError, match="expected a checkpoint dict"):
        load_networkv2(path)
    with pytest.raises(FileNotFoundError):
        load_networkv2(tmp_path / "absent.pkl")
