"""Pinhole camera and head-pose rotations.

World frame (ICT-FaceKit): units cm, +x = subject's left, +y up, +z out of the nose.

Camera frame (OpenCV style): +x to the image right, +y to the image bottom, +z along the
viewing direction, so a point's depth is its camera-frame z (positive in front of the camera).

Pixel frame: x to the right, y down, pixel (col, row) covers [col, col + 1) x [row, row + 1),
so its centre is at (col + 0.5, row + 0.5) and the image centre at (width / 2, height / 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Vec3 = tuple[float, float, float]


def _as_vec3(v: Vec3, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    return torch.as_tensor(v, dtype=dtype, device=device)


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera looking from ``eye`` at ``target``; ``fov_deg`` is the vertical field."""

    eye: Vec3
    target: Vec3
    up: Vec3 = (0.0, 1.0, 0.0)
    fov_deg: float = 20.0
    width: int = 224
    height: int = 224

    def __post_init__(self) -> None:
        if not 0.0 < self.fov_deg < 180.0:
            raise ValueError(f"fov_deg must be in (0, 180), got {self.fov_deg}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (same for x and y: square pixels)."""
        return 0.5 * self.height / math.tan(math.radians(self.fov_deg) / 2.0)

    def rotation(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
                 ) -> torch.Tensor:
        """World-to-camera rotation [3, 3]; its rows are the camera axes in world coordinates."""
        eye = _as_vec3(self.eye, torch.float64, "cpu")
        forward = _as_vec3(self.target, torch.float64, "cpu") - eye
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, _as_vec3(self.up, torch.float64, "cpu"))
        if right.norm() < 1e-9:
            raise ValueError("camera 'up' is parallel to the viewing direction")
        right = right / right.norm()
        down = torch.linalg.cross(forward, right)
        return torch.stack([right, down, forward]).to(dtype=dtype, device=device)

    def world_to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """Map world points [..., 3] to camera coordinates [..., 3] (x right, y down, z depth)."""
        rot = self.rotation(points.dtype, points.device)
        eye = _as_vec3(self.eye, points.dtype, points.device)
        return (points - eye) @ rot.T

    def project(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Project world points [..., 3] to (pixel_xy [..., 2], depth [...]).

        Points at or behind the camera (depth <= 0) get non-finite or meaningless pixel
        coordinates; the rasterisers drop triangles touching them.
        """
        if _numba_applies(points):
            return self._project_numba(points)
        cam = self.world_to_camera(points)
        depth = cam[..., 2]
        scale = self.focal_px / depth
        centre = torch.tensor([self.width / 2.0, self.height / 2.0],
                              dtype=points.dtype, device=points.device)
        pixel_xy = cam[..., :2] * scale.unsqueeze(-1) + centre
        return pixel_xy, depth

    def _project_numba(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``project`` by the compiled CPU kernel (same operations, one pass over memory)."""
        from facesym.render.raster_numba import project_cpu

        rot = self.rotation(points.dtype)
        eye = _as_vec3(self.eye, points.dtype, "cpu")
        centre = torch.tensor([self.width / 2.0, self.height / 2.0], dtype=points.dtype)
        return project_cpu(points, rot, eye, self.focal_px, centre)


def _numba_applies(points: torch.Tensor) -> bool:
    """Whether the compiled CPU kernel can project these points."""
    from facesym.render.raster_numba import numba_available

    return (points.device.type == "cpu" and not points.requires_grad and points.ndim >= 2
            and points.dtype in (torch.float32, torch.float64) and numba_available())


def frontal_camera(
    distance_cm: float,
    fov_deg: float,
    size: int | tuple[int, int],
    target: Vec3 = (0.0, 0.0, 0.0),
) -> PerspectiveCamera:
    """Camera on the +z side of ``target`` looking towards -z, +y up; size is int or (w, h).

    World +x (the subject's left) appears on the image right, as in a photograph of the face.
    """
    width, height = (size, size) if isinstance(size, int) else size
    eye = (float(target[0]), float(target[1]), float(target[2]) + float(distance_cm))
    return PerspectiveCamera(eye=eye, target=tuple(float(t) for t in target),
                             up=(0.0, 1.0, 0.0), fov_deg=fov_deg, width=width, height=height)


def _axis_rotation(angle_deg: torch.Tensor, axis: int) -> torch.Tensor:
    """Right-handed rotation by ``angle_deg`` about world axis 0/1/2, shape [..., 3, 3]."""
    rad = torch.deg2rad(angle_deg)
    c, s = torch.cos(rad), torch.sin(rad)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    if axis == 0:
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == 1:
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return torch.stack([torch.stack(r, dim=-1) for r in rows], dim=-2)


def rotation_matrix(
    yaw: float | torch.Tensor,
    pitch: float | torch.Tensor = 0.0,
    roll: float | torch.Tensor = 0.0,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Head-pose rotation R = Ry(yaw) @ Rx(pitch) @ Rz(roll), angles in degrees.

    Each factor is a right-handed (counter-clockwise looking down the axis) rotation about a
    world axis: yaw about +y, pitch about +x, roll about +z; roll is applied first, yaw last.
    Apply to row-vector points as ``points @ R.mT``.  With the ICT frame this means:

    * yaw +90: the nose (+z) turns to +x, the subject's left (image right in a frontal view);
    * pitch +90: the nose turns to -y (the head tilts down);
    * roll +90: the subject's left (+x) turns to +y (the head tilts towards its right shoulder).

    Angles may be tensors of a common broadcast shape S; the result is [*S, 3, 3].
    """
    angles = torch.broadcast_tensors(*(torch.as_tensor(a, dtype=torch.float64)
                                       for a in (yaw, pitch, roll)))
    ry = _axis_rotation(angles[0], 1)
    rx = _axis_rotation(angles[1], 0)
    rz = _axis_rotation(angles[2], 2)
    return (ry @ rx @ rz).to(dtype)
