"""face-api's FaceExpressionNet (tfjs, uint8-quantised weights) ported to PyTorch.

Two parts:

* :func:`read_tfjs_weights` reads a TensorFlow.js weights manifest
  (``*-weights_manifest.json`` plus its binary shards) into float32 numpy arrays,
  dequantising the way tfjs-core's ``io.decodeWeights`` does.
* :func:`load_faceapi_expression` builds :class:`FaceExpressionNet`, a re-implementation
  of ``@vladmandic/face-api``'s ``FaceExpressionNet`` (``FaceFeatureExtractor`` +
  fully connected classifier), and fills it with the tfjs weights.

Network (from face-api ``src/faceFeatureExtractor`` and ``src/faceProcessor``), NHWC in tfjs,
NCHW here::

    x: (N, 3, 112, 112), already (rgb - [122.782, 117.001, 104.298]) / 255
    dense0: conv3x3 s2 (3->32)  + 3 x sepconv3x3 s1 (32->32)      -> 56x56
    dense1: sepconv3x3 s2 (32->64) + 3 x sepconv3x3 s1            -> 28x28
    dense2: sepconv3x3 s2 (64->128) + 3 x sepconv3x3 s1           -> 14x14
    dense3: sepconv3x3 s2 (128->256) + 3 x sepconv3x3 s1          -> 7x7
    avg_pool 7x7, stride 2, 'valid'                               -> (N, 256)
    fc: 256 -> 7 logits; face-api applies softmax on top.

Each dense block (``denseBlock4``)::

    o1 = relu(conv0(x));      o2 = conv1(o1)
    o3 = conv2(relu(o1 + o2)); o4 = conv3(relu(o1 + o2 + o3))
    out = relu(o1 + o2 + o3 + o4)

where ``sepconv`` = depthwise 3x3 (no bias) -> pointwise 1x1 -> + bias, and all convolutions
use TensorFlow ``'same'`` padding (asymmetric for stride 2: the extra row/column goes to the
bottom/right, which is not what ``torch.nn.Conv2d(padding=1)`` does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facesym.classifiers.tf_padding import same_pad4

__all__ = [
    "FACEAPI_EXPRESSION_LABELS",
    "FACEAPI_MEAN_RGB",
    "FaceExpressionNet",
    "load_faceapi_expression",
    "normalize_faceapi_input",
    "read_tfjs_weights",
]

#: Output order of face-api's FaceExpressionNet (``FaceExpressions.ts``).
FACEAPI_EXPRESSION_LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)
#: Per-channel RGB mean subtracted by face-api's FaceFeatureExtractor before dividing by 255.
FACEAPI_MEAN_RGB: tuple[float, float, float] = (122.782, 117.001, 104.298)

# bytes per element, as tfjs-core's DTYPE_VALUE_SIZE_MAP
_DTYPE_SIZE = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint16": 2,
    "uint8": 1,
    "bool": 1,
}
_NUMPY_DTYPE = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "int32": np.dtype("<i4"),
    "uint16": np.dtype("<u2"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("u1"),
}


# --------------------------------------------------------------------------------------------
# tfjs weights manifest reader
# --------------------------------------------------------------------------------------------


def _entry_nbytes(entry: dict, manifest_path: Path) -> int:
    """Byte size of one manifest entry inside the group's concatenated buffer."""
    name = entry.get("name", "?")
    dtype = entry.get("dtype", "float32")
    quant = entry.get("quantization")
    stored = quant["dtype"] if quant else dtype
    if stored not in _DTYPE_SIZE:
        raise ValueError(
            f"{manifest_path}: weight {name!r} has unsupported stored dtype {stored!r} "
            f"(supported: {sorted(_DTYPE_SIZE)})"
        )
    return math.prod(int(d) for d in entry.get("shape", [])) * _DTYPE_SIZE[stored]


def _decode_entry(entry: dict, raw: bytes, manifest_path: Path) -> np.ndarray:
    """Decode (and dequantise) one weight exactly as tfjs-core ``decodeWeight`` does."""
    name = entry["name"]
    dtype = entry.get("dtype", "float32")
    shape = tuple(int(d) for d in entry.get("shape", []))
    quant = entry.get("quantization")
    if quant is None:
        if dtype not in ("float32", "int32", "bool"):
            raise ValueError(f"{manifest_path}: weight {name!r} has unsupported dtype {dtype!r}")
        arr = np.frombuffer(raw, dtype=_NUMPY_DTYPE[dtype])
        values = arr.astype(np.float32)
        return values.reshape(shape)

    qdtype = quant.get("dtype")
    if qdtype in ("uint8", "uint16"):
        if "scale" not in quant or "min" not in quant:
            raise ValueError(
                f"{manifest_path}: weight {name!r} is {qdtype}-quantised but its manifest entry "
                "lacks 'scale' and/or 'min'"
            )
        q = np.frombuffer(raw, dtype=_NUMPY_DTYPE[qdtype]).astype(np.float64)
        # tfjs: values[i] = q * scale + min, evaluated in float64 (JS numbers) and stored in a
        # Float32Array (float32 dtype) or passed through Math.round (int32 dtype).
        deq = q * float(quant["scale"]) + float(quant["min"])
        if dtype == "float32":
            values = deq.astype(np.float32)
        elif dtype == "int32":
            values = np.floor(deq + 0.5).astype(np.float32)  # Math.round: half up
        else:
            raise ValueError(
                f"{manifest_path}: weight {name!r}: {qdtype} quantisation of dtype {dtype!r} "
                "is not defined by tfjs"
            )
    elif qdtype == "float16":
        if dtype != "float32":
            raise ValueError(
                f"{manifest_path}: weight {name!r}: float16 quantisation needs dtype float32"
            )
        values = np.frombuffer(raw, dtype=_NUMPY_DTYPE["float16"]).astype(np.float32)
    else:
        raise ValueError(
            f"{manifest_path}: weight {name!r} has unknown quantisation dtype {qdtype!r} "
            "(tfjs defines uint8, uint16 with scale/min, and float16)"
        )
    return values.reshape(shape)


