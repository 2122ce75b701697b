"""Compiled (numba) kernels: the ``numba`` rasteriser and CPU vertex normals.

Imported only when numba is installed.

Each image is rasterised by one thread (``prange`` over images), so results do not depend on
the thread count or the batch size. Per image:

1. depth pass: triangles in index order, each over the pixel centres of its bounding box.
   The barycentrics and 1/depth are evaluated with the float32 formulas of
   ``facesym.render.raster_torch`` (same origin, coefficients, evaluation order and inside
   tolerance), so both backends agree on coverage, depth order and ties. A pixel is taken
   only by a strictly larger 1/depth, so on exact ties the lowest triangle index stays, as in
   the torch rasteriser. A win stores the clamped, depth-weighted barycentrics (evaluated
   in the order raster_torch resolves them).
2. resolve pass: per pixel, the stored weights are normalised and either written out
   (``rasterize``) or used to blend the vertex colours straight into uint8 (``render``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from facesym.render.raster_torch import _MIN_AREA2, INSIDE_TOLERANCE, NEAR_DEPTH

_F32 = np.float32
_NEAR = _F32(NEAR_DEPTH)
_MIN_AREA = _F32(_MIN_AREA2)
_TOLERANCE = _F32(-INSIDE_TOLERANCE)
_HALF = _F32(0.5)
_ONE = _F32(1.0)
_ZERO = _F32(0.0)
_TINY = _F32(1e-30)
_LEVELS = _F32(255.0)


@njit(cache=True, inline="always")
def _pixel_range(lo: float, hi: float, size: int) -> tuple[int, int]:
    """First and last pixel whose centre (i + 0.5) lies in [lo, hi], clipped to the image.

    ceil/floor by truncation (exact on the clamped range, and cheaper than libm calls).
    """
    limit = _F32(size + 1.0)
    lo = min(max(lo, _F32(-1.0)), limit) - _HALF
    hi = min(max(hi, _F32(-1.0)), limit) - _HALF
    first = int(lo)
    first += _F32(first) < lo
    last = int(hi)
    last -= _F32(last) > hi
    return max(first, 0), min(last, size - 1)


@njit(cache=True, nogil=True, boundscheck=False)
def _vertex_table(xy, depth, table):
    """Per vertex x, y, depth and 1/depth side by side (one cache line per corner)."""
    for v in range(depth.shape[0]):
        table[v, 0] = xy[v, 0]
        table[v, 1] = xy[v, 1]
        table[v, 2] = depth[v]
        table[v, 3] = _ONE / depth[v]


@njit(cache=True, nogil=True, boundscheck=False)
def _depth_pass(table, triangles, height, width, cull, zbuf, winner, weights):
    """Z-buffer one image: 1/depth, winning triangle and depth-weighted barycentrics."""
    for f in range(triangles.shape[0]):
        a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
        x0, y0 = table[a, 0], table[a, 1]
        x1, y1 = table[b, 0], table[b, 1]
        x2, y2 = table[c, 0], table[c, 1]
        if not (table[a, 2] > _NEAR and table[b, 2] > _NEAR and table[c, 2] > _NEAR):
            continue
        # Most triangles of a dense mesh cover no pixel centre: reject those early.
        col0, col1 = _pixel_range(min(min(x0, x1), x2), max(max(x0, x1), x2), width)
        if col1 < col0:
            continue
        row0, row1 = _pixel_range(min(min(y0, y1), y2), max(max(y0, y1), y2), height)
        if row1 < row0:
            continue
        area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if not (abs(area2) > _MIN_AREA and np.isfinite(area2)):
            continue
        if cull and not area2 < _ZERO:
            continue
        # Affine coefficients at the centre of the first bbox pixel (as raster_torch).
        inv_area2 = _ONE / area2
        ox = _F32(col0) + _HALF
        oy = _F32(row0) + _HALF
        rx0, rx1, rx2 = x0 - ox, x1 - ox, x2 - ox
        ry0, ry1, ry2 = y0 - oy, y1 - oy, y2 - oy
        b0 = (rx1 * ry2 - ry1 * rx2) * inv_area2
        b1 = (rx2 * ry0 - ry2 * rx0) * inv_area2
        b2 = (rx0 * ry1 - ry0 * rx1) * inv_area2
        sc0, sc1, sc2 = (y1 - y2) * inv_area2, (y2 - y0) * inv_area2, (y0 - y1) * inv_area2
        sr0, sr1, sr2 = (x2 - x1) * inv_area2, (x0 - x2) * inv_area2, (x1 - x0) * inv_area2
        iz0, iz1, iz2 = table[a, 3], table[b, 3], table[c, 3]
        b3 = b0 * iz0 + b1 * iz1 + b2 * iz2
        sc3 = sc0 * iz0 + sc1 * iz1 + sc2 * iz2
        sr3 = sr0 * iz0 + sr1 * iz1 + sr2 * iz2
        for row in range(row0, row1 + 1):
            drow = _F32(row - row0)
            r0, r1, r2 = b0 + drow * sr0, b1 + drow * sr1, b2 + drow * sr2
            r3 = b3 + drow * sr3
            base = row * width
            for col in range(col0, col1 + 1):
                dcol = _F32(col - col0)
                l0 = r0 + dcol * sc0
                l1 = r1 + dcol * sc1
                l2 = r2 + dcol * sc2
                inv_z = r3 + dcol * sc3
                p = base + col
                # Non-short-circuit '&' keeps the inner loop free of extra branches.
                if ((l0 >= _TOLERANCE) & (l1 >= _TOLERANCE) & (l2 >= _TOLERANCE)
                        & (inv_z > zbuf[p])):
                    zbuf[p] = inv_z
                    winner[p] = f
                    # raster_torch re-evaluates the winner's barycentrics column term first.
                    w0 = (b0 + dcol * sc0) + drow * sr0
                    w1 = (b1 + dcol * sc1) + drow * sr1
                    w2 = (b2 + dcol * sc2) + drow * sr2
                    weights[p, 0] = max(w0, _ZERO) * iz0
                    weights[p, 1] = max(w1, _ZERO) * iz1
                    weights[p, 2] = max(w2, _ZERO) * iz2


@njit(cache=True, inline="always")
def _normalised(weights, p):
    """Perspective-correct barycentrics of pixel ``p`` from its depth-weighted ones."""
    w0, w1, w2 = weights[p, 0], weights[p, 1], weights[p, 2]
    total = max(w0 + w1 + w2, _TINY)
    return w0 / total, w1 / total, w2 / total


@njit(cache=True, inline="always")
def _rasterize_image(xy, depth, triangles, height, width, cull):
    """Depth pass of one image; returns winner [H*W] (-1 = none) and weights [H*W, 3]."""
    num_pixels = height * width
    table = np.empty((depth.shape[0], 4), dtype=np.float32)
    _vertex_table(xy, depth, table)
    zbuf = np.full(num_pixels, _F32(-1.0), dtype=np.float32)
    winner = np.full(num_pixels, -1, dtype=np.int32)
    weights = np.empty((num_pixels, 3), dtype=np.float32)
    _depth_pass(table, triangles, height, width, cull, zbuf, winner, weights)
    return winner, weights


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def rasterize_ids(xy, depth, triangles, height, width, cull, triangle_id, barycentrics):
    """Fill triangle_id [B, H*W] (int64, -1 = background) and barycentrics [B, H*W, 3]."""
    for i in prange(xy.shape[0]):
        winner, weights = _rasterize_image(xy[i], depth[i], triangles, height, width, cull)
        for p in range(height * width):
            f = winner[p]
            triangle_id[i, p] = f
            if f < 0:
                barycentrics[i, p, 0] = _ZERO
                barycentrics[i, p, 1] = _ZERO
                barycentrics[i, p, 2] = _ZERO
            else:
                w0, w1, w2 = _normalised(weights, p)
                barycentrics[i, p, 0] = w0
                barycentrics[i, p, 1] = w1
                barycentrics[i, p, 2] = w2


@njit(cache=True, inline="always")
def _to_level(value):
    """Colour in 0..1 to 0..255 rounded half to even (as torch.round), as uint8."""
    return np.uint8(np.rint(min(max(value, _ZERO), _ONE) * _LEVELS))


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def render_colors(xy, depth, triangles, colors, background, height, width, cull, images):
    """Fill uint8 images [B, H*W, 3] with per-vertex colours [B, V, 3] blended per pixel."""
    for i in prange(xy.shape[0]):
        winner, weights = _rasterize_image(xy[i], depth[i], triangles, height, width, cull)
        color = colors[i]
        out = images[i]
        for p in range(height * width):
            f = winner[p]
            if f < 0:
                out[p, 0] = background[0]
                out[p, 1] = background[1]
                out[p, 2] = background[2]
                continue
            w0, w1, w2 = _normalised(weights, p)
            a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
            for k in range(3):
                blended = color[a, k] * w0 + color[b, k] * w1 + color[c, k] * w2
                out[p, k] = _to_level(blended)


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def vertex_normals(vertices, triangles, out):
    """Area-weighted unit vertex normals out [B, V, 3] of meshes vertices [B, V, 3].

    Face normals cross(v1 - v0, v2 - v0) are summed into their corners in triangle order,
    then normalised (zero where the sum is zero), each image on one thread.
    """
    for i in prange(vertices.shape[0]):
        v = vertices[i]
        acc = out[i]
        acc[:] = 0
        for f in range(triangles.shape[0]):
            a, b, c = triangles[f, 0], triangles[f, 1], triangles[f, 2]
            e1x, e1y, e1z = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
            e2x, e2y, e2z = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
            nx = e1y * e2z - e1z * e2y
            ny = e1z * e2x - e1x * e2z
            nz = e1x * e2y - e1y * e2x
            for k in (a, b, c):
                acc[k, 0] += nx
                acc[k, 1] += ny
                acc[k, 2] += nz
        for k in range(acc.shape[0]):
            length = np.sqrt(acc[k, 0] * acc[k, 0] + acc[k, 1] * acc[k, 1]
                             + acc[k, 2] * acc[k, 2])
            if length > 1e-12:  # as torch.nn.functional.normalize(eps=1e-12)
                acc[k, 0] /= length
                acc[k, 1] /= length
                acc[k, 2] /= length
            else:
                acc[k, 0] /= 1e-12
                acc[k, 1] /= 1e-12
                acc[k, 2] /= 1e-12


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def project(points, rotation, eye, focal, centre, pixel_xy, depth):
    """Perspective projection of points [N, 3] into pixel_xy [N, 2] and depth [N].

    The float operations of ``PerspectiveCamera.project``: rotation @ (point - eye), then
    focal / depth scaling and the image centre offset.
    """
    for n in prange(points.shape[0]):
        d0 = points[n, 0] - eye[0]
        d1 = points[n, 1] - eye[1]
        d2 = points[n, 2] - eye[2]
        x = rotation[0, 0] * d0 + rotation[0, 1] * d1 + rotation[0, 2] * d2
        y = rotation[1, 0] * d0 + rotation[1, 1] * d1 + rotation[1, 2] * d2
        z = rotation[2, 0] * d0 + rotation[2, 1] * d1 + rotation[2, 2] * d2
        scale = focal / z
        pixel_xy[n, 0] = x * scale + centre[0]
        pixel_xy[n, 1] = y * scale + centre[1]
        depth[n] = z


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def lambert(albedo, normals, light, ambient, diffuse, out):
    """out[b, v] = albedo[b or 0, v] * (ambient[b] + diffuse[b] * max(0, normal . light[b]))."""
    for i in prange(normals.shape[0]):
        a = albedo[i % albedo.shape[0]]
        n = normals[i]
        lx, ly, lz = light[i, 0], light[i, 1], light[i, 2]
        for v in range(n.shape[0]):
            cos = n[v, 0] * lx + n[v, 1] * ly + n[v, 2] * lz
            if cos < 0:
                cos = lx - lx  # a zero of the arrays' float type, as clamp_min(0)
            shade = ambient[i] + diffuse[i] * cos
            out[i, v, 0] = a[v, 0] * shade
            out[i, v, 1] = a[v, 1] * shade
            out[i, v, 2] = a[v, 2] * shade


@njit(cache=True, nogil=True, parallel=True, boundscheck=False)
def smooth_offsets(crow, cols, values, x, iterations, out):
    """out = (S^iterations - I) x for the CSR matrix S (crow, cols, values) and x [V, C].

    Each step is a row-parallel sparse product (a row's terms summed in column order, as a
    CSR product does); two buffers ping-pong between steps.
    """
    a = x.copy()
    b = np.empty_like(x)
    n_rows, n_cols = x.shape
    for _ in range(iterations):
        for r in prange(n_rows):
            for c in range(n_cols):
                b[r, c] = a[r, c] - a[r, c]
            for k in range(crow[r], crow[r + 1]):
                w = values[k]
                src = cols[k]
                for c in range(n_cols):
                    b[r, c] += w * a[src, c]
        a, b = b, a
    for r in prange(n_rows):
        for c in range(n_cols):
            out[r, c] = a[r, c] - x[r, c]
