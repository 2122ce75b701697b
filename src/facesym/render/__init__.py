"""Rendering of posed face meshes: camera, shading, rasterisers and the batch pipeline.

``backend="torch"`` is a portable vectorised CPU/GPU rasteriser; ``backend="numba"`` a
compiled CPU rasteriser with the same results (several times faster; numba also speeds up
the shared CPU projection and vertex normals when installed); ``backend="kaolin"`` uses
NVIDIA kaolin when it is importable. numba and kaolin are imported lazily, never at package
import.
"""

from facesym.render.camera import PerspectiveCamera, frontal_camera, rotation_matrix
from facesym.render.pipeline import (
    available_backends,
    get_rasterizer,
    project_points,
    render_batch,
)
from facesym.render.raster_kaolin import kaolin_available
from facesym.render.raster_torch import rasterize
from facesym.render.shading import face_normals, lambert, vertex_normals

__all__ = [
    "PerspectiveCamera",
    "available_backends",
    "face_normals",
    "frontal_camera",
    "get_rasterizer",
    "kaolin_available",
    "lambert",
    "project_points",
    "rasterize",
    "render_batch",
    "rotation_matrix",
    "vertex_normals",
]