def read_tfjs_weights(
    manifest_path: str | Path, bin_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Read a tfjs weights manifest and its binary shards into float32 arrays.

    Every group of the manifest is read; within a group the shards listed in ``paths`` are
    concatenated in order and the weights are laid out back to back, as in tfjs-core.
    ``uint8``/``uint16`` quantised weights are dequantised as ``q * scale + min`` and
    ``float16`` ones are widened, exactly like ``tf.io.decodeWeights``. ``bin_dir`` defaults
    to the manifest's folder. Raises ``FileNotFoundError`` for a missing shard and
    ``ValueError`` (naming the shard files) when the shard bytes do not match the manifest.
    """
    manifest_path = Path(manifest_path)
    base = Path(bin_dir) if bin_dir is not None else manifest_path.parent
    with manifest_path.open("r", encoding="utf-8") as fh:
        manifest = json.load(fh)
    if isinstance(manifest, dict) and "weightsManifest" in manifest:  # a model.json
        manifest = manifest["weightsManifest"]
    if not isinstance(manifest, list):
        raise ValueError(f"{manifest_path}: expected a list of weight groups")

    out: dict[str, np.ndarray] = {}
    for gi, group in enumerate(manifest):
        shard_paths = [base / p for p in group.get("paths", [])]
        entries = group.get("weights", [])
        chunks: list[bytes] = []
        for sp in shard_paths:
            if not sp.is_file():
                raise FileNotFoundError(
                    f"tfjs weight shard {sp} (listed in {manifest_path}, group {gi}) not found"
                )
            chunks.append(sp.read_bytes())
        buf = b"".join(chunks)
        sizes = [_entry_nbytes(e, manifest_path) for e in entries]
        need = sum(sizes)
        if len(buf) != need:
            pairs = zip(shard_paths, chunks, strict=True)
            listing = ", ".join(f"{sp} ({len(c)} bytes)" for sp, c in pairs)
            raise ValueError(
                f"tfjs weights size mismatch for {manifest_path} group {gi}: the shards "
                f"[{listing}] hold {len(buf)} bytes but the manifest needs {need} bytes"
            )
        offset = 0
        for entry, nbytes in zip(entries, sizes, strict=True):
            name = entry["name"]
            if name in out:
                raise ValueError(f"{manifest_path}: duplicate weight name {name!r}")
            out[name] = _decode_entry(entry, buf[offset : offset + nbytes], manifest_path)
            offset += nbytes
    return out


# --------------------------------------------------------------------------------------------
# network
# --------------------------------------------------------------------------------------------


def _pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad NCHW ``x`` like TensorFlow's ``padding='same'`` (extra pad at bottom/right)."""
    pads = same_pad4(x, (kernel, kernel), (stride, stride))
    return F.pad(x, pads) if any(pads) else x


class _SameConv(nn.Module):
    """Plain conv (with bias) using TF 'same' padding; weights in torch OIHW layout."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_pad_same(x, 3, self.stride))


class _SeparableConv(nn.Module):
    """tfjs ``separableConv2d(x, depthwise, pointwise, stride, 'same') + bias``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, padding=0, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(_pad_same(x, 3, self.stride)))


