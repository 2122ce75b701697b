"""Executable TFLite operators: one ``nn.Module`` step per supported builtin op.

Each step reads runtime tensors by their subgraph index (``inputs``) and produces one
(``output``); rank-4 tensors are NCHW. :data:`SUPPORTED_OPS` lists the builtin ops the graph
builder turns into steps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesym.classifiers.tflite.kernels import (
    activation,
    from_nhwc,
    nhwc_axis,
    spatial_pads,
    symmetric_quantize,
    to_nhwc,
)
from facesym.classifiers.tflite.reader import TFLiteOperator

SUPPORTED_OPS = frozenset(
    {
        "ADD", "MUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
        "MAX_POOL_2D", "FULLY_CONNECTED", "MEAN", "PAD", "PADV2", "RESHAPE", "DEQUANTIZE",
        "RELU", "RELU6", "LOGISTIC", "TANH", "SOFTMAX",
    }
)  # fmt: skip


class Step(nn.Module):
    """One executable operator: reads ``inputs`` (runtime tensor ids), writes ``output``."""

    def __init__(self, op: TFLiteOperator, inputs: Sequence[int]) -> None:
        super().__init__()
        self.op_name = op.name
        self.op_index = op.index
        self.inputs = list(inputs)
        self.output = op.outputs[0]

    def extra_repr(self) -> str:
        return f"#{self.op_index} {self.op_name}"


class WeightedStep(Step):
    """A step with float32 weights and bias, and optional hybrid int8 weights to emulate."""

    def _set_weights(self, weight: np.ndarray, bias: np.ndarray | None,
                     hybrid: HybridWeights | None) -> None:
        self.register_buffer("weight", torch.from_numpy(weight.astype(np.float32)))
        b = np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32)
        self.register_buffer("bias", torch.from_numpy(b))
        self.hybrid = hybrid
        self.emulate = False


class HybridWeights(nn.Module):
    """Int8 weights of a hybrid layer plus their scales (for the emulated TFLite path)."""

    def __init__(self, q: np.ndarray, scale: np.ndarray) -> None:
        super().__init__()
        # Sums of K products of int8 values (|q| ≤ 127) are exact in float32 while
        # K·127² < 2²⁴: then the (much faster) float32 kernels give the int32 result exactly.
        fan_in = int(np.prod(q.shape[1:]))
        dtype = np.float32 if fan_in * 127 * 127 < 2**24 else np.float64
        self.register_buffer("q", torch.from_numpy(q.astype(dtype)), persistent=False)
        self.register_buffer("scale", torch.from_numpy(scale.astype(np.float32)), persistent=False)

    @property
    def per_channel(self) -> bool:
        return self.scale.numel() > 1


class Conv(WeightedStep):
    """CONV_2D / DEPTHWISE_CONV_2D (weights held as a torch conv kernel, OIHW)."""

    def __init__(
        self, op: TFLiteOperator, inp: int, weight: np.ndarray, bias: np.ndarray | None,
        groups: int, hybrid: HybridWeights | None,
    ) -> None:  # fmt: skip
        super().__init__(op, [inp])
        o = op.options
        self.groups = groups
        self.stride = (o["stride_h"], o["stride_w"])
        self.dilation = (o["dilation_h_factor"], o["dilation_w_factor"])
        self.padding = o["padding"]
        self.act = o["fused_activation_function"]
        self.kernel = (int(weight.shape[2]), int(weight.shape[3]))
        self._set_weights(weight, bias, hybrid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = spatial_pads(x, self.padding, self.kernel, self.stride, self.dilation)
        if self.emulate and self.hybrid is not None:
            return self._emulated(x, pads)
        if any(pads):
            x = F.pad(x, pads)
        y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return activation(y, self.act)

    def _emulated(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        # TFLite EvalHybrid: per-image symmetric int8 input, int32 accumulation,
        # output = float(acc) * (input_scale * weight_scale) + bias, then the activation.
        # Zero padding is exact: 0.0 quantises to 0.
        n = x.shape[0]
        q, s_in = symmetric_quantize(x, n)
        q = q.to(self.hybrid.q.dtype)
        if any(pads):
            q = F.pad(q, pads)
        acc = F.conv2d(q, self.hybrid.q, None, self.stride, 0, self.dilation, self.groups)
        scale = (s_in * self.hybrid.scale).view(n, 1, 1, 1)
        y = acc.to(torch.float32) * scale + self.bias.view(1, -1, 1, 1)
        return activation(y, self.act)


class FullyConnected(WeightedStep):
    """FULLY_CONNECTED: rows of the (NHWC-flattened) input times ``weight.T`` plus bias."""

    def __init__(
        self, op: TFLiteOperator, inp: int, in_rank: int, out_rank: int, weight: np.ndarray,
        bias: np.ndarray | None, hybrid: HybridWeights | None,
    ) -> None:  # fmt: skip
        super().__init__(op, [inp])
        o = op.options
        if o.get("weights_format", 0) != 0:
            raise ValueError("FULLY_CONNECTED: only the DEFAULT weights_format is supported")
        self.act = o["fused_activation_function"]
        self.keep_num_dims = bool(o["keep_num_dims"])
        self.asymmetric = bool(o["asymmetric_quantize_inputs"])
        self.in_rank = in_rank
        self.out_rank = out_rank
        self._set_weights(weight, bias, hybrid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = to_nhwc(x) if self.in_rank == 4 else x
        lead = xn.shape[:-1]
        rows = xn.reshape(-1, self.weight.shape[1])
        if self.emulate and self.hybrid is not None:
            y = self._emulated(rows)
        else:
            y = F.linear(rows, self.weight, self.bias)
        y = activation(y, self.act)
        if self.keep_num_dims:
            y = y.reshape(*lead, y.shape[-1])
            return from_nhwc(y) if self.out_rank == 4 else y
        return y

    def _emulated(self, rows: torch.Tensor) -> torch.Tensor:
        # TFLite fully_connected EvalHybrid: per-row symmetric int8 input, int32 dot
        # products, output = bias + float(acc) * scale.
        n = rows.shape[0]
        q, s_in = symmetric_quantize(rows, n)
        acc = q.to(self.hybrid.q.dtype) @ self.hybrid.q.T
        scale = (s_in.view(n, 1) * self.hybrid.scale.view(1, -1)).to(torch.float32)
        return self.bias.view(1, -1) + acc.to(torch.float32) * scale


class Pool(Step):
    """AVERAGE_POOL_2D / MAX_POOL_2D with TFLite padding semantics."""

    def __init__(self, op: TFLiteOperator, inp: int) -> None:
        super().__init__(op, [inp])
        o = op.options
        self.kind = "avg" if op.name == "AVERAGE_POOL_2D" else "max"
        self.kernel = (o["filter_height"], o["filter_width"])
        self.stride = (o["stride_h"], o["stride_w"])
        self.padding = o["padding"]
        self.act = o["fused_activation_function"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = spatial_pads(x, self.padding, self.kernel, self.stride)
        if self.kind == "max":
            xp = F.pad(x, pads, value=-math.inf) if any(pads) else x
            y = F.max_pool2d(xp, self.kernel, self.stride)
        elif any(pads):
            total = F.avg_pool2d(F.pad(x, pads), self.kernel, self.stride, divisor_override=1)
            ones = torch.ones((1, 1, x.shape[2], x.shape[3]), dtype=x.dtype, device=x.device)
            count = F.avg_pool2d(F.pad(ones, pads), self.kernel, self.stride, divisor_override=1)
            y = total / count
        else:
            y = F.avg_pool2d(x, self.kernel, self.stride)
        return activation(y, self.act)


class Elementwise(Step):
    """ADD / MUL of two operands (runtime tensors or constants) with a fused activation."""

    def __init__(
        self, op: TFLiteOperator, operands: list[int | torch.Tensor], out_rank: int
    ) -> None:
        runtime = [v for v in operands if isinstance(v, int)]
        super().__init__(op, runtime)
        self.act = op.options.get("fused_activation_function", "NONE")
        self.slots: list[int] = []  # -1: runtime operand, k >= 0: constant k
        consts = []
        for v in operands:
            if isinstance(v, int):
                self.slots.append(-1)
            else:
                self.slots.append(len(consts))
                consts.append(v)
        for k, c in enumerate(consts):
            if out_rank == 4:  # broadcast in NHWC terms, then move to NCHW
                c = c.reshape((1,) * (4 - c.dim()) + tuple(c.shape)).permute(0, 3, 1, 2)
            self.register_buffer(f"const{k}", c.contiguous())

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        it = iter(xs)
        a, b = (next(it) if s < 0 else getattr(self, f"const{s}") for s in self.slots)
        y = a + b if self.op_name == "ADD" else a * b
        return activation(y, self.act)


class Unary(Step):
    """RELU / RELU6 / LOGISTIC / TANH."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op_name == "LOGISTIC":
            return torch.sigmoid(x)
        return activation(x, self.op_name)


