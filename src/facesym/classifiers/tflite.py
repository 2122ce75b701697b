"""TensorFlow Lite flatbuffers (``.tflite``) executed as PyTorch modules.

:func:`read_tflite` parses the flatbuffer with a small reader written against the public TFLite
schema (``tensorflow/lite/schema/schema.fbs``; no TensorFlow, no ``flatbuffers`` package) into a
:class:`TFLiteGraph`; :func:`load_tflite` turns the first subgraph into a :class:`TFLiteModule`
that runs it in PyTorch. It was written for the facex MobileNetV2 expression model, a TOCO
"hybrid" (dynamic-range) model: float32 activations, 1x1 convolutions and the final dense layer
with 8-bit weights, depthwise kernels stored as 8-bit behind ``DEQUANTIZE`` ops.

Supported builtin ops: ADD, MUL, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D,
MAX_POOL_2D, FULLY_CONNECTED, MEAN, PAD, PADV2, RESHAPE, DEQUANTIZE, RELU, RELU6, LOGISTIC,
TANH, SOFTMAX, with the fused activations NONE, RELU, RELU_N1_TO_1, RELU6 and TANH. Any other
op raises :class:`ValueError` naming it when the model is loaded.

Conventions:

* Activations must be float32 (float and hybrid models); fully quantised graphs are refused.
* Rank-4 tensors are NCHW inside the module (TFLite is NHWC); layout-dependent ops (RESHAPE,
  FULLY_CONNECTED on rank-4 input, MEAN, CONCATENATION, PAD, broadcasting operands) translate.
  ``forward`` takes NCHW rank-4 inputs and returns NCHW rank-4 outputs.
* ``SAME`` padding follows TFLite: ``out = ceil(n / s)``, total padding
  ``max((out - 1) * s + k_eff - n, 0)``, ``total // 2`` before and the rest after (the extra
  row/column goes bottom/right). Average pooling divides by the number of unpadded inputs.
* 8-bit weights that feed CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED directly are *hybrid*
  weights. TFLite's hybrid kernels read their bytes as int8 with zero point 0 whatever the
  declared type (UINT8 in TOCO files), scaled by the tensor's (per-tensor or per-channel) scale;
  so does this module. Weights behind a DEQUANTIZE op use the stored zero point:
  ``(q - zero_point) * scale``. DEQUANTIZE of constants is folded at load time.
* Hybrid kernels in TFLite also quantise their float *input* on the fly: CONV_2D with
  per-tensor weights per image (``EvalHybrid``), FULLY_CONNECTED per row, symmetric int8 with
  ``s = max|x| / 127`` and ``q = round(x * (127 / max|x|))`` (ties away from zero), then an
  int8 x int8 -> int32 product rescaled as ``float(acc) * (s * weight_scale) + bias``. By
  default this module computes those layers in float with the dequantised weights instead
  (the smooth, intended function). ``emulate_hybrid=True`` reproduces the TFLite arithmetic
  for per-tensor hybrid CONV_2D / FULLY_CONNECTED weights: the same float32 quantisation,
  exact integer accumulation (in float64), the float32 rescale and bias add. Given the same
  layer input it matches LiteRT to float round-off. End to end it does not match to that
  level, and nothing can without bit-identical float kernels: a last-ulp difference in a
  float layer flips the int8 rounding of a few elements, and the flips cascade through the
  following hybrid layers. On the facex model LiteRT's own kernel sets (XNNPACK, builtin,
  reference) disagree by up to ~0.1 in probability for some inputs; the float path differs
  from LiteRT by up to ~0.2 (systematically, not only by that noise).
* A graph whose (single) output comes from SOFTMAX returns the softmax input (times ``beta``),
  i.e. logits, and has ``output_activation = "softmax"``; otherwise ``output_activation`` is
  ``None`` and the graph output is returned as is.
* Batch sizes other than the one baked into the file work: RESHAPE targets get their leading
  dimension from the input.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesym.classifiers.tf_padding import same_pads

__all__ = [
    "TFLiteGraph",
    "TFLiteModule",
    "TFLiteOperator",
    "TFLiteTensor",
    "SUPPORTED_OPS",
    "load_tflite",
    "read_tflite",
]

# --------------------------------------------------------------------------------------------
# schema constants (tensorflow/lite/schema/schema.fbs)
# --------------------------------------------------------------------------------------------

BUILTIN_OPS: dict[int, str] = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 7: "EMBEDDING_LOOKUP", 8: "FLOOR",
    9: "FULLY_CONNECTED", 10: "HASHTABLE_LOOKUP", 11: "L2_NORMALIZATION", 12: "L2_POOL_2D",
    13: "LOCAL_RESPONSE_NORMALIZATION", 14: "LOGISTIC", 15: "LSH_PROJECTION", 16: "LSTM",
    17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 20: "RELU_N1_TO_1", 21: "RELU6", 22: "RESHAPE",
    23: "RESIZE_BILINEAR", 24: "RNN", 25: "SOFTMAX", 26: "SPACE_TO_DEPTH", 27: "SVDF",
    28: "TANH", 29: "CONCAT_EMBEDDINGS", 30: "SKIP_GRAM", 31: "CALL", 32: "CUSTOM",
    33: "EMBEDDING_LOOKUP_SPARSE", 34: "PAD", 35: "UNIDIRECTIONAL_SEQUENCE_RNN", 36: "GATHER",
    37: "BATCH_TO_SPACE_ND", 38: "SPACE_TO_BATCH_ND", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB",
    42: "DIV", 43: "SQUEEZE", 44: "UNIDIRECTIONAL_SEQUENCE_LSTM", 45: "STRIDED_SLICE",
    46: "BIDIRECTIONAL_SEQUENCE_RNN", 47: "EXP", 48: "TOPK_V2", 49: "SPLIT", 50: "LOG_SOFTMAX",
    51: "DELEGATE", 52: "BIDIRECTIONAL_SEQUENCE_LSTM", 53: "CAST", 54: "PRELU", 55: "MAXIMUM",
    56: "ARG_MAX", 57: "MINIMUM", 58: "LESS", 59: "NEG", 60: "PADV2", 61: "GREATER",
    62: "GREATER_EQUAL", 63: "LESS_EQUAL", 64: "SELECT", 65: "SLICE", 66: "SIN",
    67: "TRANSPOSE_CONV", 68: "SPARSE_TO_DENSE", 69: "TILE", 70: "EXPAND_DIMS", 71: "EQUAL",
    72: "NOT_EQUAL", 73: "LOG", 74: "SUM", 75: "SQRT", 76: "RSQRT", 77: "SHAPE", 78: "POW",
    79: "ARG_MIN", 80: "FAKE_QUANT", 81: "REDUCE_PROD", 82: "REDUCE_MAX", 83: "PACK",
    84: "LOGICAL_OR", 85: "ONE_HOT", 86: "LOGICAL_AND", 87: "LOGICAL_NOT", 88: "UNPACK",
    89: "REDUCE_MIN", 90: "FLOOR_DIV", 91: "REDUCE_ANY", 92: "SQUARE", 93: "ZEROS_LIKE",
    94: "FILL", 95: "FLOOR_MOD", 96: "RANGE", 97: "RESIZE_NEAREST_NEIGHBOR", 98: "LEAKY_RELU",
    99: "SQUARED_DIFFERENCE", 100: "MIRROR_PAD", 101: "ABS", 102: "SPLIT_V", 103: "UNIQUE",
    104: "CEIL", 105: "REVERSE_V2", 106: "ADD_N", 107: "GATHER_ND", 108: "COS", 109: "WHERE",
    110: "RANK", 111: "ELU", 112: "REVERSE_SEQUENCE", 113: "MATRIX_DIAG", 114: "QUANTIZE",
    115: "MATRIX_SET_DIAG", 116: "ROUND", 117: "HARD_SWISH", 118: "IF", 119: "WHILE",
    120: "NON_MAX_SUPPRESSION_V4", 121: "NON_MAX_SUPPRESSION_V5", 122: "SCATTER_ND",
    123: "SELECT_V2", 124: "DENSIFY", 125: "SEGMENT_SUM", 126: "BATCH_MATMUL",
}  # fmt: skip

# TensorType -> numpy dtype (None: not representable / not supported here)
TENSOR_TYPES: dict[int, tuple[str, np.dtype | None]] = {
    0: ("FLOAT32", np.dtype("<f4")),
    1: ("FLOAT16", np.dtype("<f2")),
    2: ("INT32", np.dtype("<i4")),
    3: ("UINT8", np.dtype("u1")),
    4: ("INT64", np.dtype("<i8")),
    5: ("STRING", None),
    6: ("BOOL", np.dtype("?")),
    7: ("INT16", np.dtype("<i2")),
    8: ("COMPLEX64", np.dtype("<c8")),
    9: ("INT8", np.dtype("i1")),
    10: ("FLOAT64", np.dtype("<f8")),
}

_PADDING = {0: "SAME", 1: "VALID"}
_FUSED = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# BuiltinOptions union member -> (table name, [(field name, kind, default), ...]) in schema
# field order. Kinds: b int8, B uint8, i int32, f float32, ? bool, [i int32 vector.
_OPTIONS: dict[int, tuple[str, list[tuple[str, str, Any]]]] = {
    1: ("Conv2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("fused_activation_function", "b", 0), ("dilation_w_factor", "i", 1),
        ("dilation_h_factor", "i", 1),
    ]),
    2: ("DepthwiseConv2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("depth_multiplier", "i", 0), ("fused_activation_function", "b", 0),
        ("dilation_w_factor", "i", 1), ("dilation_h_factor", "i", 1),
    ]),
    5: ("Pool2DOptions", [
        ("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
        ("filter_width", "i", 0), ("filter_height", "i", 0),
        ("fused_activation_function", "b", 0),
    ]),
    8: ("FullyConnectedOptions", [
        ("fused_activation_function", "b", 0), ("weights_format", "b", 0),
        ("keep_num_dims", "?", False), ("asymmetric_quantize_inputs", "?", False),
    ]),
    9: ("SoftmaxOptions", [("beta", "f", 0.0)]),
    10: ("ConcatenationOptions", [("axis", "i", 0), ("fused_activation_function", "b", 0)]),
    11: ("AddOptions", [("fused_activation_function", "b", 0), ("pot_scale_int16", "?", True)]),
    17: ("ReshapeOptions", [("new_shape", "[i", None)]),
    21: ("MulOptions", [("fused_activation_function", "b", 0)]),
    22: ("PadOptions", []),
    27: ("ReducerOptions", [("keep_dims", "?", False)]),
}  # fmt: skip

_SCALAR_FMT = {"b": "<b", "B": "<B", "i": "<i", "f": "<f", "?": "<?"}


# --------------------------------------------------------------------------------------------
# minimal flatbuffer reader
# --------------------------------------------------------------------------------------------


class _Table:
    """A flatbuffer table at byte position ``pos`` of ``buf`` (read-only accessors)."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len")

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self._vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vt_len = struct.unpack_from("<H", buf, self._vt)[0]

    def _offset(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot + 2 > self._vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self._vt + slot)[0]

    def has(self, index: int) -> bool:
        return self._offset(index) != 0

    def scalar(self, index: int, fmt: str, default: Any) -> Any:
        off = self._offset(index)
        return struct.unpack_from(fmt, self.buf, self.pos + off)[0] if off else default

    def _target(self, index: int) -> int:
        off = self._offset(index)
        if not off:
            return 0
        p = self.pos + off
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, index: int) -> _Table | None:
        p = self._target(index)
        return _Table(self.buf, p) if p else None

    def _vector(self, index: int) -> tuple[int, int]:
        p = self._target(index)
        if not p:
            return 0, 0
        return struct.unpack_from("<I", self.buf, p)[0], p + 4

    def vector(self, index: int, dtype: str) -> np.ndarray | None:
        n, p = self._vector(index)
        if not p:
            return None
        return np.frombuffer(self.buf, dtype=np.dtype(dtype), count=n, offset=p)

    def tables(self, index: int) -> list[_Table]:
        n, p = self._vector(index)
        out = []
        for k in range(n):
            q = p + 4 * k
            out.append(_Table(self.buf, q + struct.unpack_from("<I", self.buf, q)[0]))
        return out

    def string(self, index: int) -> str | None:
        n, p = self._vector(index)
        return bytes(self.buf[p : p + n]).decode("utf-8") if p else None