class _DenseBlock4(nn.Module):
    """face-api ``denseBlock4`` (first conv strided by 2, three stride-1 separable convs)."""

    def __init__(self, c_in: int, c_out: int, first: bool) -> None:
        super().__init__()
        self.conv0: nn.Module = (
            _SameConv(c_in, c_out, 2) if first else _SeparableConv(c_in, c_out, 2)
        )
        self.conv1 = _SeparableConv(c_out, c_out, 1)
        self.conv2 = _SeparableConv(c_out, c_out, 1)
        self.conv3 = _SeparableConv(c_out, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionNet(nn.Module):
    """PyTorch port of face-api's FaceExpressionNet; ``forward`` returns the 7 logits.

    Input: float32 NCHW ``(N, 3, 112, 112)`` RGB, already normalised as face-api does,
    ``(rgb - FACEAPI_MEAN_RGB) / 255`` (see :func:`normalize_faceapi_input`).
    """

    output_activation: str = "softmax"
    input_shape_hw: tuple[int, int] = (112, 112)
    input_channels: int = 3
    labels: tuple[str, ...] = FACEAPI_EXPRESSION_LABELS

    def __init__(self) -> None:
        super().__init__()
        self.dense0 = _DenseBlock4(3, 32, first=True)
        self.dense1 = _DenseBlock4(32, 64, first=False)
        self.dense2 = _DenseBlock4(64, 128, first=False)
        self.dense3 = _DenseBlock4(128, 256, first=False)
        self.fc = nn.Linear(256, len(FACEAPI_EXPRESSION_LABELS))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck features ``(N, 256)`` (face-api's FaceFeatureExtractor output, pooled)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.input_channels, *self.input_shape_hw):
            raise ValueError(
                f"FaceExpressionNet expects (N, 3, 112, 112) normalised input, got {tuple(x.shape)}"
            )
        out = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        out = F.avg_pool2d(out, kernel_size=7, stride=2)  # tfjs avgPool [7,7], [2,2], 'valid'
        return out.permute(0, 2, 3, 1).reshape(out.shape[0], -1)  # tfjs flattens NHWC

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 7)``; ``softmax(logits, dim=1)`` gives face-api's probabilities."""
        return self.fc(self.features(x))

    @torch.no_grad()
    def load_tfjs_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy face-api tfjs weights (names as in the manifest, tfjs layouts) into the module."""
        expected: set[str] = set()

        def take(name: str, shape: Sequence[int]) -> np.ndarray:
            expected.add(name)
            if name not in weights:
                raise KeyError(f"tfjs weights lack {name!r}")
            arr = np.asarray(weights[name], dtype=np.float32)
            if tuple(arr.shape) != tuple(shape):
                raise ValueError(f"weight {name!r}: shape {arr.shape}, expected {tuple(shape)}")
            return arr

        def put(param: torch.Tensor, arr: np.ndarray) -> None:
            param.copy_(torch.from_numpy(np.ascontiguousarray(arr)))

        for bi, block in enumerate((self.dense0, self.dense1, self.dense2, self.dense3)):
            for ci in range(4):
                prefix = f"dense{bi}/conv{ci}"
                layer = getattr(block, f"conv{ci}")
                if isinstance(layer, _SameConv):
                    w = layer.conv.weight  # (O, I, kh, kw) <- tfjs HWIO
                    o, i, kh, kw = w.shape
                    put(w, take(f"{prefix}/filters", (kh, kw, i, o)).transpose(3, 2, 0, 1))
                    put(layer.conv.bias, take(f"{prefix}/bias", (o,)))
                else:
                    dw = layer.depthwise.weight  # (C, 1, kh, kw) <- tfjs (kh, kw, C, 1)
                    c, _, kh, kw = dw.shape
                    dw_tf = take(f"{prefix}/depthwise_filter", (kh, kw, c, 1))
                    put(dw, dw_tf.transpose(2, 3, 0, 1))
                    pw = layer.pointwise.weight  # (O, I, 1, 1) <- tfjs (1, 1, I, O)
                    o, i = pw.shape[:2]
                    put(pw, take(f"{prefix}/pointwise_filter", (1, 1, i, o)).transpose(3, 2, 0, 1))
                    put(layer.pointwise.bias, take(f"{prefix}/bias", (o,)))
        n_out, n_in = self.fc.weight.shape
        put(self.fc.weight, take("fc/weights", (n_in, n_out)).T)  # tfjs matMul(x, W) layout
        put(self.fc.bias, take("fc/bias", (n_out,)))

        extra = sorted(set(weights) - expected)
        if extra:
            raise ValueError(f"unexpected tfjs weights for FaceExpressionNet: {extra}")


def normalize_faceapi_input(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(N, 112, 112, 3) RGB 0..255 -> float32 NCHW ``(rgb - FACEAPI_MEAN_RGB) / 255``."""
    x = torch.as_tensor(np.asarray(images_uint8), dtype=torch.float32)
    mean = torch.tensor(FACEAPI_MEAN_RGB, dtype=torch.float32)
    return ((x - mean) / 255.0).permute(0, 3, 1, 2).contiguous()


def load_faceapi_expression(manifest_path: str | Path) -> FaceExpressionNet:
    """Build :class:`FaceExpressionNet` (float32, eval mode) from face-api's tfjs manifest.

    ``manifest_path`` is ``face_expression_model-weights_manifest.json``; the ``.bin`` shard
    is looked up beside it.

    >>> import torch
    >>> from facesym.resources import resource_file
    >>> net = load_faceapi_expression(resource_file(
    ...     "face_api", "package/model/face_expression_model-weights_manifest.json"))
    >>> tuple(net(torch.zeros(1, 3, 112, 112)).shape)
    (1, 7)
    """
    net = FaceExpressionNet()
    net.load_tfjs_weights(read_tfjs_weights(manifest_path))
    return net.float().eval()
