"""Per-vertex normals and Lambertian shading with one directional light."""

from __future__ import annotations

import torch


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unnormalised face normals [B, F, 3] with length twice the triangle area.

    Triangles wound counter-clockwise when seen from outside get outward normals.
    """
    corners = vertices[:, triangles]  # [B, F, 3, 3]
    return torch.linalg.cross(corners[:, :, 1] - corners[:, :, 0],
                              corners[:, :, 2] - corners[:, :, 0])


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals [B, V, 3] of meshes ``vertices`` [B, V, 3].

    Vertices used by no (non-degenerate) triangle get a zero normal.
    """
    per_face = face_normals(vertices, triangles)  # [B, F, 3]
    batch, num_faces, _ = per_face.shape
    corner_normals = per_face.unsqueeze(2).expand(batch, num_faces, 3, 3)
    normals = torch.zeros_like(vertices)
    normals.index_add_(1, triangles.reshape(-1), corner_normals.reshape(batch, -1, 3))
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


def _per_batch(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Scalar or [B] parameter as a tensor broadcastable against [B, V, C]."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.reshape(-1, 1, 1) if t.ndim >= 1 else t


def lambert(
    albedo: torch.Tensor,
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    ambient: float | torch.Tensor = 0.35,
    diffuse: float | torch.Tensor = 0.65,
) -> torch.Tensor:
    """Lambert colour ``albedo * (ambient + diffuse * max(0, n . l))``, shape [B, V, 3].

    ``albedo`` is [B or 1, V, 3] in 0..1, ``normals`` [B, V, 3] unit vectors, ``light_dir``
    [3] or [B, 3] the direction from the surface towards the light (normalised here),
    ``ambient``/``diffuse`` scalars or [B].  The result is not clamped.
    """
    light = torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device)
    light = torch.nn.functional.normalize(light.reshape(-1, 3), dim=-1)  # [1 or B, 3]
    cos = (normals * light.unsqueeze(1)).sum(-1, keepdim=True).clamp_min(0.0)  # [B, V, 1]
    return albedo * (_per_batch(ambient, normals) + _per_batch(diffuse, normals) * cos)