# --------------------------------------------------------------------------------------------
# parsed graph
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of a subgraph: static shape, type, constant data and quantisation."""

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    data: np.ndarray | None  # constant contents in the declared type and shape, else None
    scale: np.ndarray | None  # float32 quantisation scales (1 or one per channel)
    zero_point: np.ndarray | None  # int64 zero points
    quantized_dimension: int = 0

    @property
    def is_constant(self) -> bool:
        """True when the tensor has a constant buffer."""
        return self.data is not None

    @property
    def is_quantized(self) -> bool:
        """True when the tensor carries affine quantisation scales."""
        return self.scale is not None and self.scale.size > 0


@dataclass(frozen=True)
class TFLiteOperator:
    """One operator: builtin name, input/output tensor indices (-1: absent), options."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TFLiteGraph:
    """The first subgraph of a model plus model-level metadata."""

    version: int
    description: str
    tensors: list[TFLiteTensor]
    operators: list[TFLiteOperator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_count: int = 1

    @property
    def op_names(self) -> list[str]:
        """Sorted distinct operator names of the graph."""
        return sorted({op.name for op in self.operators})


def _read_options(op: _Table, op_name: str) -> dict[str, Any]:
    kind = op.scalar(3, "<B", 0)
    if kind == 0:
        return {}
    if kind not in _OPTIONS:
        # An op we do not execute anyway is refused later by name; options are irrelevant.
        return {"_options_type": kind}
    table = op.table(4)
    _, spec = _OPTIONS[kind]
    out: dict[str, Any] = {}
    for i, (name, fkind, default) in enumerate(spec):
        if table is None:
            out[name] = default
        elif fkind == "[i":
            vec = table.vector(i, "<i4")
            out[name] = None if vec is None else [int(v) for v in vec]
        else:
            out[name] = table.scalar(i, _SCALAR_FMT[fkind], default)
    if "padding" in out:
        out["padding"] = _PADDING.get(out["padding"], str(out["padding"]))
    if "fused_activation_function" in out:
        code = out["fused_activation_function"]
        out["fused_activation_function"] = _FUSED.get(code, str(code))
    return out


def read_tflite(source: str | Path | bytes) -> TFLiteGraph:
    """Parse a ``.tflite`` flatbuffer (path or bytes) into a :class:`TFLiteGraph`.

    Only the first subgraph is read. Operators with a custom code are named
    ``"CUSTOM:<code>"``; unknown builtin codes ``"BUILTIN_<n>"``.
    """
    buf = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    if len(buf) < 8:
        raise ValueError("not a TFLite flatbuffer: file too short")
    root_pos = struct.unpack_from("<I", buf, 0)[0]
    if root_pos + 4 > len(buf):
        raise ValueError("not a TFLite flatbuffer: bad root offset")
    root = _Table(buf, root_pos)
    version = root.scalar(0, "<I", 0)
    description = root.string(3) or ""

    op_names: list[str] = []
    for oc in root.tables(1):
        code = max(oc.scalar(0, "<b", 0), oc.scalar(3, "<i", 0))
        name = BUILTIN_OPS.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            name = f"CUSTOM:{oc.string(1)}"
        op_names.append(name)

    buffers: list[np.ndarray | None] = []
    for b in root.tables(4):
        data = b.vector(0, "u1")
        offset = b.scalar(1, "<Q", 0)
        size = b.scalar(2, "<Q", 0)
        if (data is None or data.size == 0) and offset > 1:
            data = np.frombuffer(buf, dtype=np.uint8, count=size, offset=offset)
        buffers.append(data if data is not None and data.size > 0 else None)

    subgraphs = root.tables(2)
    if not subgraphs:
        raise ValueError("TFLite model has no subgraph")
    sg = subgraphs[0]

    tensors = []
    for i, t in enumerate(sg.tables(0)):
        shape_vec = t.vector(0, "<i4")
        shape = tuple(int(v) for v in shape_vec) if shape_vec is not None else ()
        type_code = t.scalar(1, "<b", 0)
        type_name, dtype = TENSOR_TYPES.get(type_code, (f"TYPE_{type_code}", None))
        raw = buffers[t.scalar(2, "<I", 0)] if buffers else None
        data = None
        if raw is not None:
            if dtype is None:
                raise ValueError(f"tensor {t.string(3)!r}: unsupported constant type {type_name}")
            data = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
        scale = zero_point = None
        qdim = 0
        q = t.table(4)
        if q is not None:
            sv = q.vector(2, "<f4")
            zv = q.vector(3, "<i8")
            if sv is not None and sv.size:
                scale = sv.astype(np.float32)
                zero_point = (
                    zv.astype(np.int64) if zv is not None and zv.size else np.zeros_like(sv, "i8")
                )
            qdim = q.scalar(6, "<i", 0)
        tensors.append(
            TFLiteTensor(
                index=i,
                name=t.string(3) or f"tensor_{i}",
                shape=shape,
                type_name=type_name,
                data=data,
                scale=scale,
                zero_point=zero_point,
                quantized_dimension=qdim,
            )
        )

    operators = []
    for k, op in enumerate(sg.tables(3)):
        name = op_names[op.scalar(0, "<I", 0)]
        ins = op.vector(1, "<i4")
        outs = op.vector(2, "<i4")
        operators.append(
            TFLiteOperator(
                index=k,
                name=name,
                inputs=tuple(int(v) for v in ins) if ins is not None else (),
                outputs=tuple(int(v) for v in outs) if outs is not None else (),
                options=_read_options(op, name),
            )
        )
    sg_in = sg.vector(1, "<i4")
    sg_out = sg.vector(2, "<i4")
    return TFLiteGraph(
        version=int(version),
        description=description,
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(v) for v in sg_in) if sg_in is not None else (),
        outputs=tuple(int(v) for v in sg_out) if sg_out is not None else (),
        subgraph_count=len(subgraphs),
    )


