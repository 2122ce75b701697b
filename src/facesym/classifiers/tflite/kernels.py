"""Layout and arithmetic helpers shared by the TFLite ops: NHWC↔NCHW, padding, activations,
and TFLite's on-the-fly symmetric int8 quantisation."""

from __future__ import annotations

import torch

from facesym.classifiers.tf_padding import same_pads


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """NCHW → NHWC view of a rank-4 tensor (other ranks unchanged)."""
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def from_nhwc(x: torch.Tensor) -> torch.Tensor:
    """NHWC → NCHW view of a rank-4 tensor (other ranks unchanged)."""
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def nhwc_axis(axis: int) -> int:
    """Position of NHWC axis ``axis`` in NCHW."""
    return (0, 2, 3, 1)[axis]


def spatial_pads(
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


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """Apply TFLite fused activation ``name`` (NONE, RELU, RELU6, RELU_N1_TO_1, TANH)."""
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
