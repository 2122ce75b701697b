"""A minimal flatbuffer reader for ``.tflite`` files: bytes → :class:`TFLiteGraph`.

Written against the public TFLite schema; needs neither TensorFlow nor the ``flatbuffers``
package. Only the first subgraph is read.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesym.classifiers.tflite.schema import (
    BUILTIN_OPS,
    FUSED,
    OPTIONS,
    PADDING,
    SCALAR_FMT,
    TENSOR_TYPES,
)

__all__ = ["TFLiteGraph", "TFLiteOperator", "TFLiteTensor", "read_tflite", "with_outputs"]


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
    if kind not in OPTIONS:
        # An op we do not execute anyway is refused later by name; options are irrelevant.
        return {"_options_type": kind}
    table = op.table(4)
    _, spec = OPTIONS[kind]
    out: dict[str, Any] = {}
    for i, (name, fkind, default) in enumerate(spec):
        if table is None:
            out[name] = default
        elif fkind == "[i":
            vec = table.vector(i, "<i4")
            out[name] = None if vec is None else [int(v) for v in vec]
        else:
            out[name] = table.scalar(i, SCALAR_FMT[fkind], default)
    if "padding" in out:
        out["padding"] = PADDING.get(out["padding"], str(out["padding"]))
    if "fused_activation_function" in out:
        code = out["fused_activation_function"]
        out["fused_activation_function"] = FUSED.get(code, str(code))
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


def with_outputs(source: bytes, outputs: Sequence[int]) -> bytes:
    """A copy of flatbuffer ``source`` whose first subgraph declares ``outputs`` instead.

    The subgraph's output vector is overwritten in place, so ``outputs`` must have as many
    entries as the file declares. Operators are untouched: an interpreter still runs every op,
    and the new outputs are readable after ``invoke`` like the old ones.
    """
    buf = bytearray(source)
    root = _Table(bytes(buf), struct.unpack_from("<I", buf, 0)[0])
    subgraphs = root.tables(2)
    if not subgraphs:
        raise ValueError("TFLite model has no subgraph")
    count, pos = subgraphs[0]._vector(2)
    if count != len(outputs):
        raise ValueError(f"the subgraph has {count} output(s); got {len(outputs)} replacements")
    struct.pack_into(f"<{count}i", buf, pos, *(int(o) for o in outputs))
    return bytes(buf)
