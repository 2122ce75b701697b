"""Batched Gouraud rendering of posed meshes into uint8 images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from facesym.render import raster_kaolin, raster_numba, raster_torch
from facesym.render.camera import PerspectiveCamera
from facesym.render.shading import shade, vertex_normals

Rasterizer = Callable[..., tuple[torch.Tensor, torch.Tensor]]

_RASTERIZERS: dict[str, Rasterizer] = {
    "torch": raster_torch.rasterize,
    "numba": raster_numba.rasterize,
    "kaolin": raster_kaolin.rasterize,
}
# Backends that can also blend the vertex colours inside their raster pass (same result as
# ``rasterize`` followed by ``_shade_pixels``, without the per-pixel id/barycentric tensors).
_FUSED = {"numba": raster_numba.render_colors}
# Availability check and installation advice of the optional backends.
_OPTIONAL = {
    "numba": (raster_numba.numba_available, raster_numba.INSTALL_HINT),
    "kaolin": (raster_kaolin.kaolin_available, raster_kaolin.INSTALL_HINT),
}


def available_backends() -> list[str]:
    """Names of the registered rasteriser backends usable on this machine."""
    return [n for n in _RASTERIZERS if n not in _OPTIONAL or _OPTIONAL[n][0]()]


def get_rasterizer(name: str) -> Rasterizer:
    """Rasteriser function for backend ``name`` ('torch', 'numba' or 'kaolin').

    Raises ValueError for unknown names and RuntimeError when the backend's library is not
    importable.
    """
    if name not in _RASTERIZERS:
        raise ValueError(f"unknown render backend {name!r}; allowed: {sorted(_RASTERIZERS)}")
    if name in _OPTIONAL and not _OPTIONAL[name][0]():
        raise RuntimeError(_OPTIONAL[name][1])
    return _RASTERIZERS[name]


def project_points(points: torch.Tensor, camera: PerspectiveCamera) -> torch.Tensor:
    """Pixel coordinates [B, K, 2] (x right, y down, centres at +0.5) of points [B, K, 3]."""
    pixel_xy, _ = camera.project(points)
    return pixel_xy


def _to_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """Colours in 0..1 (clamped) to uint8 0..255, rounding to nearest."""
    return (rgb.clamp(0.0, 1.0) * 255.0).round_().to(torch.uint8)


def _shade_pixels(
    colors: torch.Tensor,
    triangles: torch.Tensor,
    triangle_id: torch.Tensor,
    barycentrics: torch.Tensor,
    background: torch.Tensor,
) -> torch.Tensor:
    """uint8 images [B, H, W, 3]: per-vertex colours [B, V, 3] blended over drawn pixels."""
    batch, num_vertices, _ = colors.shape
    height, width = triangle_id.shape[1:]
    image = _to_uint8(background).expand(batch * height * width, 3).contiguous()
    flat_id = triangle_id.reshape(-1)
    hit = (flat_id >= 0).nonzero().squeeze(1)
    image_of_pixel = hit // (height * width)
    corner_vertex = triangles.index_select(0, flat_id.index_select(0, hit))  # [P, 3]
    corner_vertex += (image_of_pixel * num_vertices).unsqueeze(1)
    corner_color = colors.reshape(-1, 3).index_select(0, corner_vertex.view(-1)).view(-1, 3, 3)
    weights = barycentrics.reshape(-1, 3).index_select(0, hit)  # [P, 3]
    blended = corner_color[:, 0] * weights[:, 0:1]
    blended.addcmul_(corner_color[:, 1], weights[:, 1:2])
    blended.addcmul_(corner_color[:, 2], weights[:, 2:3])
    image.index_copy_(0, hit, _to_uint8(blended))
    return image.view(batch, height, width, 3)


def render_batch(
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    albedo: torch.Tensor,
    camera: PerspectiveCamera,
    light_dir: torch.Tensor | Sequence[float] = (0.0, 0.0, 1.0),
    ambient: float | torch.Tensor = 0.35,
    diffuse: float | torch.Tensor = 0.65,
    background_rgb: Sequence[float] | torch.Tensor = (0.0, 0.0, 0.0),
    backend: str = "torch",
    device: str | torch.device = "cpu",
    cull_backfaces: bool = False,
    lighting: str = "lambert",
    cavity: float = 0.0,
    neutral_vertices: torch.Tensor | None = None,
    cavity_absolute: float = 1.0,
    wrinkles: float = 0.0,
) -> torch.Tensor:
    """Render posed meshes to uint8 images [B, H, W, 3] (on ``device``).

    Args:
        vertices: [B, V, 3] world coordinates (cm), already posed.
        triangles: [F, 3] vertex indices (counter-clockwise seen from outside).
        albedo: [B or 1, V, 3] (or [V, 3]) per-vertex RGB in 0..1.
        camera: the camera; its width/height set the image size.
        light_dir: [3] or [B, 3] world direction towards the directional light.
        ambient, diffuse: Lambert weights, scalars or [B].
        background_rgb: RGB in 0..1 where no triangle is drawn.
        backend: rasteriser name, see ``get_rasterizer``.
        device: where to compute and return the images (kaolin always rasterises on CUDA,
            numba on the CPU).
        cull_backfaces: skip triangles facing away from the camera (faster for closed meshes,
            wrong for open ones such as a mouth socket seen through the lips).
        lighting: ``lambert`` (constant ambient) or ``sh`` (spherical-harmonics ambient,
            ``facesym.render.shading.SH_IRRADIANCE``), each plus the directional light.
        cavity: strength of the cavity shading computed on each (deformed) mesh, 0 = off.
        neutral_vertices: optional [N, V, 3] neutral meshes of the same identities in the same
            pose (N divides B; neutral n serves B/N consecutive meshes): the concavity is then
            relative to them, so only expression folds darken (None = absolute concavity).
        cavity_absolute: weight (0..1) of the identity's own (neutral) concavity when
            ``neutral_vertices`` is given; 1 = the absolute concavity.
        wrinkles: strength of the wrinkle shading where the expression compresses the skin
            relative to ``neutral_vertices`` (required when > 0), 0 = off.

    Vertex colours are shaded once per vertex and interpolated with perspective-correct
    barycentrics (Gouraud shading).
    """
    rasterize = get_rasterizer(backend)
    vertices = vertices.to(device=device, dtype=torch.float32)
    triangles = triangles.to(device=device, dtype=torch.int64)
    albedo = albedo.to(device=device, dtype=torch.float32)
    if albedo.ndim == 2:
        albedo = albedo.unsqueeze(0)
    light = torch.as_tensor(light_dir, dtype=torch.float32, device=device)
    background = torch.as_tensor(background_rgb, dtype=torch.float32, device=device).reshape(1, 3)

    pixel_xy, depth = camera.project(vertices)
    if neutral_vertices is not None:
        neutral_vertices = neutral_vertices.to(device=device, dtype=torch.float32)
    colors = shade(albedo, vertices, triangles, vertex_normals(vertices, triangles), light,
                   ambient, diffuse, lighting=lighting, cavity_strength=cavity,
                   neutral_vertices=neutral_vertices, cavity_absolute=cavity_absolute,
                   wrinkles=wrinkles)
    colors = colors.expand(vertices.shape[0], -1, -1)
    if backend in _FUSED:
        return _FUSED[backend](pixel_xy, depth, triangles, colors, _to_uint8(background[0]),
                               camera.height, camera.width, cull_backfaces=cull_backfaces)
    triangle_id, barycentrics = rasterize(pixel_xy, depth, triangles, camera.height,
                                          camera.width, cull_backfaces=cull_backfaces)
    return _shade_pixels(colors, triangles, triangle_id, barycentrics, background)