class Softmax(Step):
    """SOFTMAX over the last (NHWC) axis with ``beta``."""

    def __init__(self, op: TFLiteOperator, inp: int, rank: int) -> None:
        super().__init__(op, [inp])
        self.beta = float(op.options.get("beta", 1.0))
        self.dim = 1 if rank == 4 else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * self.beta, dim=self.dim)


class Pad(Step):
    """PAD / PADV2 with constant paddings (NHWC order in the file)."""

    def __init__(self, op: TFLiteOperator, inp: int, paddings: np.ndarray, value: float) -> None:
        super().__init__(op, [inp])
        rank = paddings.shape[0]
        order = [0, 3, 1, 2] if rank == 4 else list(range(rank))  # runtime dim -> NHWC axis
        pads: list[int] = []
        for axis in reversed(order):  # F.pad: last runtime dimension first
            pads += [int(paddings[axis, 0]), int(paddings[axis, 1])]
        self.pads = tuple(pads)
        self.value = float(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads, value=self.value)


class Reshape(Step):
    """RESHAPE (in NHWC element order); the leading dimension follows the input batch."""

    def __init__(self, op: TFLiteOperator, inp: int, in_rank: int, target: Sequence[int]) -> None:
        super().__init__(op, [inp])
        self.in_rank = in_rank
        self.target = [int(v) for v in target]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = to_nhwc(x) if self.in_rank == 4 else x
        shape = list(self.target)
        if shape and -1 not in shape[1:]:
            shape[0] = -1
        elif shape and shape[0] != -1:
            shape[0] = x.shape[0]
        y = xn.reshape(shape)
        return from_nhwc(y) if y.dim() == 4 else y


class Mean(Step):
    """MEAN over constant NHWC axes."""

    def __init__(self, op: TFLiteOperator, inp: int, in_rank: int, axes: Sequence[int]) -> None:
        super().__init__(op, [inp])
        self.in_rank = in_rank
        self.axes = sorted({int(a) % in_rank for a in axes})
        self.keep = bool(op.options.get("keep_dims", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = to_nhwc(x) if self.in_rank == 4 else x
        y = xn.mean(dim=self.axes, keepdim=self.keep)
        return from_nhwc(y) if y.dim() == 4 else y


class Concat(Step):
    """CONCATENATION of runtime tensors along an NHWC axis."""

    def __init__(self, op: TFLiteOperator, inputs: Sequence[int], rank: int) -> None:
        super().__init__(op, inputs)
        axis = op.options["axis"] % rank
        self.dim = nhwc_axis(axis) if rank == 4 else axis
        self.act = op.options["fused_activation_function"]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return activation(torch.cat(xs, dim=self.dim), self.act)
