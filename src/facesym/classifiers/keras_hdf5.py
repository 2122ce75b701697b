"""Keras 2 HDF5 full-model files (``model.save("x.hdf5")``) executed as PyTorch modules.

:func:`load_keras_hdf5` reads the ``model_config`` JSON and the ``model_weights`` group with
h5py (no Keras, no TensorFlow) and returns a :class:`KerasGraphModule` that runs the Keras layer
graph in PyTorch. It was written for the FER2013 XCEPTION expression classifiers
(oarriaga/face_classification, the ``fer`` package), whose graphs use InputLayer, Conv2D,
SeparableConv2D, BatchNormalization, Activation, MaxPooling2D, Add and GlobalAveragePooling2D.

Conventions:

* Tensors are NCHW inside the module (Keras is NHWC); layers whose result depends on the layout
  (Flatten, Dense on 4-D input, Concatenate, BatchNormalization axis) translate accordingly.
* ``'same'`` padding follows TensorFlow: total padding ``max((ceil(n/s)-1)*s + k_eff - n, 0)``,
  of which ``total // 2`` goes top/left and the rest bottom/right. For even inputs with stride 2
  this is asymmetric, which ``torch.nn.Conv2d(padding=...)`` cannot express.
* Average pooling with ``'same'`` padding divides by the number of real (unpadded) inputs,
  max pooling pads with ``-inf``; both as in TensorFlow.
* ``forward`` returns the *pre-activation* output of a final softmax (an ``Activation('softmax')``
  layer, or a Conv/Dense layer with ``activation='softmax'``); ``output_activation`` then says
  ``"softmax"``. A model that does not end in softmax returns its final output unchanged and has
  ``output_activation = None``.
* Everything is float32, inference only: Dropout is the identity, BatchNormalization uses the
  stored moving statistics and the epsilon from the layer config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesym.classifiers.tf_padding import same_pad4

__all__ = ["KerasGraphModule", "load_keras_hdf5", "SUPPORTED_LAYERS"]

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softmax": lambda x: torch.softmax(x, dim=1),  # channels / features are dim 1 here
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
}

# Keras weight variable names per layer class, in Keras 2 ``layer.weights`` order.
_CONV_CLASSES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _as_str(value: Any) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8")
    return str(value)


def _pair(value: Any, what: str, layer: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"layer {layer!r}: cannot read {what}={value!r} as two integers")


def _keras_axis_to_torch(axis: int, ndim: int, layer: str) -> int:
    """Map a channels_last Keras axis to the NCHW dim used here."""
    a = axis % ndim
    if ndim == 4:
        return {0: 0, 1: 2, 2: 3, 3: 1}[a]
    if ndim == 2:
        return a
    raise ValueError(f"layer {layer!r}: tensors of rank {ndim} are not supported")


def _activation(name: Any, layer: str) -> str:
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ValueError(
            f"layer {layer!r}: unsupported activation {name!r}; "
            f"supported: {', '.join(sorted(_ACTIVATIONS))}"
        )
    return name


def _check_channels_last(cfg: dict, layer: str) -> None:
    fmt = cfg.get("data_format")
    if fmt not in (None, "channels_last"):
        raise ValueError(f"layer {layer!r}: data_format {fmt!r} is not supported")


# --------------------------------------------------------------------------------------------
# layer modules (NCHW)
# --------------------------------------------------------------------------------------------


class _Layer(nn.Module):
    """Base: ``forward = activation(pre_activation(...))``."""

    activation: str = "linear"

    def pre_activation(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _ACTIVATIONS[self.activation](self.pre_activation(*xs))


class _Conv(_Layer):
    """Conv2D / DepthwiseConv2D / SeparableConv2D with TF padding."""

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        padding: str,
        groups: int,
        activation: str,
        pointwise: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(weight), requires_grad=False)
        self.pointwise = (
            nn.Parameter(torch.from_numpy(pointwise), requires_grad=False)
            if pointwise is not None
            else None
        )
        self.bias = (
            nn.Parameter(torch.from_numpy(bias), requires_grad=False) if bias is not None else None
        )
        self.kernel = (int(weight.shape[2]), int(weight.shape[3]))
        self.stride = stride
        self.dilation = dilation
        self.same = padding == "same"
        self.groups = groups
        self.activation = activation

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        pad: int | tuple[int, int] = 0
        if self.same:
            left, right, top, bottom = same_pad4(x, self.kernel, self.stride, self.dilation)
            if left == right and top == bottom:
                pad = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        first_bias = self.bias if self.pointwise is None else None
        y = F.conv2d(x, self.weight, first_bias, self.stride, pad, self.dilation, self.groups)
        if self.pointwise is not None:
            y = F.conv2d(y, self.pointwise, self.bias)
        return y


class _Dense(_Layer):
    def __init__(self, kernel: np.ndarray, bias: np.ndarray | None, activation: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.from_numpy(np.ascontiguousarray(kernel.T)), requires_grad=False
        )
        self.bias = (
            nn.Parameter(torch.from_numpy(bias), requires_grad=False) if bias is not None else None
        )
        self.activation = activation

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            return F.linear(x, self.weight, self.bias)
        # Keras applies Dense to the last (channel) axis of higher-rank input.
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


class _BatchNorm(_Layer):
    def __init__(
        self,
        mean: np.ndarray,
        var: np.ndarray,
        gamma: np.ndarray | None,
        beta: np.ndarray | None,
        eps: float,
    ) -> None:
        super().__init__()
        n = mean.shape[0]
        ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
        self.register_buffer("running_mean", torch.from_numpy(mean))
        self.register_buffer("running_var", torch.from_numpy(var))
        self.weight = nn.Parameter(
            torch.from_numpy(gamma if gamma is not None else ones), requires_grad=False
        )
        self.bias = nn.Parameter(
            torch.from_numpy(beta if beta is not None else zeros), requires_grad=False
        )
        self.eps = float(eps)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


class _Activation(_Layer):
    def __init__(self, activation: str) -> None:
        super().__init__()
        self.activation = activation

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Pool(_Layer):
    def __init__(self, kind: str, pool: tuple[int, int], stride: tuple[int, int], padding: str):
        super().__init__()
        self.kind = kind
        self.pool = pool
        self.stride = stride
        self.same = padding == "same"

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        pads = same_pad4(x, self.pool, self.stride, (1, 1)) if self.same else (0, 0, 0, 0)
        if self.kind == "max":
            if any(pads):
                x = F.pad(x, pads, value=-math.inf)
            return F.max_pool2d(x, self.pool, self.stride)
        if not any(pads):
            return F.avg_pool2d(x, self.pool, self.stride)
        # TF divides by the number of real inputs under the window, not by the window size.
        total = F.avg_pool2d(F.pad(x, pads), self.pool, self.stride, divisor_override=1)
        ones = torch.ones((1, 1, x.shape[2], x.shape[3]), dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(ones, pads), self.pool, self.stride, divisor_override=1)
        return total / count


class _GlobalAvgPool(_Layer):
    def __init__(self, keepdims: bool) -> None:
        super().__init__()
        self.keepdims = keepdims

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=self.keepdims)


class _ZeroPad(_Layer):
    def __init__(self, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.pads = pads  # (left, right, top, bottom)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class _Flatten(_Layer):
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # flatten in NHWC order so that a following Dense sees Keras' layout
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


class _Identity(_Layer):
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Merge(_Layer):
    def __init__(self, kind: str, axis: int = -1, name: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.axis = axis
        self.layer_name = name

    def pre_activation(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.kind == "concat":
            dim = _keras_axis_to_torch(self.axis, xs[0].ndim, self.layer_name)
            return torch.cat(xs, dim=dim)
        out = xs[0]
        for x in xs[1:]:
            if self.kind == "add" or self.kind == "average":
                out = out + x
            elif self.kind == "multiply":
                out = out * x
            else:  # maximum
                out = torch.maximum(out, x)
        return out / len(xs) if self.kind == "average" else out


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------


def _read_layer_weights(
    weights_root: h5py.Group, layer: str, expected: Sequence[str]
) -> dict[str, np.ndarray]:
    """Arrays of one layer keyed by variable name (``kernel``, ``bias``, ``gamma``, ...)."""
    if layer not in weights_root:
        if not expected:
            return {}
        raise ValueError(f"layer {layer!r}: no weights group in the HDF5 file")
    group = weights_root[layer]
    names = [_as_str(n) for n in group.attrs.get("weight_names", [])]
    arrays = [np.asarray(group[n], dtype=np.float32) for n in names]
    base = [n.split("/")[-1].split(":")[0] for n in names]
    if sorted(base) == sorted(expected):
        return dict(zip(base, arrays, strict=True))
    if len(arrays) == len(expected):  # unfamiliar names: fall back to Keras' weight order
        return dict(zip(expected, arrays, strict=True))
    raise ValueError(
        f"layer {layer!r}: expected weights {list(expected)}, found {names} in the HDF5 file"
    )


# --------------------------------------------------------------------------------------------
# layer construction
# --------------------------------------------------------------------------------------------

SUPPORTED_LAYERS = (
    "InputLayer",
    "Conv2D",
    "SeparableConv2D",
    "DepthwiseConv2D",
    "Dense",
    "BatchNormalization",
    "Activation",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "ZeroPadding2D",
    "Flatten",
    "Dropout",
    "SpatialDropout2D",
    "Add",
    "Multiply",
    "Average",
    "Maximum",
    "Concatenate",
)


def _check_supported(class_name: str, name: str) -> None:
    if class_name not in SUPPORTED_LAYERS:
        raise ValueError(
            f"layer {name!r} has unsupported type {class_name!r}; "
            f"supported: {', '.join(SUPPORTED_LAYERS)}"
        )


def _build_layer(class_name: str, name: str, cfg: dict, weights_root: h5py.Group) -> _Layer:
    """Build the torch module for one Keras layer config."""
    _check_supported(class_name, name)
    if class_name == "InputLayer":
        raise ValueError(f"layer {name!r}: InputLayer in the middle of the graph")
    _check_channels_last(cfg, name)

    if class_name in _CONV_CLASSES:
        use_bias = bool(cfg.get("use_bias", True))
        act = _activation(cfg.get("activation", "linear"), name)
        bias_names = ["bias"] if use_bias else []
        if class_name == "Dense":
            w = _read_layer_weights(weights_root, name, ["kernel", *bias_names])
            kernel = w["kernel"]
            if kernel.ndim != 2 or kernel.shape[1] != int(cfg["units"]):
                raise ValueError(f"layer {name!r}: kernel shape {kernel.shape} does not match")
            return _Dense(kernel, w.get("bias"), act)

        ksize = _pair(cfg["kernel_size"], "kernel_size", name)
        stride = _pair(cfg.get("strides", 1), "strides", name)
        dilation = _pair(cfg.get("dilation_rate", 1), "dilation_rate", name)
        padding = str(cfg.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"layer {name!r}: unsupported padding {padding!r}")
        if class_name == "Conv2D":
            w = _read_layer_weights(weights_root, name, ["kernel", *bias_names])
            k = w["kernel"]  # (kh, kw, in, out)
            if k.ndim != 4 or tuple(k.shape[:2]) != ksize or k.shape[3] != int(cfg["filters"]):
                raise ValueError(f"layer {name!r}: kernel shape {k.shape} does not match config")
            groups = int(cfg.get("groups", 1))
            torch_k = np.ascontiguousarray(k.transpose(3, 2, 0, 1))
            return _Conv(torch_k, w.get("bias"), stride, dilation, padding, groups, act)

        w = _read_layer_weights(
            weights_root,
            name,
            [
                "depthwise_kernel",
                *(["pointwise_kernel"] if class_name == "SeparableConv2D" else []),
                *bias_names,
            ],
        )
        dk = w["depthwise_kernel"]  # (kh, kw, in, multiplier)
        if dk.ndim != 4 or tuple(dk.shape[:2]) != ksize:
            raise ValueError(f"layer {name!r}: depthwise kernel shape {dk.shape} does not match")
        cin, mult = int(dk.shape[2]), int(dk.shape[3])
        # TF depthwise output channel c*mult + m  <->  torch grouped conv out channel c*mult + m
        torch_dk = np.ascontiguousarray(dk.transpose(2, 3, 0, 1).reshape(cin * mult, 1, *ksize))
        pw = None
        if class_name == "SeparableConv2D":
            p = w["pointwise_kernel"]  # (1, 1, in*mult, out)
            if p.shape[:3] != (1, 1, cin * mult) or p.shape[3] != int(cfg["filters"]):
                raise ValueError(f"layer {name!r}: pointwise kernel shape {p.shape} does not match")
            pw = np.ascontiguousarray(p.transpose(3, 2, 0, 1))
        return _Conv(torch_dk, w.get("bias"), stride, dilation, padding, cin, act, pointwise=pw)

    if class_name == "BatchNormalization":
        axis = cfg.get("axis", -1)
        if isinstance(axis, list):
            if len(axis) != 1:
                raise ValueError(f"layer {name!r}: BatchNormalization over axes {axis}")
            axis = axis[0]
        if axis not in (-1, 3):
            raise ValueError(f"layer {name!r}: BatchNormalization axis {axis} is not supported")
        center, scale = bool(cfg.get("center", True)), bool(cfg.get("scale", True))
        expected = [
            *(["gamma"] if scale else []),
            *(["beta"] if center else []),
            "moving_mean",
            "moving_variance",
        ]
        w = _read_layer_weights(weights_root, name, expected)
        return _BatchNorm(
            w["moving_mean"],
            w["moving_variance"],
            w.get("gamma"),
            w.get("beta"),
            float(cfg.get("epsilon", 1e-3)),
        )

    if class_name == "Activation":
        return _Activation(_activation(cfg.get("activation"), name))

    if class_name in ("MaxPooling2D", "AveragePooling2D"):
        pool = _pair(cfg.get("pool_size", 2), "pool_size", name)
        strides = cfg.get("strides")
        stride = pool if strides is None else _pair(strides, "strides", name)
        padding = str(cfg.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise ValueError(f"layer {name!r}: unsupported padding {padding!r}")
        return _Pool("max" if class_name == "MaxPooling2D" else "avg", pool, stride, padding)

    if class_name == "GlobalAveragePooling2D":
        return _GlobalAvgPool(bool(cfg.get("keepdims", False)))

    if class_name == "ZeroPadding2D":
        p = cfg.get("padding", 1)
        if isinstance(p, int):
            (top, bottom), (left, right) = (p, p), (p, p)
        elif all(isinstance(v, int) for v in p):
            (top, bottom), (left, right) = (p[0], p[0]), (p[1], p[1])
        else:
            (top, bottom), (left, right) = p
        return _ZeroPad((int(left), int(right), int(top), int(bottom)))

    if class_name == "Flatten":
        return _Flatten()
    if class_name in ("Dropout", "SpatialDropout2D"):
        return _Identity()
    if class_name == "Concatenate":
        return _Merge("concat", int(cfg.get("axis", -1)), name)
    return _Merge(class_name.lower(), name=name)  # Add, Multiply, Average, Maximum


# --------------------------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------------------------

_Ref = tuple[str, int]  # (layer name, node index): one call of a layer, one output tensor


@dataclass(frozen=True)
class _Call:
    layer: str
    node: int
    inputs: tuple[_Ref, ...]


def _tensor_refs(obj: Any) -> list[tuple[str, int, int]]:
    """(layer, node, tensor) references in a Keras 3 ``inbound_nodes`` args structure."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            hist = obj["config"]["keras_history"]
            return [(str(hist[0]), int(hist[1]), int(hist[2]))]
        return [r for v in obj.values() for r in _tensor_refs(v)]
    if isinstance(obj, list | tuple):
        return [r for v in obj for r in _tensor_refs(v)]
    return []


