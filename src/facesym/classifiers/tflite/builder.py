"""The graph builder: the operators of a :class:`TFLiteGraph` → a list of executable steps.

Constant subgraphs (DEQUANTIZE of constant weights) are folded at build time; 8-bit weights
that feed CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED directly become hybrid weights
(int8 with zero point 0, see :mod:`facesym.classifiers.tflite`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from facesym.classifiers.tflite.ops import (
    Concat,
    Conv,
    Elementwise,
    FullyConnected,
    HybridWeights,
    Mean,
    Pad,
    Pool,
    Reshape,
    Softmax,
    Step,
    Unary,
)
from facesym.classifiers.tflite.reader import TFLiteGraph, TFLiteOperator, TFLiteTensor


def dequantize(t: TFLiteTensor) -> np.ndarray:
    """``(q - zero_point) * scale`` of a constant (per tensor or along the quantised axis)."""
    assert t.data is not None
    if t.type_name == "FLOAT16":
        return t.data.astype(np.float32)
    if not t.is_quantized:
        raise ValueError(f"DEQUANTIZE: tensor {t.name!r} has no quantisation parameters")
    shape = [1] * t.data.ndim
    if t.scale.size > 1:
        shape[t.quantized_dimension] = -1
    scale = t.scale.astype(np.float32).reshape(shape)
    zp = t.zero_point.astype(np.int32).reshape(shape)
    # float32(q - zp) * float32(scale) rounds once, exactly like TFLite's
    # float(double(scale) * (q - zp)).
    return (t.data.astype(np.int32) - zp).astype(np.float32) * scale


def hybrid_int8(t: TFLiteTensor) -> np.ndarray:
    """Hybrid weight bytes read as int8 (zero point 0), as TFLite's hybrid kernels do."""
    assert t.data is not None
    return t.data.view(np.int8) if t.data.dtype == np.uint8 else t.data.astype(np.int8)



