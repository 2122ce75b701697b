"""Compiled CPU rasteriser (numba): the torch rasteriser's results, several times faster.

The kernels live in ``facesym.render.numba_kernels`` and are imported (and, on first
use, compiled and cached on disk, ``cache=True``) only when this backend runs. They follow
``facesym.render.raster_torch`` exactly: pixel centres at +0.5, the same float32 barycentric
and 1/depth formulas, inside tolerance, nearest-wins with the lowest triangle index on exact
ties, perspective-correct barycentrics and back-face rule. Images are spread over threads
(one image per thread at a time), so the bytes do not depend on batch size or thread count.

Besides the ``rasterize`` contract shared by every backend, ``render_colors`` fuses the
per-pixel colour interpolation into the raster pass and writes uint8 directly.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from types import ModuleType

import numpy as np
import torch

INSTALL_HINT = "numba is not importable: pip install 'numba>=0.60' (or use backend='torch')."


@functools.cache
def numba_available() -> bool:
    """True when numba is installed (its kernels are compiled only when first used)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _kernels() -> ModuleType:
    """The compiled kernels module (imports numba) or RuntimeError with advice."""
    if not numba_available():
        raise RuntimeError(INSTALL_HINT)
    from facesym.render import numba_kernels

    return numba_kernels


def warm_up() -> float:
    """Compile (or load from the on-disk cache) every kernel; seconds it took."""
    start = time.perf_counter()
    xy = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [1.0, 3.0]]])
    depth = torch.ones(1, 3)
    tri = torch.tensor([[0, 1, 2]])
    rasterize(xy, depth, tri, 4, 4)
    render_colors(xy, depth, tri, torch.ones(1, 3, 3), torch.zeros(3, dtype=torch.uint8), 4, 4)
    return time.perf_counter() - start


def _threads() -> None:
    """Use as many numba threads as torch is allowed (the stage's thread setting)."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _inputs(pixel_xy: torch.Tensor, depth: torch.Tensor, triangles: torch.Tensor
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous CPU float32 / int32 arrays for the kernels."""
    xy = np.ascontiguousarray(pixel_xy.detach().to("cpu", torch.float32).numpy())
    z = np.ascontiguousarray(depth.detach().to("cpu", torch.float32).numpy())
    tri = np.ascontiguousarray(triangles.detach().to("cpu", torch.int32).numpy())
    if tri.size and (tri.min() < 0 or tri.max() >= xy.shape[1]):
        raise IndexError(f"triangle vertex index out of range 0..{xy.shape[1] - 1}")
    return xy, z, tri


def vertex_normals_cpu(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unit area-weighted vertex normals [B, V, 3] (dtype of ``vertices``) by numba on CPU."""
    kernels = _kernels()
    _threads()
    verts = np.ascontiguousarray(vertices.detach().cpu().numpy())
    tri = np.ascontiguousarray(triangles.detach().to("cpu", torch.int32).numpy())
    if tri.size and (tri.min() < 0 or tri.max() >= verts.shape[1]):
        raise IndexError(f"triangle vertex index out of range 0..{verts.shape[1] - 1}")
    out = np.empty_like(verts)
    kernels.vertex_normals(verts, tri.reshape(-1, 3), out)
    return torch.from_numpy(out)


def project_cpu(points: torch.Tensor, rotation: torch.Tensor, eye: torch.Tensor, focal: float,
                centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel xy [..., 2] and depth [...] of points [..., 3] (see PerspectiveCamera.project)."""
    kernels = _kernels()
    _threads()
    flat = np.ascontiguousarray(points.detach().numpy()).reshape(-1, 3)
    dtype = flat.dtype
    pixel_xy = np.empty((flat.shape[0], 2), dtype=dtype)
    depth = np.empty(flat.shape[0], dtype=dtype)
    kernels.project(flat, np.ascontiguousarray(rotation.numpy()), eye.numpy(),
                    dtype.type(focal), centre.numpy(), pixel_xy, depth)
    lead = points.shape[:-1]
    return (torch.from_numpy(pixel_xy).view(*lead, 2), torch.from_numpy(depth).view(lead))


def lambert_cpu(albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor,
                ambient: torch.Tensor, diffuse: torch.Tensor) -> torch.Tensor:
    """Lambert colours [B, V, 3] by numba: albedo [1 or B, V, 3], normals [B, V, 3], unit
    light [B, 3], ambient and diffuse [B], all of one dtype on the CPU."""
    kernels = _kernels()
    _threads()
    arrays = [np.ascontiguousarray(t.detach().numpy())
              for t in (albedo, normals, light, ambient, diffuse)]
    out = np.empty(normals.shape, dtype=arrays[1].dtype)
    kernels.lambert(*arrays, out)
    return torch.from_numpy(out)


def rasterize(
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    triangles: torch.Tensor,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ``facesym.render.raster_torch.rasterize``, computed by numba on CPU.

    Returns triangle_id [B, H, W] int64 (-1 = background) and perspective-correct
    barycentrics [B, H, W, 3] float32, on the device of ``pixel_xy``.
    """
    kernels = _kernels()
    _threads()
    xy, z, tri = _inputs(pixel_xy, depth, triangles)
    batch = xy.shape[0]
    triangle_id = np.empty((batch, height * width), dtype=np.int64)
    barycentrics = np.empty((batch, height * width, 3), dtype=np.float32)
    if batch:
        kernels.rasterize_ids(xy, z, tri.reshape(-1, 3), height, width, bool(cull_backfaces),
                              triangle_id, barycentrics)
    home = pixel_xy.device
    return (torch.from_numpy(triangle_id).view(batch, height, width).to(home),
            torch.from_numpy(barycentrics).view(batch, height, width, 3).to(home))


def render_colors(
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    triangles: torch.Tensor,
    colors: torch.Tensor,
    background: torch.Tensor,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
) -> torch.Tensor:
    """uint8 images [B, H, W, 3]: vertex colours [B, V, 3] (0..1) interpolated per pixel.

    ``background`` is the uint8 RGB [3] of pixels no triangle covers. Bytes equal the torch
    path's ``rasterize`` + colour blend up to float rounding in the last place.
    """
    kernels = _kernels()
    _threads()
    xy, z, tri = _inputs(pixel_xy, depth, triangles)
    rgb = np.ascontiguousarray(colors.detach().to("cpu", torch.float32)
                               .expand(xy.shape[0], -1, -1).numpy())
    back = np.ascontiguousarray(background.detach().to("cpu", torch.uint8).reshape(3).numpy())
    batch = xy.shape[0]
    images = np.empty((batch, height * width, 3), dtype=np.uint8)
    if batch:
        kernels.render_colors(xy, z, tri.reshape(-1, 3), rgb, back, height, width,
                              bool(cull_backfaces), images)
    return torch.from_numpy(images).view(batch, height, width, 3).to(pixel_xy.device)


def smooth_offsets_cpu(smoother: torch.Tensor, flat: torch.Tensor, iterations: int
                       ) -> torch.Tensor:
    """``(S^iterations - I) @ flat`` for a sparse CSR ``smoother`` S [V, V] and ``flat`` [V, C]
    on the CPU, by the compiled row-parallel kernel (torch's CSR product is single-threaded
    and several times slower on these shapes)."""
    k = _kernels()
    _threads()
    x = np.ascontiguousarray(flat.detach().cpu().numpy())
    out = np.empty_like(x)
    k.smooth_offsets(smoother.crow_indices().numpy(), smoother.col_indices().numpy(),
                     smoother.values().numpy(), x, int(iterations), out)
    return torch.from_numpy(out)
