"""TensorFlow Lite flatbuffers (``.tflite``) run by one of two engines.

* ``engine="torch"``: the PyTorch port. :func:`read_tflite` (:mod:`.reader`) parses the
  flatbuffer into a :class:`TFLiteGraph`; the graph builder (:mod:`.builder`) turns its ops
  (:mod:`.ops`, helpers in :mod:`.kernels`) into the steps of a :class:`TFLiteModule`
  (:mod:`.module`).
* ``engine="litert"``: the file run by ``ai-edge-litert``, TFLite's own runtime
  (:class:`~facesym.classifiers.tflite.litert.LiteRTModule`), when it is installed.
* ``engine="auto"``: LiteRT where it imports, else the torch port.

Either module exposes ``engine`` and ``kernels`` (which arithmetic ran), so callers can record
them. The port was written for the facex MobileNetV2 expression model, a TOCO "hybrid"
(dynamic-range) model: float32 activations, 1x1 convolutions and the final dense layer with
8-bit weights, depthwise kernels stored as 8-bit behind ``DEQUANTIZE`` ops.

Supported builtin ops (torch port): ADD, MUL, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D,
AVERAGE_POOL_2D, MAX_POOL_2D, FULLY_CONNECTED, MEAN, PAD, PADV2, RESHAPE, DEQUANTIZE, RELU,
RELU6, LOGISTIC, TANH, SOFTMAX, with the fused activations NONE, RELU, RELU_N1_TO_1, RELU6 and
TANH. Any other op raises :class:`ValueError` naming it when the model is loaded.

Conventions of the torch port:


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

Example with the shipped facex model (fetched into the resource cache):

>>> import torch
>>> from facesym.resources import resource_file
>>> path = resource_file("facex", "facex/assets/model_optimized.tflite")
>>> model = load_tflite(path, emulate_hybrid=True)
>>> (model.engine, model.kernels, model.input_shape_hw, model.output_activation)
('torch', 'hybrid-emulated', (200, 200), 'softmax')
>>> logits = model(torch.full((2, 3, 200, 200), 0.5))
>>> tuple(logits.shape)
(2, 7)
"""

from __future__ import annotations

from pathlib import Path

import torch

from facesym.classifiers.tflite.kernels import symmetric_quantize
from facesym.classifiers.tflite.module import TFLiteModule
from facesym.classifiers.tflite.ops import SUPPORTED_OPS
from facesym.classifiers.tflite.reader import (
    TFLiteGraph,
    TFLiteOperator,
    TFLiteTensor,
    read_tflite,
)

__all__ = [
    "ENGINES",
    "SUPPORTED_OPS",
    "TFLiteGraph",
    "TFLiteModule",
    "TFLiteOperator",
    "TFLiteTensor",
    "load_tflite",
    "read_tflite",
    "resolve_engine",
    "symmetric_quantize",
]

ENGINES = ("torch", "litert", "auto")


def resolve_engine(engine: str) -> str:
    """The engine ``engine`` stands for here: ``"auto"`` → ``"litert"`` if it imports, else
    ``"torch"``; ``"torch"`` / ``"litert"`` unchanged; anything else raises ValueError.

    >>> resolve_engine("torch")
    'torch'
    >>> resolve_engine("auto") in ("litert", "torch")
    True
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown TFLite engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if engine != "auto":
        return engine
    from facesym.classifiers.tflite.litert import litert_available

    return "litert" if litert_available() else "torch"


def load_tflite(
    path: str | Path | bytes, emulate_hybrid: bool = False, engine: str = "torch",
    num_threads: int | None = None, kernels: str = "xnnpack",
) -> torch.nn.Module:
    """Load a ``.tflite`` file (path or bytes) as an eval-mode module on the chosen engine.

    ``engine="torch"`` (default) gives a :class:`TFLiteModule`; ``emulate_hybrid=True`` makes
    it reproduce TFLite's hybrid kernels (int8 on-the-fly activation quantisation) for
    per-tensor 8-bit weights instead of computing those layers in float. ``engine="litert"``
    gives a :class:`~facesym.classifiers.tflite.litert.LiteRTModule` running ``kernels``
    (``"xnnpack"``, ``"builtin"`` or ``"reference"``) on ``num_threads`` threads (default:
    torch's); it always runs TFLite's hybrid kernels, so ``emulate_hybrid`` does not apply.
    ``engine="auto"`` picks LiteRT where ``ai-edge-litert`` imports, else the torch port.
    The result's ``engine`` and ``kernels`` attributes say what runs. Raises
    :class:`ValueError` naming any op the torch port does not support (checked on both
    engines, so the fallback can always run what LiteRT runs) and ImportError for
    ``engine="litert"`` without ``ai-edge-litert``.

    >>> import torch
    >>> from facesym.resources import resource_file
    >>> path = resource_file("facex", "facex/assets/model_optimized.tflite")
    >>> model = load_tflite(path, engine="auto")
    >>> model.engine in ("litert", "torch")
    True
    >>> probs = torch.softmax(model(torch.zeros(1, 3, 200, 200)), dim=1)
    >>> round(float(probs.sum()), 4)
    1.0
    """
    chosen = resolve_engine(engine)
    if chosen == "litert":
        from facesym.classifiers.tflite.litert import LiteRTModule

        return LiteRTModule(path, num_threads=num_threads, kernels=kernels)
    return TFLiteModule(read_tflite(path), emulate_hybrid=emulate_hybrid)
