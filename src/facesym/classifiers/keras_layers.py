"""Keras layers as PyTorch modules, and their construction from HDF5 layer configs and weights.

Used by :mod:`facesym.classifiers.keras_hdf5`, whose docstring states the conventions (NCHW
inside, TensorFlow's ``'same'`` padding, inference-only float32).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesym.classifiers.tf_padding import same_pad4

__all__ = ["SUPPORTED_LAYERS", "Layer", "build_layer", "check_supported"]

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
CONV_CLASSES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Dense")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def as_str(value: Any) -> str:
    """An HDF5 attribute (bytes or str) as str."""
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


class Layer(nn.Module):
    """Base: ``forward = activation(pre_activation(...))``."""

    activation: str = "linear"

    def pre_activation(self, *xs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _ACTIVATIONS[self.activation](self.pre_activation(*xs))


class _Conv(Layer):
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


class _Dense(Layer):
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


class _BatchNorm(Layer):
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


class _Activation(Layer):
    def __init__(self, activation: str) -> None:
        super().__init__()
        self.activation = activation

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Pool(Layer):
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


class _GlobalAvgPool(Layer):
    def __init__(self, keepdims: bool) -> None:
        super().__init__()
        self.keepdims = keepdims

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=self.keepdims)


class _ZeroPad(Layer):
    def __init__(self, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.pads = pads  # (left, right, top, bottom)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads)


class _Flatten(Layer):
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:  # flatten in NHWC order so that a following Dense sees Keras' layout
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


class _Identity(Layer):
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Merge(Layer):
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
    names = [as_str(n) for n in group.attrs.get("weight_names", [])]
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


def check_supported(class_name: str, name: str) -> None:
    """Raise ValueError naming layer ``name`` if its class is not in SUPPORTED_LAYERS."""
    if class_name not in SUPPORTED_LAYERS:
        raise ValueError(
            f"layer {name!r} has unsupported type {class_name!r}; "
            f"supported: {', '.join(SUPPORTED_LAYERS)}"
        )


def build_layer(class_name: str, name: str, cfg: dict, weights_root: h5py.Group) -> Layer:
    """Build the torch module for one Keras layer config."""
    check_supported(class_name, name)
    if class_name == "InputLayer":
        raise ValueError(f"layer {name!r}: InputLayer in the middle of the graph")
    _check_channels_last(cfg, name)

    if class_name in CONV_CLASSES:
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
