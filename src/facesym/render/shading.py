"""Per-vertex normals and Lambertian shading with one directional light."""

from __future__ import annotations

import warnings

import torch


def face_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unnormalised face normals [B, F, 3] with length twice the triangle area.

    Triangles wound counter-clockwise when seen from outside get outward normals.
    """
    c0, c1, c2 = (vertices.index_select(1, triangles[:, c]) for c in range(3))
    return torch.linalg.cross(c1 - c0, c2 - c0)


def _incidence(triangles: torch.Tensor, num_vertices: int, dtype: torch.dtype) -> torch.Tensor:
    """Sparse CSR vertex-by-triangle incidence matrix [V, F] (1 where a vertex is a corner)."""
    num_faces = triangles.shape[0]
    corner_vertex = triangles.reshape(-1)
    order = torch.argsort(corner_vertex, stable=True)
    counts = torch.bincount(corner_vertex, minlength=num_vertices)
    crow = torch.zeros(num_vertices + 1, dtype=torch.int64, device=triangles.device)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            crow, order // 3, torch.ones(3 * num_faces, dtype=dtype, device=triangles.device),
            size=(num_vertices, num_faces), check_invariants=False)


def _numba_applies(vertices: torch.Tensor) -> bool:
    """Whether the compiled CPU kernel can compute these normals."""
    from facesym.render.raster_numba import numba_available

    return (vertices.device.type == "cpu" and not vertices.requires_grad
            and vertices.dtype in (torch.float32, torch.float64) and numba_available())


def _vertex_normals_numba(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """``vertex_normals`` by the compiled kernel (CPU, one thread per mesh)."""
    from facesym.render.raster_numba import vertex_normals_cpu

    return vertex_normals_cpu(vertices, triangles)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals [B, V, 3] of meshes ``vertices`` [B, V, 3].

    Vertices used by no (non-degenerate) triangle get a zero normal. On the CPU with numba
    installed a compiled kernel computes them (about 20x faster); elsewhere a sparse
    incidence product. The two sum in different orders (differences ~1e-7).
    """
    triangles = triangles.to(device=vertices.device, dtype=torch.int64)
    if _numba_applies(vertices):
        return _vertex_normals_numba(vertices, triangles)
    return _vertex_normals_torch(vertices, triangles)


def _vertex_normals_torch(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """``vertex_normals`` in torch (any device): a sparse incidence matrix product."""
    batch, num_vertices, _ = vertices.shape
    # Vertex-major layout [V, B, 3] makes the corner gathers whole-row copies.
    vertex_major = vertices.permute(1, 0, 2).contiguous()
    c0, c1, c2 = (vertex_major.index_select(0, triangles[:, c]) for c in range(3))
    per_face = torch.linalg.cross(c1 - c0, c2 - c0).view(triangles.shape[0], batch * 3)
    summed = _incidence(triangles, num_vertices, vertices.dtype) @ per_face  # [V, B * 3]
    normals = summed.view(num_vertices, batch, 3).permute(1, 0, 2)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12).contiguous()


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
    ``ambient``/``diffuse`` scalars or [B].  The result is not clamped. On the CPU with
    numba installed a compiled kernel computes it in one pass (same operations).
    """
    light = torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device)
    light = torch.nn.functional.normalize(light.reshape(-1, 3), dim=-1)  # [1 or B, 3]
    batch = normals.shape[0]
    if (_numba_applies(normals) and albedo.ndim == 3 and normals.ndim == 3
            and albedo.dtype == normals.dtype and albedo.device == normals.device
            and albedo.shape[0] in (1, batch) and albedo.shape[1:] == normals.shape[1:]):
        from facesym.render.raster_numba import lambert_cpu

        def per_image(value: float | torch.Tensor) -> torch.Tensor:
            return _per_batch(value, normals).reshape(-1).expand(batch).contiguous()

        return lambert_cpu(albedo, normals, light.expand(batch, 3).contiguous(),
                           per_image(ambient), per_image(diffuse))
    cos = (normals * light.unsqueeze(1)).sum(-1, keepdim=True).clamp_min(0.0)  # [B, V, 1]
    return albedo * (_per_batch(ambient, normals) + _per_batch(diffuse, normals) * cos)
