"""Rasteriser backed by NVIDIA kaolin (GPU); ``kaolin`` is imported only when used.

Kaolin's ``rasterize`` takes per-face corner positions in [-1, 1] (x right, y up, pixel
centres at ``(2 * col + 1 - W) / W``, ``(H - 2 * row - 1) / H``), keeps the face with the
LARGEST interpolated ``face_vertices_z`` and, with the 'cuda' backend, interpolates features
linearly in screen space.  We pass ``z = 1 / depth``: it is exactly affine in screen space,
so its screen-space interpolation is exact and the largest value is the nearest surface.
Features are ``e_i / depth_i`` per corner; dividing the interpolated features by their sum
(the interpolated ``1 / depth``) yields perspective-correct barycentrics.
"""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType

import torch

from facesym.render.raster_torch import NEAR_DEPTH

INSTALL_HINT = (
    "kaolin is not importable. It needs an NVIDIA GPU with CUDA and the kaolin wheel built "
    "for your torch and CUDA versions: pip install kaolin==<version> -f <NVIDIA's wheel index "
    "for torch-<TORCH_VER>_cu<CUDA_VER>>, as described at "
    "https://kaolin.readthedocs.io/en/latest/notes/installation.html; or use backend='torch'."
)


@functools.cache
def kaolin_available() -> bool:
    """True when kaolin's mesh renderer imports (tried once, only when first asked)."""
    if importlib.util.find_spec("kaolin") is None:
        return False
    try:
        _import_kaolin()
    except RuntimeError:
        return False
    return True


def _import_kaolin() -> ModuleType:
    """Import kaolin's mesh renderer or raise RuntimeError with installation advice."""
    try:
        import kaolin.render.mesh
    except Exception as err:  # a broken CUDA install raises OSError etc., not just ImportError
        raise RuntimeError(INSTALL_HINT) from err
    return kaolin


def rasterize(
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    triangles: torch.Tensor,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
    kaolin_backend: str = "cuda",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``facesym.render.raster_torch.rasterize``, computed by kaolin.

    ``kaolin_backend`` is passed to kaolin ('cuda', 'nvdiffrast' or 'nvdiffrast_fwd').
    Inputs not on a CUDA device are moved to the current one and the results moved back.
    """
    kaolin = _import_kaolin()
    home = pixel_xy.device
    if home.type != "cuda":
        pixel_xy, depth = pixel_xy.to("cuda"), depth.to("cuda")
    triangles = triangles.to(device=pixel_xy.device, dtype=torch.int64)
    corners_xy = pixel_xy.float()[:, triangles]  # [B, F, 3, 2]
    corners_z = depth.float()[:, triangles]  # [B, F, 3]
    image = torch.stack([corners_xy[..., 0] * (2.0 / width) - 1.0,
                         1.0 - corners_xy[..., 1] * (2.0 / height)], dim=-1)
    valid = (corners_z > NEAR_DEPTH).all(-1) & image.isfinite().all(-1).all(-1)
    if cull_backfaces:
        rel = corners_xy[:, :, 1:] - corners_xy[:, :, :1]
        area2 = rel[..., 0, 0] * rel[..., 1, 1] - rel[..., 0, 1] * rel[..., 1, 0]
        valid &= area2 < 0
    inv_depth = torch.where(valid.unsqueeze(-1), 1.0 / corners_z, torch.zeros_like(corners_z))
    image = torch.where(valid[..., None, None], image, torch.zeros_like(image))
    features = torch.diag_embed(inv_depth)  # [B, F, 3, 3]: corner i carries e_i / depth_i
    interpolated, face_idx = kaolin.render.mesh.rasterize(
        height, width, inv_depth.contiguous(), image.contiguous(), features.contiguous(),
        valid_faces=valid, backend=kaolin_backend)
    face_idx = face_idx.long()
    hit = (face_idx >= 0).unsqueeze(-1)
    bary = interpolated.clamp_min(0.0)
    bary = bary / bary.sum(-1, keepdim=True).clamp_min(1e-30)
    bary = torch.where(hit, bary, torch.zeros_like(bary))
    return face_idx.to(home), bary.to(home)