def _parse_inbound(layer: str, node: Any) -> tuple[_Ref, ...]:
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        refs = _tensor_refs(node.get("args", []))
    else:  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        refs = [(str(r[0]), int(r[1]), int(r[2])) for r in node]
    out = []
    for src, node_index, tensor_index in refs:
        if tensor_index != 0:
            raise ValueError(f"layer {layer!r}: multi-output inbound layer {src!r} not supported")
        out.append((src, node_index))
    return tuple(out)


def _endpoint(spec: Any, what: str) -> _Ref:
    if spec and isinstance(spec[0], str):  # Keras 3 may store a single endpoint unnested
        spec = [spec]
    if len(spec) != 1:
        raise ValueError(f"models with {len(spec)} {what} are not supported (need exactly 1)")
    name, node, tensor = spec[0][0], int(spec[0][1]), int(spec[0][2])
    if tensor != 0:
        raise ValueError(f"{what}: multi-output layer {name!r} not supported")
    return (str(name), node)


def _input_shape(cfg: dict) -> list[Any] | None:
    for key in ("batch_input_shape", "batch_shape"):
        if cfg.get(key) is not None:
            return list(cfg[key])
    return None


def _graph_from_config(
    model_cfg: dict,
) -> tuple[list[dict], dict[_Ref, _Call], str, list[Any], _Ref]:
    """Normalise Sequential / functional configs to (layers, calls, input name, shape, output)."""
    cls = model_cfg.get("class_name")
    body = model_cfg.get("config")
    if cls == "Sequential":
        layers = list(body if isinstance(body, list) else body["layers"])
        if not layers:
            raise ValueError("empty Sequential model")
        if layers[0]["class_name"] == "InputLayer":
            input_name = layers[0]["config"]["name"]
            shape = _input_shape(layers[0]["config"])
            layers = layers[1:]
        else:
            input_name = "__input__"
            shape = _input_shape(layers[0]["config"])
        calls: dict[_Ref, _Call] = {}
        prev: _Ref = (input_name, 0)
        all_layers = []
        for layer in layers:
            name = layer["config"]["name"]
            calls[(name, 0)] = _Call(name, 0, (prev,))
            prev = (name, 0)
            all_layers.append({**layer, "name": name})
        if shape is None:
            raise ValueError("Sequential model without an input shape")
        return all_layers, calls, input_name, shape, prev

    if cls not in ("Model", "Functional"):
        raise ValueError(f"unsupported model class {cls!r} (need Sequential or Model/Functional)")
    layers = [
        {**layer, "name": layer.get("name", layer["config"]["name"])} for layer in body["layers"]
    ]
    input_ref = _endpoint(body["input_layers"], "inputs")
    output_ref = _endpoint(body["output_layers"], "outputs")
    calls = {}
    shape = None
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            if layer["name"] == input_ref[0]:
                shape = _input_shape(layer["config"])
            continue
        for k, node in enumerate(layer.get("inbound_nodes", [])):
            calls[(layer["name"], k)] = _Call(layer["name"], k, _parse_inbound(layer["name"], node))
    if shape is None:
        raise ValueError(f"input layer {input_ref[0]!r} has no input shape")
    return layers, calls, input_ref[0], shape, output_ref


