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


# Second-order spherical-harmonics irradiance of a studio-like environment (world frame,
# +y up, +z towards the camera side of a frontal face): a bright sky and camera-side fill,
# a dark floor. E(n) = c0 + c_y n_y + c_z n_z + c_yy (3 n_y^2 - 1) / 2, so E ≈ 1 for a surface
# facing the camera, 0.9 facing up and 0.5 facing down (under the chin, nostrils, upper lids
# in fear). Only the bands that a frontal studio light has (no lateral term: the key light
# carries the left/right asymmetry of the scene).
SH_IRRADIANCE = {"c0": 0.80, "y": 0.20, "z": 0.20, "yy": -0.10}


def sh_irradiance(normals: torch.Tensor, coeffs: dict[str, float] | None = None) -> torch.Tensor:
    """Ambient irradiance [B, V, 1] of unit ``normals`` [B, V, 3] under ``SH_IRRADIANCE``."""
    c = coeffs or SH_IRRADIANCE
    ny, nz = normals[..., 1:2], normals[..., 2:3]
    return c["c0"] + c["y"] * ny + c["z"] * nz + c["yy"] * (1.5 * ny * ny - 0.5)


def _undirected_edges(tri: torch.Tensor, num_vertices: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique undirected edges of triangles [F, 3] (int64, CPU) as (low end, high end, number
    of triangles sharing the edge: 1 on an open boundary)."""
    a = torch.cat([tri[:, 0], tri[:, 1], tri[:, 2]])
    b = torch.cat([tri[:, 1], tri[:, 2], tri[:, 0]])
    code, count = torch.unique(torch.minimum(a, b) * num_vertices + torch.maximum(a, b),
                               return_counts=True)
    return code // num_vertices, code % num_vertices, count


_SMOOTHERS: dict[tuple, torch.Tensor] = {}


def _smoother(triangles: torch.Tensor, num_vertices: int, dtype: torch.dtype) -> torch.Tensor:
    """Row-normalised sparse CSR vertex adjacency [V, V] (umbrella operator), cached per mesh.

    Boundary vertices (on an edge of one triangle only: the neck cut, the mouth and eye
    openings) keep their position (identity row), so an open rim does not read as a crease.
    """
    tri = triangles.detach().to("cpu", torch.int64)
    key = (num_vertices, tri.shape[0], hash(tri.numpy().tobytes()), dtype, str(triangles.device))
    if key in _SMOOTHERS:
        return _SMOOTHERS[key]
    lo, hi, count = _undirected_edges(tri, num_vertices)
    border = torch.zeros(num_vertices, dtype=torch.bool)
    border[lo[count == 1]] = True
    border[hi[count == 1]] = True
    rows, cols = torch.cat([lo, hi]), torch.cat([hi, lo])
    keep = ~border[rows]
    pinned = border.nonzero().squeeze(1)
    rows, cols = torch.cat([rows[keep], pinned]), torch.cat([cols[keep], pinned])
    order = torch.argsort(rows * num_vertices + cols)
    rows, cols = rows[order], cols[order]
    counts = torch.bincount(rows, minlength=num_vertices)
    values = 1.0 / counts.clamp_min(1).to(dtype)[rows]
    crow = torch.zeros(num_vertices + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=crow[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _SMOOTHERS[key] = torch.sparse_csr_tensor(
            crow, cols, values, size=(num_vertices, num_vertices)).to(triangles.device)
    return _SMOOTHERS[key]


CAVITY_ITERATIONS = 12  # umbrella smoothing steps: a diffusion scale of ~1 cm on ICT's face
CAVITY_DEPTH_CM = 0.15  # concavity (cm) that darkens the ambient term by 1 - 1/e at strength 1


def cavity(vertices: torch.Tensor, triangles: torch.Tensor, normals: torch.Tensor,
           iterations: int = CAVITY_ITERATIONS) -> torch.Tensor:
    """Signed concavity [B, V] (model units) of meshes [B, V, 3]: how far each vertex lies
    below the mesh smoothed by ``iterations`` umbrella steps, along its normal.

    Positive in folds and creases (nasolabial fold, brow furrows, crow's feet, eye and mouth
    corners), negative on ridges. Computed on the mesh as given, so the folds of each
    expression show. One sparse product per step over all meshes of the batch.
    """
    from facesym.render.raster_numba import numba_available, smooth_offsets_cpu

    batch, num_vertices, _ = vertices.shape
    op = _smoother(triangles, num_vertices, vertices.dtype)
    flat = vertices.permute(1, 0, 2).reshape(num_vertices, batch * 3)
    if flat.device.type == "cpu" and numba_available():
        # the same row-by-row sums, compiled and threaded: 5x torch's CSR product here
        diff = smooth_offsets_cpu(op, flat, iterations)
    else:
        smooth = flat
        for _ in range(iterations):
            smooth = op @ smooth
        diff = smooth - flat
    offset = diff.view(num_vertices, batch, 3).permute(1, 0, 2)
    return (offset * normals).sum(-1)


def relative_cavity(vertices: torch.Tensor, triangles: torch.Tensor, normals: torch.Tensor,
                    neutral_vertices: torch.Tensor | None = None, absolute: float = 1.0,
                    iterations: int = CAVITY_ITERATIONS) -> torch.Tensor:
    """Concavity [B, V] of meshes [B, V, 3] relative to their identities' neutral meshes.

    ``concavity(deformed) - (1 - absolute) * concavity(neutral)``: at ``absolute = 0`` only
    what the expression adds (its folds), not the identity's resting folds; at 1 (or without
    ``neutral_vertices``) the plain :func:`cavity`. ``neutral_vertices`` is [N, V, 3] with N
    dividing B: neutral n serves the B/N consecutive meshes n·B/N .. (n+1)·B/N − 1 (all
    strengths and sides of one face), so its concavity is computed once.
    """
    conc = cavity(vertices, triangles, normals, iterations)
    if neutral_vertices is None or absolute == 1.0:
        return conc
    batch, n = vertices.shape[0], neutral_vertices.shape[0]
    if n == 0 or batch % n:
        raise ValueError(f"neutral_vertices: {n} meshes do not divide the batch of {batch}")
    neutral = neutral_vertices.to(device=vertices.device, dtype=vertices.dtype)
    rest = cavity(neutral, triangles, vertex_normals(neutral, triangles), iterations)
    return conc - (1.0 - absolute) * rest.repeat_interleave(batch // n, 0)


def cavity_occlusion(concavity: torch.Tensor, strength: float,
                     depth: float = CAVITY_DEPTH_CM) -> torch.Tensor:
    """Ambient visibility [B, V, 1] in [0.3, 1] from concavity [B, V]: exp(-strength·c/depth)
    in folds (floored at 0.3: a fold is shaded, not black), 1 elsewhere."""
    return torch.exp(-strength * concavity.clamp_min(0.0) / depth).clamp_min(0.3).unsqueeze(-1)


_EDGES: dict[tuple, torch.Tensor] = {}


def mesh_edges(triangles: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """Unique undirected edges [E, 2] of a triangle mesh, cached per mesh."""
    tri = triangles.detach().to("cpu", torch.int64)
    key = (num_vertices, tri.shape[0], hash(tri.numpy().tobytes()), str(triangles.device))
    if key not in _EDGES:
        lo, hi, _ = _undirected_edges(tri, num_vertices)
        _EDGES[key] = torch.stack([lo, hi], 1).to(triangles.device)
    return _EDGES[key]


WRINKLE_ITERATIONS = 4  # umbrella smoothing of the compression field (~0.4 cm on ICT's face)
WRINKLE_ONSET = 0.15  # compression below this leaves the skin smooth (it thins, not folds)
WRINKLE_STRAIN = 0.10  # compression beyond the onset that darkens by 1 - 1/e at strength 1


def compression(vertices: torch.Tensor, triangles: torch.Tensor,
                neutral_vertices: torch.Tensor,
                iterations: int = WRINKLE_ITERATIONS) -> torch.Tensor:
    """Skin compression [B, V] in 0..1 of meshes [B, V, 3] against their neutral meshes.

    Per vertex the strongest shortening of an incident edge (1 - deformed / neutral length,
    0 where every edge keeps or gains length), smoothed by ``iterations`` umbrella steps.
    Skin that an expression compresses folds into wrinkles (glabellar lines of AU4, nasal
    bridge lines of AU9, crow's feet of AU6, the chin boss of AU17, forehead lines of
    AU1+2), detail the blendshape meshes are too coarse to carry. ``neutral_vertices`` is
    [N, V, 3] with N dividing B, as in :func:`relative_cavity`.
    """
    batch, num_vertices, _ = vertices.shape
    n = neutral_vertices.shape[0]
    if n == 0 or batch % n:
        raise ValueError(f"neutral_vertices: {n} meshes do not divide the batch of {batch}")
    neutral = neutral_vertices.to(device=vertices.device, dtype=vertices.dtype)
    neutral = neutral.repeat_interleave(batch // n, 0)
    e = mesh_edges(triangles, num_vertices)
    length = (vertices[:, e[:, 0]] - vertices[:, e[:, 1]]).norm(dim=-1)
    rest = (neutral[:, e[:, 0]] - neutral[:, e[:, 1]]).norm(dim=-1).clamp_min(1e-6)
    shortening = (1.0 - length / rest).clamp(0.0, 1.0)  # [B, E]
    per_vertex = torch.zeros(batch, num_vertices, dtype=vertices.dtype, device=vertices.device)
    for end in (0, 1):
        index = e[:, end].unsqueeze(0).expand(batch, -1)
        per_vertex = per_vertex.scatter_reduce(1, index, shortening, reduce="amax")
    op = _smoother(triangles, num_vertices, vertices.dtype)
    field = per_vertex.T.contiguous()  # [V, B]
    for _ in range(iterations):
        field = op @ field
    return field.T


def wrinkle_shading(squeeze: torch.Tensor, strength: float, onset: float = WRINKLE_ONSET,
                    strain: float = WRINKLE_STRAIN) -> torch.Tensor:
    """Visibility [B, V, 1] in [0.5, 1] from compression [B, V]:
    exp(-strength·max(c - onset, 0)/strain)."""
    excess = (squeeze - onset).clamp_min(0.0)
    return torch.exp(-strength * excess / strain).clamp_min(0.5).unsqueeze(-1)


def shade(
    albedo: torch.Tensor,
    vertices: torch.Tensor,
    triangles: torch.Tensor,
    normals: torch.Tensor,
    light_dir: torch.Tensor,
    ambient: float | torch.Tensor,
    diffuse: float | torch.Tensor,
    lighting: str = "lambert",
    cavity_strength: float = 0.0,
    neutral_vertices: torch.Tensor | None = None,
    cavity_absolute: float = 1.0,
    wrinkles: float = 0.0,
) -> torch.Tensor:
    """Vertex colours [B, V, 3]: ``lambert`` (constant ambient) or ``sh`` (spherical-harmonics
    ambient) plus the key light, with optional cavity shading of the deformed meshes and
    wrinkle shading where the expression compresses the skin (``wrinkles`` > 0 needs
    ``neutral_vertices``; see :func:`compression`).

    The cavity term darkens the ambient light fully and the key light by half of its
    occlusion (folds still catch some direct light). With ``neutral_vertices`` (the same
    identities without expression, same pose) the concavity is taken relative to them, see
    :func:`relative_cavity` (``cavity_absolute`` = weight of the identity's own folds). With
    ``lighting="lambert"`` and no cavity this is exactly :func:`lambert`.
    """
    if lighting not in ("lambert", "sh"):
        raise ValueError(f"lighting must be 'lambert' or 'sh', got {lighting!r}")
    if wrinkles > 0 and neutral_vertices is None:
        raise ValueError("wrinkle shading needs the neutral meshes (neutral_vertices)")
    if lighting == "lambert" and cavity_strength == 0 and wrinkles == 0:
        return lambert(albedo, normals, light_dir, ambient, diffuse)
    light = torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device)
    light = torch.nn.functional.normalize(light.reshape(-1, 3), dim=-1)
    cos = (normals * light.unsqueeze(1)).sum(-1, keepdim=True).clamp_min(0.0)
    amb = _per_batch(ambient, normals)
    if lighting == "sh":
        amb = amb * sh_irradiance(normals)
    key = _per_batch(diffuse, normals) * cos
    if cavity_strength > 0:
        conc = relative_cavity(vertices, triangles, normals, neutral_vertices, cavity_absolute)
        vis = cavity_occlusion(conc, cavity_strength)
        amb = amb * vis
        key = key * (0.5 + 0.5 * vis)
    if wrinkles > 0:
        # a wrinkle's groove is shaded under any light, so both terms darken
        vis = wrinkle_shading(compression(vertices, triangles, neutral_vertices), wrinkles)
        amb, key = amb * vis, key * vis
    return albedo * (amb + key)
