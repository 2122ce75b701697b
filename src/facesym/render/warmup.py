"""Compile the CPU renderer's numba kernels once, ahead of the first study (``make setup``).

numba compiles a kernel for each argument signature on first use and caches the machine code
on disk (``__pycache__`` beside the source, or ``$NUMBA_CACHE_DIR``). Without this step the
first render jobs of a fresh install each spend their first seconds compiling, side by side.
"""

from __future__ import annotations

import time

import torch

from facesym.render.camera import frontal_camera
from facesym.render.pipeline import project_points, render_batch
from facesym.render.raster_numba import numba_available, warm_up

#: the render stage's default look (schema render.appearance): SH lighting with cavity shading
_LOOK = {"lighting": "sh", "cavity": 0.4, "cavity_absolute": 1.0}


def _octahedron() -> tuple[torch.Tensor, torch.Tensor]:
    """A closed 6-vertex mesh around the origin (cm) with outward counter-clockwise faces."""
    v = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
    f = torch.tensor([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                      [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return v * 5.0, f


def compile_kernels() -> float:
    """Run every numba kernel with the signatures the render stage uses (float32 meshes,
    float32 and float64 landmarks); seconds it took (compiling, or loading numba's cache).

    >>> compile_kernels() >= 0.0
    True
    """
    if not numba_available():
        return 0.0
    start = time.perf_counter()
    warm_up()
    vertices, triangles = _octahedron()
    camera = frontal_camera(40.0, 15.0, 32)
    batch = vertices.unsqueeze(0).repeat(2, 1, 1)
    render_batch(batch, triangles, torch.full((1, 6, 3), 0.7), camera, backend="numba",
                 neutral_vertices=batch[:1], **_LOOK)
    for dtype in (torch.float32, torch.float64):
        project_points(batch.to(dtype), camera)
    return time.perf_counter() - start
