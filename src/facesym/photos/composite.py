"""2D mirror ("chimeric") composites of any image, graded by strength and batched.

For a midline with unit normal n pointing to the subject's left and an image I, the
``left`` composite keeps the subject's left hemiface and shows its reflection in place of the
right one (left-left); ``right`` the converse. With S(q) = I sampled at the reflection of
pixel q, signed distance s(q) from the line and an odd smooth step g (−1 … 1 over ``feather``
pixels either side of the line),

    C(q) = (I(q) + S(q)) / 2 + g(±s(q)) · (I(q) − S(q)) / 2,
    out  = (1 − a) · I + a · C.

C equals I on the kept side, the reflection on the other, and their mean on the seam. Because
g is odd, C(q) and C(reflection of q) are the same expression with the operands swapped, so
the full composite (a = 1) is exactly mirror-symmetric wherever the reflection maps pixel
centres onto pixel centres (and symmetric up to bilinear interpolation elsewhere); a = 0
returns the input unchanged. Sampling is bilinear with edge clamping; sample positions are
snapped to 1/1024 pixel so that reflections which land on pixel centres read them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facesym.photos.geometry import Midline, fit_midline

SIDES = ("left", "right")
_SNAP = 1024.0


def _as_batch(images: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(images)
    if arr.ndim == 3:
        return arr[None], True
    if arr.ndim != 4:
        raise ValueError(f"images must be (H, W, C) or (B, H, W, C), got shape {arr.shape}")
    return arr, False


def _bilinear(images: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sample (B, H, W, C) images at pixel-index coordinates x, y (B, H, W), edge-clamped.

    Gathers in the images' own dtype (uint8 moves a quarter of the bytes) and interpolates in
    the coordinates' float dtype.
    """
    b, h, w, c = images.shape
    x0f, y0f = torch.floor(x), torch.floor(y)
    wx = (x - x0f)[..., None]
    wy = (y - y0f)[..., None]
    x0, y0 = x0f.to(torch.int64), y0f.to(torch.int64)
    x1, y1 = (x0 + 1).clamp_(0, w - 1), (y0 + 1).clamp_(0, h - 1)
    x0, y0 = x0.clamp_(0, w - 1), y0.clamp_(0, h - 1)
    base = (torch.arange(b, device=images.device) * (h * w)).view(b, 1, 1)
    flat = images.reshape(-1, c)
    r0, r1 = base + y0 * w, base + y1 * w

    def px(idx: torch.Tensor) -> torch.Tensor:
        return flat.index_select(0, idx.reshape(-1)).view(b, h, w, c).to(wx.dtype)

    top = torch.lerp(px(r0 + x0), px(r0 + x1), wx)
    bottom = torch.lerp(px(r1 + x0), px(r1 + x1), wx)
    return torch.lerp(top, bottom, wy)


def _odd_smoothstep(t: torch.Tensor) -> torch.Tensor:
    t = t.clamp(-1.0, 1.0)
    return t * (3.0 - t * t) / 2.0


def mirror_composite(images: np.ndarray, midline: Midline | np.ndarray, side: str = "left",
                     strength: float | Sequence[float] | np.ndarray = 1.0,
                     feather: float | Sequence[float] | np.ndarray = 4.0,
                     device: str = "cpu") -> np.ndarray:
    """Mirror composites of images (H, W, C) or (B, H, W, C), uint8 or float.

    ``midline`` is a :class:`Midline` (batched like the images, or one for all) or 68-point
    landmarks (…, 68, 2), from which the least-squares midline is fitted. ``side``: the
    hemiface kept (``left``: the subject's left, shown twice). ``strength`` and ``feather``
    (seam half-width in pixels) are scalars or one per image. Returns the input's dtype
    (uint8 rounded) and shape.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    batch, single = _as_batch(images)
    n, h, w, _ = batch.shape
    line = midline if isinstance(midline, Midline) else fit_midline(midline)
    point = np.broadcast_to(line.point, (n, 2)).astype(np.float64)
    normal = np.broadcast_to(line.normal, (n, 2)).astype(np.float64)
    a = np.broadcast_to(np.asarray(strength, dtype=np.float64), (n,))
    if np.any((a < 0) | (a > 1)):
        raise ValueError(f"strength must lie in [0, 1], got {a}")
    fe = np.broadcast_to(np.asarray(feather, dtype=np.float64), (n,))
    src = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    img = src.to(torch.float32)

    gx = torch.arange(w, dtype=torch.float32, device=device) + 0.5
    gy = torch.arange(h, dtype=torch.float32, device=device) + 0.5
    yy, xx = torch.meshgrid(gy, gx, indexing="ij")
    p = torch.tensor(point, dtype=torch.float32, device=device)[:, :, None, None]
    nv = torch.tensor(normal, dtype=torch.float32, device=device)[:, :, None, None]
    s = (xx - p[:, 0]) * nv[:, 0] + (yy - p[:, 1]) * nv[:, 1]  # (B, H, W)
    rx = xx - 2 * s * nv[:, 0] - 0.5  # reflected position, pixel-index coordinates
    ry = yy - 2 * s * nv[:, 1] - 0.5
    rx = torch.round(rx * _SNAP) / _SNAP
    ry = torch.round(ry * _SNAP) / _SNAP
    mirrored = _bilinear(src, rx, ry)

    sign = 1.0 if side == "left" else -1.0
    fe_t = torch.tensor(np.maximum(fe, 1e-6), dtype=torch.float32, device=device).view(n, 1, 1)
    g = _odd_smoothstep(sign * s / fe_t)[..., None]
    comp = (img + mirrored) / 2 + g * (img - mirrored) / 2
    a_t = torch.tensor(a, dtype=torch.float32, device=device).view(n, 1, 1, 1)
    out = (1 - a_t) * img + a_t * comp
    if batch.dtype == np.uint8:
        res = out.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    else:
        res = out.cpu().numpy().astype(batch.dtype, copy=False)
    return res[0] if single else res


def composite_series(image: np.ndarray, landmarks: np.ndarray, strengths: Sequence[float],
                     feather: float = 4.0) -> dict[str, np.ndarray]:
    """Both composites of one image at each strength: {side: (A, H, W, C)}."""
    line = fit_midline(landmarks)
    stack = np.broadcast_to(image, (len(strengths), *np.shape(image)))
    return {side: mirror_composite(stack, line, side, np.asarray(strengths), feather)
            for side in SIDES}