def _topological(calls: dict[_Ref, _Call], input_ref: _Ref, output: _Ref) -> list[_Call]:
    """The calls needed for ``output``, dependencies first (iterative DFS)."""
    order: list[_Call] = []
    done: set[_Ref] = {input_ref}
    active: set[_Ref] = set()
    stack: list[tuple[_Ref, bool]] = [(output, False)]
    while stack:
        ref, expanded = stack.pop()
        if ref in done:
            continue
        if expanded:
            active.discard(ref)
            done.add(ref)
            order.append(calls[ref])
            continue
        if ref not in calls:
            raise ValueError(f"graph refers to unknown layer call {ref[0]!r} (node {ref[1]})")
        if ref in active:
            raise ValueError(f"cycle in the layer graph at {ref[0]!r}")
        active.add(ref)
        stack.append((ref, True))
        stack.extend((dep, False) for dep in calls[ref].inputs if dep not in done)
    return order


class KerasGraphModule(nn.Module):
    """A Keras functional/Sequential graph executed in PyTorch (NCHW, float32, inference).

    Attributes: ``input_shape_hw`` ((H, W) from the Keras input layer, or None when the model
    accepts any size), ``input_channels``, ``output_activation`` ("softmax" when ``forward``
    returns the logits feeding a final softmax, else None), ``layer_types`` ((layer name, Keras
    class name) pairs in config order) and ``keras_version`` (as recorded in the file).
    """

    def __init__(
        self,
        layers: dict[str, _Layer],
        steps: list[tuple[str, str, tuple[str, ...], bool]],
        input_key: str,
        output_key: str,
        input_shape_hw: tuple[int, int] | None,
        input_channels: int,
        output_activation: str | None,
        layer_types: tuple[tuple[str, str], ...],
        keras_version: str | None,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleDict(layers)
        self._steps = steps  # (module key, output key, input keys, skip activation)
        self._input_key = input_key
        self._output_key = output_key
        self.input_shape_hw = input_shape_hw
        self.input_channels = input_channels
        self.output_activation = output_activation
        self.layer_types = layer_types
        self.keras_version = keras_version
        last_use: dict[str, int] = {}
        for i, (_, _, inputs, _) in enumerate(steps):
            for key in inputs:
                last_use[key] = i
        self._free_after = [
            tuple(k for k in dict.fromkeys(inputs) if last_use[k] == i and k != output_key)
            for i, (_, _, inputs, _) in enumerate(steps)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on NCHW input (already normalised); return logits (see class doc)."""
        if x.ndim != 4 or x.shape[1] != self.input_channels:
            raise ValueError(
                f"expected input of shape (N, {self.input_channels}, H, W), got {tuple(x.shape)}"
            )
        values: dict[str, torch.Tensor] = {self._input_key: x.to(torch.float32)}
        for (key, out, inputs, skip_act), free in zip(self._steps, self._free_after, strict=True):
            module = self.layers[key]
            args = [values[k] for k in inputs]
            values[out] = module.pre_activation(*args) if skip_act else module(*args)
            for k in free:
                del values[k]
        return values[self._output_key]


def _module_key(name: str, used: set[str]) -> str:
    key = name.replace(".", "_") or "layer"
    base, i = key, 1
    while key in used:
        i += 1
        key = f"{base}_{i}"
    used.add(key)
    return key


def load_keras_hdf5(path: str | Path) -> KerasGraphModule:
    """Load a Keras 2 HDF5 full-model file as a :class:`KerasGraphModule` in eval mode.

    Raises ValueError for files without a model config, unsupported layer types (naming the
    layer and its type), channels_first models and graphs with several inputs or outputs.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path}: no 'model_config' attribute (weights-only file?)")
        model_cfg = json.loads(_as_str(f.attrs["model_config"]))
        keras_version = _as_str(f.attrs["keras_version"]) if "keras_version" in f.attrs else None
        weights_root = f.get("model_weights", f)
        layers, calls, input_name, shape, output_ref = _graph_from_config(model_cfg)

        if len(shape) != 4 or shape[3] is None:
            raise ValueError(f"{path}: need an image input (N, H, W, C) with known C, got {shape}")
        hw = (int(shape[1]), int(shape[2])) if None not in shape[1:3] else None
        channels = int(shape[3])

        for layer in layers:  # fail fast, also for layers off the path to the output
            _check_supported(layer["class_name"], layer["name"])
        by_name = {layer["name"]: layer for layer in layers}
        input_ref: _Ref = (input_name, 0)
        order = _topological(calls, input_ref, output_ref)

        # A final softmax is stripped so that forward() returns its logits.
        output_activation = None
        out_call = calls.get(output_ref)
        out_key_ref = output_ref
        skip_activation: set[_Ref] = set()
        if out_call is not None:
            out_layer = by_name[out_call.layer]
            act = out_layer["config"].get("activation")
            if act == "softmax" and out_layer["class_name"] == "Activation":
                output_activation = "softmax"
                order = [c for c in order if (c.layer, c.node) != output_ref]
                out_key_ref = out_call.inputs[0]
            elif act == "softmax" and out_layer["class_name"] in _CONV_CLASSES:
                output_activation = "softmax"
                skip_activation.add(output_ref)

        modules: dict[str, _Layer] = {}
        keys: dict[str, str] = {}
        used: set[str] = set()
        for call in order:
            if call.layer in keys:
                continue
            layer = by_name[call.layer]
            key = _module_key(call.layer, used)
            modules[key] = _build_layer(
                layer["class_name"], call.layer, layer["config"], weights_root
            )
            keys[call.layer] = key

    def tkey(ref: _Ref) -> str:
        return f"{ref[0]}:{ref[1]}"

    steps = [
        (
            keys[c.layer],
            tkey((c.layer, c.node)),
            tuple(tkey(r) for r in c.inputs),
            (c.layer, c.node) in skip_activation,
        )
        for c in order
    ]
    module = KerasGraphModule(
        modules,
        steps,
        input_key=tkey(input_ref),
        output_key=tkey(out_key_ref),
        input_shape_hw=hw,
        input_channels=channels,
        output_activation=output_activation,
        layer_types=tuple((layer["name"], layer["class_name"]) for layer in layers),
        keras_version=keras_version,
    )
    return module.eval()