class GraphBuilder:
    """Turns the operators of ``graph`` into :class:`Step` modules, in graph order.

    Holds the raw constants of the file and the float constants folded at build time
    (``folded``); :meth:`build` returns the steps, :meth:`is_const` answers for any tensor.
    """

    def __init__(self, graph: TFLiteGraph) -> None:
        self.graph = graph
        self.tensors = graph.tensors
        self.consts = {t.index: t.data for t in graph.tensors if t.data is not None}
        self.folded: dict[int, np.ndarray] = {}
        self.rank = {t.index: len(t.shape) for t in graph.tensors}
        self._builders: dict[str, Callable[[TFLiteOperator, int], Step]] = {
            "CONV_2D": self._conv,
            "DEPTHWISE_CONV_2D": self._conv,
            "FULLY_CONNECTED": self._fully_connected,
            "AVERAGE_POOL_2D": self._pool,
            "MAX_POOL_2D": self._pool,
            "ADD": self._elementwise,
            "MUL": self._elementwise,
            "RELU": self._unary,
            "RELU6": self._unary,
            "LOGISTIC": self._unary,
            "TANH": self._unary,
            "SOFTMAX": self._softmax,
            "PAD": self._pad,
            "PADV2": self._pad,
            "RESHAPE": self._reshape,
            "MEAN": self._mean,
            "CONCATENATION": self._concat,
        }

    # -- constants -------------------------------------------------------------------------

    def is_const(self, i: int) -> bool:
        """Whether tensor ``i`` is a constant of the file or folded at build time."""
        return i in self.consts or i in self.folded

    def const(self, i: int) -> np.ndarray:
        """The value of constant tensor ``i``; ValueError if it is a runtime tensor."""
        if i in self.folded:
            return self.folded[i]
        if i in self.consts:
            return self.consts[i]
        raise ValueError(f"tensor {self.tensors[i].name!r} must be constant here")

    def float_const(self, i: int) -> np.ndarray:
        """Constant tensor ``i`` as float32 (float16/float32 or folded; else ValueError)."""
        if i in self.folded:
            return self.folded[i]
        t = self.tensors[i]
        if t.type_name in ("FLOAT32", "FLOAT16"):
            return self.const(i).astype(np.float32)
        raise ValueError(f"tensor {t.name!r}: expected a float constant, got {t.type_name}")

    def weights(self, i: int, op: TFLiteOperator) -> tuple[np.ndarray, np.ndarray | None]:
        """Float weights (file layout) of a conv/dense op; int8 values too if hybrid."""
        if not self.is_const(i):
            raise ValueError(f"{op.name} #{op.index}: non-constant weights are unsupported")
        t = self.tensors[i]
        if i not in self.folded and t.type_name in ("UINT8", "INT8"):
            if not t.is_quantized:
                raise ValueError(f"{op.name} #{op.index}: 8-bit weights without scales")
            q = hybrid_int8(t)
            shape = [1] * q.ndim
            if t.scale.size > 1:
                shape[t.quantized_dimension] = -1
            w = q.astype(np.float32) * t.scale.astype(np.float32).reshape(shape)
            return w, q
        return self.float_const(i), None

    def bias_of(self, op: TFLiteOperator) -> np.ndarray | None:
        """The optional float bias (third input) of a conv/dense op."""
        if len(op.inputs) < 3 or op.inputs[2] < 0:
            return None
        return self.float_const(op.inputs[2])

    def check_float_activation(self, i: int, op: TFLiteOperator) -> None:
        """Refuse a runtime tensor that is not float32."""
        t = self.tensors[i]
        if t.type_name != "FLOAT32":
            raise ValueError(
                f"{op.name} #{op.index}: activation {t.name!r} is "
                f"{t.type_name}; only float32 activations are supported"
            )

    # -- building --------------------------------------------------------------------------

    def build(self) -> list[Step]:
        """One step per runtime operator, in graph order (DEQUANTIZE of constants folded)."""
        steps: list[Step] = []
        for op in self.graph.operators:
            if op.name == "DEQUANTIZE":
                self._fold_dequantize(op)
                continue
            x = self._data_input(op)
            builder = self._builders.get(op.name)
            if builder is None:  # pragma: no cover - guarded by SUPPORTED_OPS
                raise ValueError(f"unsupported TFLite op: {op.name}")
            steps.append(builder(op, x))
        return steps

    def _fold_dequantize(self, op: TFLiteOperator) -> None:
        src = op.inputs[0]
        if not self.is_const(src):
            raise ValueError(f"DEQUANTIZE #{op.index}: only constant inputs supported")
        self.folded[op.outputs[0]] = dequantize(self.tensors[src])

    def _data_input(self, op: TFLiteOperator) -> int:
        """Check the op's single output and its first (data) input; return that input."""
        if len(op.outputs) != 1:
            raise ValueError(f"{op.name} #{op.index}: expected one output")
        x = op.inputs[0]
        if not self.is_const(x):
            self.check_float_activation(x, op)
        elif op.name not in ("ADD", "MUL"):
            raise ValueError(f"{op.name} #{op.index}: constant data input is unsupported")
        return x

    def _conv(self, op: TFLiteOperator, x: int) -> Step:
        w, q = self.weights(op.inputs[1], op)
        if op.name == "CONV_2D":  # [O, KH, KW, I] -> OIHW
            perm = (0, 3, 1, 2)
            groups = max(self.tensors[x].shape[3] // w.shape[3], 1)
        else:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], groups = C
            perm = (3, 0, 1, 2)
            groups = self.tensors[x].shape[3]
        hyb = None
        if q is not None:
            hyb = HybridWeights(q.transpose(perm), self.tensors[op.inputs[1]].scale)
        kernel = np.ascontiguousarray(w.transpose(perm))
        return Conv(op, x, kernel, self.bias_of(op), groups, hyb)

    def _fully_connected(self, op: TFLiteOperator, x: int) -> Step:
        w, q = self.weights(op.inputs[1], op)
        hyb = None if q is None else HybridWeights(q, self.tensors[op.inputs[1]].scale)
        out_rank = self.rank[op.outputs[0]]
        return FullyConnected(op, x, self.rank[x], out_rank, w, self.bias_of(op), hyb)

    def _pool(self, op: TFLiteOperator, x: int) -> Step:
        return Pool(op, x)

    def _elementwise(self, op: TFLiteOperator, x: int) -> Step:
        operands: list[int | torch.Tensor] = []
        for i in op.inputs[:2]:
            if self.is_const(i):
                operands.append(torch.from_numpy(np.array(self.float_const(i), np.float32)))
            else:
                self.check_float_activation(i, op)
                operands.append(i)
        if all(not isinstance(v, int) for v in operands):
            raise ValueError(f"{op.name} #{op.index}: both operands constant")
        return Elementwise(op, operands, self.rank[op.outputs[0]])

    def _unary(self, op: TFLiteOperator, x: int) -> Step:
        return Unary(op, [x])

    def _softmax(self, op: TFLiteOperator, x: int) -> Step:
        return Softmax(op, x, self.rank[x])

    def _pad(self, op: TFLiteOperator, x: int) -> Step:
        value = 0.0
        if op.name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = float(np.asarray(self.float_const(op.inputs[2])).reshape(-1)[0])
        return Pad(op, x, np.asarray(self.const(op.inputs[1])).reshape(-1, 2), value)

    def _reshape(self, op: TFLiteOperator, x: int) -> Step:
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and self.is_const(op.inputs[1]):
            target = [int(v) for v in np.asarray(self.const(op.inputs[1])).reshape(-1)]
        elif op.options.get("new_shape") is not None:
            target = list(op.options["new_shape"])
        else:
            target = list(self.tensors[op.outputs[0]].shape)
        return Reshape(op, x, self.rank[x], target)

    def _mean(self, op: TFLiteOperator, x: int) -> Step:
        axes = np.asarray(self.const(op.inputs[1])).reshape(-1).tolist()
        return Mean(op, x, self.rank[x], axes)

    def _concat(self, op: TFLiteOperator, x: int) -> Step:
        if any(self.is_const(i) for i in op.inputs):
            raise ValueError(f"CONCATENATION #{op.index}: constant operands unsupported")
        return Concat(op, op.inputs, self.rank[op.outputs[0]])
