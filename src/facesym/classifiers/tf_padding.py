"""TensorFlow's "SAME" padding, shared by the Keras, TFLite and tfjs ports.

TensorFlow pads ``total = max((ceil(n / s) − 1)·s + k_eff − n, 0)`` and puts the odd pixel at
the bottom/right; PyTorch's symmetric ``padding=`` cannot express that for strided layers.
"""

from __future__ import annotations

import torch


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) along one axis of length ``size``."""
    # int(): under torch.onnx's tracer the shape is a traced value; ceil by a positive floor
    # division (ONNX's integer Div truncates, so -(-n // s) would export wrong).
    size, effective = int(size), (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def same_pad4(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
              dilation: tuple[int, int] = (1, 1)) -> tuple[int, int, int, int]:
    """``F.pad`` order (left, right, top, bottom) of TF 'SAME' padding for NCHW ``x``."""
    top, bottom = same_pads(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_pads(x.shape[3], kernel[1], stride[1], dilation[1])
    return left, right, top, bottom