# --------------------------------------------------------------------------------------------
# layout and arithmetic helpers
# --------------------------------------------------------------------------------------------


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def _from_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def _nhwc_axis(axis: int) -> int:
    """Position of NHWC axis ``axis`` in NCHW."""
    return (0, 2, 3, 1)[axis]


def _spatial_pads(
    x: torch.Tensor, padding: str, kernel: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int, int, int]:  # fmt: skip
    """``F.pad`` tuple (left, right, top, bottom) for NCHW ``x``."""
    if padding == "VALID":
        return (0, 0, 0, 0)
    if padding != "SAME":
        raise ValueError(f"unsupported padding {padding!r}")
    top, bottom = same_pads(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_pads(x.shape[3], kernel[1], stride[1], dilation[1])
    return (left, right, top, bottom)


def _activation(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "NONE":
        return x
    if name == "RELU":
        return torch.clamp_min(x, 0.0)
    if name == "RELU6":
        return torch.clamp(x, 0.0, 6.0)
    if name == "RELU_N1_TO_1":
        return torch.clamp(x, -1.0, 1.0)
    if name == "TANH":
        return torch.tanh(x)
    raise ValueError(f"unsupported fused activation {name}")


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    """``std::round`` (ties away from zero), exact for any float."""
    t = torch.trunc(x)
    frac = x - t
    return t + torch.where(frac.abs() >= 0.5, torch.sign(x), torch.zeros_like(x))


def symmetric_quantize(x: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """TFLite's ``SymmetricQuantizeFloats`` applied to each of ``rows`` equal slices of ``x``.

    Returns the int8 values (as float64, for exact integer arithmetic later) in the shape of
    ``x`` and the float32 scale per row (``max|x| / 127``; 1 for an all-zero row), computed
    with TFLite's float32 operations: ``q = round(x * (127 / range))`` clamped to [-127, 127].
    """
    flat = x.reshape(rows, -1).to(torch.float32)
    rng = flat.abs().amax(dim=1, keepdim=True)
    zero = rng == 0
    safe = torch.where(zero, torch.ones_like(rng), rng)
    scale = torch.where(zero, torch.ones_like(rng), safe / 127.0)
    inv = torch.where(zero, torch.zeros_like(rng), 127.0 / safe)
    q = torch.clamp(_round_half_away(flat * inv), -127.0, 127.0)
    return q.to(torch.float64).reshape(x.shape), scale.reshape(rows)


# --------------------------------------------------------------------------------------------
# execution steps
# --------------------------------------------------------------------------------------------


class _Step(nn.Module):
    """One executable operator: reads ``inputs`` (runtime tensor ids), writes ``output``."""

    def __init__(self, op: TFLiteOperator, inputs: Sequence[int]) -> None:
        super().__init__()
        self.op_name = op.name
        self.op_index = op.index
        self.inputs = list(inputs)
        self.output = op.outputs[0]

    def extra_repr(self) -> str:
        return f"#{self.op_index} {self.op_name}"


class _WeightedStep(_Step):
    """A step with float32 weights and bias, and optional hybrid int8 weights to emulate."""

    def _set_weights(self, weight: np.ndarray, bias: np.ndarray | None,
                     hybrid: _HybridWeights | None) -> None:
        self.register_buffer("weight", torch.from_numpy(weight.astype(np.float32)))
        b = np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32)
        self.register_buffer("bias", torch.from_numpy(b))
        self.hybrid = hybrid
        self.emulate = False


class _HybridWeights(nn.Module):
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


class _Conv(_WeightedStep):
    """CONV_2D / DEPTHWISE_CONV_2D (weights held as a torch conv kernel, OIHW)."""

    def __init__(
        self, op: TFLiteOperator, inp: int, weight: np.ndarray, bias: np.ndarray | None,
        groups: int, hybrid: _HybridWeights | None,
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
        pads = _spatial_pads(x, self.padding, self.kernel, self.stride, self.dilation)
        if self.emulate and self.hybrid is not None:
            return self._emulated(x, pads)
        if any(pads):
            x = F.pad(x, pads)
        y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return _activation(y, self.act)

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
        return _activation(y, self.act)


class _FullyConnected(_WeightedStep):
    """FULLY_CONNECTED: rows of the (NHWC-flattened) input times ``weight.T`` plus bias."""

    def __init__(
        self, op: TFLiteOperator, inp: int, in_rank: int, out_rank: int, weight: np.ndarray,
        bias: np.ndarray | None, hybrid: _HybridWeights | None,
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
        xn = _to_nhwc(x) if self.in_rank == 4 else x
        lead = xn.shape[:-1]
        rows = xn.reshape(-1, self.weight.shape[1])
        if self.emulate and self.hybrid is not None:
            y = self._emulated(rows)
        else:
            y = F.linear(rows, self.weight, self.bias)
        y = _activation(y, self.act)
        if self.keep_num_dims:
            y = y.reshape(*lead, y.shape[-1])
            return _from_nhwc(y) if self.out_rank == 4 else y
        return y

    def _emulated(self, rows: torch.Tensor) -> torch.Tensor:
        # TFLite fully_connected EvalHybrid: per-row symmetric int8 input, int32 dot
        # products, output = bias + float(acc) * scale.
        n = rows.shape[0]
        q, s_in = symmetric_quantize(rows, n)
        acc = q.to(self.hybrid.q.dtype) @ self.hybrid.q.T
        scale = (s_in.view(n, 1) * self.hybrid.scale.view(1, -1)).to(torch.float32)
        return self.bias.view(1, -1) + acc.to(torch.float32) * scale


class _Pool(_Step):
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
        pads = _spatial_pads(x, self.padding, self.kernel, self.stride)
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
        return _activation(y, self.act)


class _Elementwise(_Step):
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
        return _activation(y, self.act)


class _Unary(_Step):
    """RELU / RELU6 / LOGISTIC / TANH."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op_name == "LOGISTIC":
            return torch.sigmoid(x)
        return _activation(x, self.op_name)


class _Softmax(_Step):
    """SOFTMAX over the last (NHWC) axis with ``beta``."""

    def __init__(self, op: TFLiteOperator, inp: int, rank: int) -> None:
        super().__init__(op, [inp])
        self.beta = float(op.options.get("beta", 1.0))
        self.dim = 1 if rank == 4 else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x * self.beta, dim=self.dim)


class _Pad(_Step):
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


class _Reshape(_Step):
    """RESHAPE (in NHWC element order); the leading dimension follows the input batch."""

    def __init__(self, op: TFLiteOperator, inp: int, in_rank: int, target: Sequence[int]) -> None:
        super().__init__(op, [inp])
        self.in_rank = in_rank
        self.target = [int(v) for v in target]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = _to_nhwc(x) if self.in_rank == 4 else x
        shape = list(self.target)
        if shape and -1 not in shape[1:]:
            shape[0] = -1
        elif shape and shape[0] != -1:
            shape[0] = x.shape[0]
        y = xn.reshape(shape)
        return _from_nhwc(y) if y.dim() == 4 else y


class _Mean(_Step):
    """MEAN over constant NHWC axes."""

    def __init__(self, op: TFLiteOperator, inp: int, in_rank: int, axes: Sequence[int]) -> None:
        super().__init__(op, [inp])
        self.in_rank = in_rank
        self.axes = sorted({int(a) % in_rank for a in axes})
        self.keep = bool(op.options.get("keep_dims", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = _to_nhwc(x) if self.in_rank == 4 else x
        y = xn.mean(dim=self.axes, keepdim=self.keep)
        return _from_nhwc(y) if y.dim() == 4 else y


class _Concat(_Step):
    """CONCATENATION of runtime tensors along an NHWC axis."""

    def __init__(self, op: TFLiteOperator, inputs: Sequence[int], rank: int) -> None:
        super().__init__(op, inputs)
        axis = op.options["axis"] % rank
        self.dim = _nhwc_axis(axis) if rank == 4 else axis
        self.act = op.options["fused_activation_function"]

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return _activation(torch.cat(xs, dim=self.dim), self.act)


# --------------------------------------------------------------------------------------------
# the module
# --------------------------------------------------------------------------------------------

SUPPORTED_OPS = frozenset(
    {
        "ADD", "MUL", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
        "MAX_POOL_2D", "FULLY_CONNECTED", "MEAN", "PAD", "PADV2", "RESHAPE", "DEQUANTIZE",
        "RELU", "RELU6", "LOGISTIC", "TANH", "SOFTMAX",
    }
)  # fmt: skip


def _dequantize(t: TFLiteTensor) -> np.ndarray:
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


def _hybrid_int8(t: TFLiteTensor) -> np.ndarray:
    """Hybrid weight bytes read as int8 (zero point 0), as TFLite's hybrid kernels do."""
    assert t.data is not None
    return t.data.view(np.int8) if t.data.dtype == np.uint8 else t.data.astype(np.int8)


class TFLiteModule(nn.Module):
    """A TFLite subgraph executed in PyTorch (float32, inference only). See module docstring.

    Attributes: ``graph`` (the parsed :class:`TFLiteGraph`), ``input_shape_hw``,
    ``input_channels``, ``output_activation`` (``"softmax"`` or ``None``), ``op_names``,
    ``hybrid_layers`` (number of layers with 8-bit weights) and ``emulate_hybrid``.
    """

    def __init__(self, graph: TFLiteGraph, emulate_hybrid: bool = False) -> None:
        super().__init__()
        self.graph = graph
        tensors = graph.tensors
        if len(graph.inputs) < 1 or len(graph.outputs) < 1:
            raise ValueError("TFLite subgraph declares no inputs or outputs")
        unsupported = sorted({op.name for op in graph.operators} - SUPPORTED_OPS)
        if unsupported:
            raise ValueError(f"unsupported TFLite op(s): {', '.join(unsupported)}")
        for i in graph.inputs:
            if tensors[i].type_name != "FLOAT32":
                raise ValueError(
                    f"input {tensors[i].name!r} is {tensors[i].type_name}; only float32 "
                    "activations (float or hybrid models) are supported"
                )

        consts = {t.index: t.data for t in tensors if t.data is not None}  # raw constants
        folded: dict[int, np.ndarray] = {}  # float constants produced at load time
        rank = {t.index: len(t.shape) for t in tensors}
        steps: list[_Step] = []

        def is_const(i: int) -> bool:
            return i in consts or i in folded

        def const(i: int) -> np.ndarray:
            if i in folded:
                return folded[i]
            if i in consts:
                return consts[i]
            raise ValueError(f"tensor {tensors[i].name!r} must be constant here")

        def float_const(i: int) -> np.ndarray:
            if i in folded:
                return folded[i]
            t = tensors[i]
            if t.type_name in ("FLOAT32", "FLOAT16"):
                return const(i).astype(np.float32)
            raise ValueError(f"tensor {t.name!r}: expected a float constant, got {t.type_name}")

        def weights(i: int, op: TFLiteOperator) -> tuple[np.ndarray, np.ndarray | None]:
            """Float weights (file layout) of a conv/dense op; int8 values if hybrid."""
            if not is_const(i):
                raise ValueError(f"{op.name} #{op.index}: non-constant weights are unsupported")
            t = tensors[i]
            if i not in folded and t.type_name in ("UINT8", "INT8"):
                if not t.is_quantized:
                    raise ValueError(f"{op.name} #{op.index}: 8-bit weights without scales")
                q = _hybrid_int8(t)
                shape = [1] * q.ndim
                if t.scale.size > 1:
                    shape[t.quantized_dimension] = -1
                w = q.astype(np.float32) * t.scale.astype(np.float32).reshape(shape)
                return w, q
            return float_const(i), None

        def bias_of(op: TFLiteOperator) -> np.ndarray | None:
            if len(op.inputs) < 3 or op.inputs[2] < 0:
                return None
            return float_const(op.inputs[2])

        def check_float_activation(i: int, op: TFLiteOperator) -> None:
            if tensors[i].type_name != "FLOAT32":
                raise ValueError(
                    f"{op.name} #{op.index}: activation {tensors[i].name!r} is "
                    f"{tensors[i].type_name}; only float32 activations are supported"
                )

        for op in graph.operators:
            name = op.name
            if name == "DEQUANTIZE":
                src = op.inputs[0]
                if not is_const(src):
                    raise ValueError(f"DEQUANTIZE #{op.index}: only constant inputs supported")
                folded[op.outputs[0]] = _dequantize(tensors[src])
                continue
            if len(op.outputs) != 1:
                raise ValueError(f"{name} #{op.index}: expected one output")
            x = op.inputs[0]
            if not is_const(x):
                check_float_activation(x, op)
            elif name not in ("ADD", "MUL"):
                raise ValueError(f"{name} #{op.index}: constant data input is unsupported")
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w, q = weights(op.inputs[1], op)
                if name == "CONV_2D":  # [O, KH, KW, I] -> OIHW
                    perm = (0, 3, 1, 2)
                    groups = max(tensors[x].shape[3] // w.shape[3], 1)
                else:  # [1, KH, KW, C*M] -> [C*M, 1, KH, KW], groups = C
                    perm = (3, 0, 1, 2)
                    groups = tensors[x].shape[3]
                hyb = None
                if q is not None:
                    hyb = _HybridWeights(q.transpose(perm), tensors[op.inputs[1]].scale)
                kernel = np.ascontiguousarray(w.transpose(perm))
                steps.append(_Conv(op, x, kernel, bias_of(op), groups, hyb))
            elif name == "FULLY_CONNECTED":
                w, q = weights(op.inputs[1], op)
                hyb = None if q is None else _HybridWeights(q, tensors[op.inputs[1]].scale)
                steps.append(
                    _FullyConnected(op, x, rank[x], rank[op.outputs[0]], w, bias_of(op), hyb)
                )
            elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
                steps.append(_Pool(op, x))
            elif name in ("ADD", "MUL"):
                operands: list[int | torch.Tensor] = []
                for i in op.inputs[:2]:
                    if is_const(i):
                        operands.append(torch.from_numpy(np.array(float_const(i), np.float32)))
                    else:
                        check_float_activation(i, op)
                        operands.append(i)
                if all(not isinstance(v, int) for v in operands):
                    raise ValueError(f"{name} #{op.index}: both operands constant")
                steps.append(_Elementwise(op, operands, rank[op.outputs[0]]))
            elif name in ("RELU", "RELU6", "LOGISTIC", "TANH"):
                steps.append(_Unary(op, [x]))
            elif name == "SOFTMAX":
                steps.append(_Softmax(op, x, rank[x]))
            elif name in ("PAD", "PADV2"):
                value = 0.0
                if name == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
                    value = float(np.asarray(float_const(op.inputs[2])).reshape(-1)[0])
                steps.append(_Pad(op, x, np.asarray(const(op.inputs[1])).reshape(-1, 2), value))
            elif name == "RESHAPE":
                if len(op.inputs) > 1 and op.inputs[1] >= 0 and is_const(op.inputs[1]):
                    target = [int(v) for v in np.asarray(const(op.inputs[1])).reshape(-1)]
                elif op.options.get("new_shape") is not None:
                    target = list(op.options["new_shape"])
                else:
                    target = list(tensors[op.outputs[0]].shape)
                steps.append(_Reshape(op, x, rank[x], target))
            elif name == "MEAN":
                axes = np.asarray(const(op.inputs[1])).reshape(-1).tolist()
                steps.append(_Mean(op, x, rank[x], axes))
            elif name == "CONCATENATION":
                if any(is_const(i) for i in op.inputs):
                    raise ValueError(f"CONCATENATION #{op.index}: constant operands unsupported")
                steps.append(_Concat(op, op.inputs, rank[op.outputs[0]]))
            else:  # pragma: no cover - guarded by SUPPORTED_OPS
                raise ValueError(f"unsupported TFLite op: {name}")

        # A final SOFTMAX producing the only output is returned as its (scaled) input.
        self.output_activation: str | None = None
        self._logit_scale = 1.0
        if (
            len(graph.outputs) == 1
            and steps
            and isinstance(steps[-1], _Softmax)
            and steps[-1].output == graph.outputs[0]
        ):
            last = steps.pop()
            self.output_activation = "softmax"
            self._logit_scale = last.beta
            self._outputs = [last.inputs[0]]
        else:
            self._outputs = list(graph.outputs)
        for o in self._outputs:
            if is_const(o):
                raise ValueError(f"graph output {tensors[o].name!r} is a constant")

        self.steps = nn.ModuleList(steps)
        self._inputs = list(graph.inputs)
        # free each runtime tensor after its last use
        last_use: dict[int, int] = {}
        for k, step in enumerate(steps):
            for i in step.inputs:
                last_use[i] = k
        self._release: list[list[int]] = [[] for _ in steps]
        for i, k in last_use.items():
            if i not in self._outputs:
                self._release[k].append(i)

        first = tensors[self._inputs[0]]
        if len(first.shape) == 4:
            self.input_shape_hw: tuple[int, int] | None = (first.shape[1], first.shape[2])
            self.input_channels: int | None = first.shape[3]
        else:
            self.input_shape_hw = None
            self.input_channels = first.shape[-1] if first.shape else None
        self.op_names = graph.op_names
        self.hybrid_layers = sum(1 for s in steps if getattr(s, "hybrid", None) is not None)
        self.emulate_hybrid = emulate_hybrid
        self.eval()

    @property
    def emulate_hybrid(self) -> bool:
        """Whether hybrid layers reproduce TFLite's on-the-fly int8 activation quantisation."""
        return self._emulate_hybrid

    @emulate_hybrid.setter
    def emulate_hybrid(self, value: bool) -> None:
        value = bool(value)
        if value:
            for s in self.steps:
                hyb = getattr(s, "hybrid", None)
                if hyb is not None and (
                    hyb.per_channel or getattr(s, "groups", 1) != 1 or getattr(s, "asymmetric", 0)
                ):
                    raise ValueError(
                        f"{s.op_name} #{s.op_index}: emulate_hybrid supports per-tensor hybrid "
                        "CONV_2D / FULLY_CONNECTED weights with symmetric input quantisation only"
                    )
        self._emulate_hybrid = value
        for s in self.steps:
            if hasattr(s, "emulate"):
                s.emulate = value

    def forward(self, *xs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the graph on float32 inputs (rank-4 as NCHW); see the module docstring."""
        if len(xs) != len(self._inputs):
            raise ValueError(f"expected {len(self._inputs)} input(s), got {len(xs)}")
        return self._execute(dict(zip(self._inputs, xs, strict=True)), release=True)

    def tensor_index(self, name: str) -> int:
        """Index of the tensor called ``name`` in the TFLite subgraph."""
        for t in self.graph.tensors:
            if t.name == name:
                return t.index
        raise KeyError(f"no tensor named {name!r}")

    def run_from(
        self, feeds: Mapping[int | str, torch.Tensor]
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the part of the graph downstream of intermediate tensors given in ``feeds``.

        ``feeds`` maps tensor names or indices to float32 values (rank-4 as NCHW). Every op
        whose inputs are all known runs, in graph order; the result is what :meth:`forward`
        returns. Raises :class:`ValueError` when the feeds do not determine the output.
        """
        values = {(k if isinstance(k, int) else self.tensor_index(k)): v for k, v in feeds.items()}
        return self._execute(values, release=False)

    def _execute(
        self, values: dict[int, torch.Tensor], release: bool
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        for i, x in values.items():
            if x.dtype != torch.float32:
                name = self.graph.tensors[i].name
                raise TypeError(f"tensor {name!r} must be float32, got {x.dtype}")
        for step, drop in zip(self.steps, self._release, strict=True):
            if step.output in values or not all(i in values for i in step.inputs):
                continue
            values[step.output] = step(*(values[i] for i in step.inputs))
            if release:
                for i in drop:
                    values.pop(i, None)
        missing = [self.graph.tensors[o].name for o in self._outputs if o not in values]
        if missing:
            raise ValueError(f"the given tensors do not determine output(s) {missing}")
        outs = [values[o] for o in self._outputs]
        if self.output_activation == "softmax" and self._logit_scale != 1.0:
            outs = [o * self._logit_scale for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_tflite(path: str | Path | bytes, emulate_hybrid: bool = False) -> TFLiteModule:
    """Load a ``.tflite`` file (path or bytes) as an eval-mode :class:`TFLiteModule`.

    ``emulate_hybrid=True`` reproduces TFLite's hybrid kernels (int8 on-the-fly activation
    quantisation) for per-tensor 8-bit weights instead of computing those layers in float.
    Raises :class:`ValueError` naming any unsupported op.
    """
    return TFLiteModule(read_tflite(path), emulate_hybrid=emulate_hybrid)
