"""Vectorised z-buffer triangle rasteriser in plain PyTorch (runs anywhere, tuned for CPU).

Outline:

1. per triangle (for a group of images at once): the range of pixel centres its bounding
   box covers, and the affine screen-space coefficients of its three barycentrics and of
   1/depth (both are exactly affine in pixel coordinates);
2. triangles are bucketed by bounding-box size (rows x cols, padded to 1, 2, 3, 4, 6, 8, 12,
   ...) so each bucket evaluates a dense ``[triangles, rows, cols]`` candidate grid by
   broadcasting, without per-candidate gathers;
3. each covered candidate writes a packed int64 key ``(float bits of 1/depth) << 32 |
   (MAX - triangle)``; ``scatter_reduce(amax)`` keeps the nearest surface and, on exact depth
   ties, the lowest triangle index, whatever the evaluation order;
4. the winners' barycentrics are re-evaluated and made perspective-correct.

Triangles with a vertex at depth <= ``NEAR_DEPTH`` (behind or at the camera) are dropped, not
clipped: fine for objects well in front of the camera, as here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEAR_DEPTH = 1e-6
# Slack on the inside test (barycentric units) so float error never opens cracks between
# triangles sharing an edge; shared-edge pixels are then covered twice and the key tie-break
# picks one deterministically.
INSIDE_TOLERANCE = 1e-6
_MIN_AREA2 = 1e-12
_LOW_MASK = 0xFFFFFFFF
# Candidate pixels evaluated at once (~50 bytes of temporaries each).
DEFAULT_MAX_CANDIDATES = 1 << 20
# Triangles (summed over images) set up at once (~150 bytes each, plus the candidates).
DEFAULT_MAX_FACES = 1 << 18


@dataclass
class _Faces:
    """Triangles that can cover a pixel centre, flattened over images, sorted by bucket."""

    global_id: torch.Tensor  # [N] int64: image * F + triangle
    slot: torch.Tensor  # [images * F] int64: position in this structure (or garbage)
    col0: torch.Tensor  # [N] int64: first pixel column of the bounding box
    row0: torch.Tensor  # [N] int64
    ncols: torch.Tensor  # [N] int64: bounding-box width in pixels (>= 1)
    nrows: torch.Tensor  # [N] int64
    pixel0: torch.Tensor  # [N] int64: flat z-buffer index of pixel (col0, row0) of its image
    # Rows: lambda0, lambda1, lambda2, 1/depth at the centre of pixel (col0, row0), and their
    # increments per pixel column / row: [4, N] each.
    base: torch.Tensor
    step_col: torch.Tensor
    step_row: torch.Tensor
    inv_depth: torch.Tensor  # [3, N] 1/depth of the corners
    buckets: list[tuple[int, int, int, int]]  # (start, stop, rows, cols) slices of N


def _bucket_sizes(limit: int) -> list[int]:
    """Padded bounding-box side lengths: 1, 2, 3, 4, 6, 8, 12, 16, ... up to >= limit."""
    sizes, power = [1, 2, 3], 4
    while sizes[-1] < limit:
        sizes += [power, power * 3 // 2]
        power *= 2
    return sizes


def _pixel_range(lo: torch.Tensor, hi: torch.Tensor, size: int) -> tuple[torch.Tensor, ...]:
    """First index and count of pixel centres (i + 0.5) inside [lo, hi], clipped to the image."""
    first = torch.ceil(lo.clamp(-1.0, size + 1.0) - 0.5).clamp_min_(0).long()
    last = torch.floor(hi.clamp(-1.0, size + 1.0) - 0.5).clamp_max_(size - 1).long()
    return first, last - first + 1


def _corner_arrays(
    pixel_xy: torch.Tensor, depth: torch.Tensor, triangles: torch.Tensor
) -> list[torch.Tensor]:
    """Corner values [images * F] in the order x0 x1 x2 y0 y1 y2 z0 z1 z2."""
    images, num_vertices = depth.shape
    offsets = torch.arange(images, device=depth.device).unsqueeze(1) * num_vertices
    flat_index = [(triangles[:, c] + offsets).view(-1) for c in range(3)]
    per_vertex = (pixel_xy[..., 0].reshape(-1), pixel_xy[..., 1].reshape(-1), depth.reshape(-1))
    return [values.index_select(0, index) for values in per_vertex for index in flat_index]


def _signed_area2(x: list[torch.Tensor], y: list[torch.Tensor]) -> torch.Tensor:
    """Twice the signed area in pixel coordinates (negative = counter-clockwise on screen)."""
    return (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])


def _min3(v: list[torch.Tensor]) -> torch.Tensor:
    return torch.minimum(torch.minimum(v[0], v[1]), v[2])


def _max3(v: list[torch.Tensor]) -> torch.Tensor:
    return torch.maximum(torch.maximum(v[0], v[1]), v[2])


def _size_classes(sizes: list[int], limit: int, device: torch.device) -> torch.Tensor:
    """Lookup table: bbox side length 0..limit -> index of the smallest size >= it."""
    return torch.searchsorted(torch.tensor(sizes), torch.arange(limit + 1)).to(device)


def _sort_into_buckets(
    boxes: list[torch.Tensor], keep: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """Order of the kept triangles grouped by padded bbox size, and the bucket slices."""
    sizes = _bucket_sizes(max(height, width))
    lut = _size_classes(sizes, max(height, width), keep.device)
    num = len(sizes)
    bucket = lut[boxes[3].clamp(0, height)] * num + lut[boxes[2].clamp(0, width)]
    bucket = bucket.masked_fill_(~keep, num * num).to(torch.int16)  # dropped: last bucket
    order = torch.sort(bucket, stable=True).indices
    counts = torch.bincount(bucket.long(), minlength=num * num + 1)[:-1].tolist()
    slices, start = [], 0
    for bucket_id, count in enumerate(counts):
        if count:
            slices.append((start, start + count, sizes[bucket_id // num], sizes[bucket_id % num]))
            start += count
    return order[:start], slices


def _affine_coefficients(
    corners: list[torch.Tensor], boxes: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Barycentrics and 1/depth at the first bbox pixel centre, per column and per row.

    Returns base, step_col, step_row [4, N] and the corners' 1/depth [3, N].
    """
    x, y, z = corners[0:3], corners[3:6], corners[6:9]
    inv_area2 = _signed_area2(x, y).reciprocal_()
    origin_x = boxes[0].to(inv_area2.dtype) + 0.5  # centre of the first bbox pixel
    origin_y = boxes[1].to(inv_area2.dtype) + 0.5
    rel_x, rel_y = [c - origin_x for c in x], [c - origin_y for c in y]
    base, step_col, step_row = (torch.empty(4, inv_area2.numel(), dtype=inv_area2.dtype,
                                            device=inv_area2.device) for _ in range(3))
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        cross = rel_x[j] * rel_y[k] - rel_y[j] * rel_x[k]
        torch.mul(cross, inv_area2, out=base[i])
        torch.mul(y[j] - y[k], inv_area2, out=step_col[i])
        torch.mul(x[k] - x[j], inv_area2, out=step_row[i])
    inv_depth = torch.stack(z).reciprocal_()
    for coef in (base, step_col, step_row):
        torch.sum(coef[:3] * inv_depth, dim=0, out=coef[3])
    return base, step_col, step_row, inv_depth


def _setup_faces(
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    triangles: torch.Tensor,
    height: int,
    width: int,
    cull_backfaces: bool,
) -> _Faces:
    """Bounding boxes, buckets and affine coefficients of the triangles that may be drawn."""
    corners = _corner_arrays(pixel_xy, depth, triangles)
    x, y, z = corners[0:3], corners[3:6], corners[6:9]
    col0, ncols = _pixel_range(_min3(x), _max3(x), width)
    row0, nrows = _pixel_range(_min3(y), _max3(y), height)
    boxes = [col0, row0, ncols, nrows]
    area2 = _signed_area2(x, y)
    keep = (ncols > 0) & (nrows > 0) & (area2.abs() > _MIN_AREA2) & area2.isfinite()
    keep &= _min3(z) > NEAR_DEPTH
    if cull_backfaces:
        keep &= area2 < 0  # counter-clockwise seen by the camera = negative in y-down pixels
    order, buckets = _sort_into_buckets(boxes, keep, height, width)
    corners = [c.index_select(0, order) for c in corners]
    boxes = [b.index_select(0, order) for b in boxes]
    base, step_col, step_row, inv_depth = _affine_coefficients(corners, boxes)
    slot = torch.empty(keep.numel(), dtype=torch.int64, device=keep.device)
    slot[order] = torch.arange(order.numel(), device=keep.device)
    image = order // triangles.shape[0]
    pixel0 = image * (height * width) + boxes[1] * width + boxes[0]
    return _Faces(global_id=order, slot=slot, col0=boxes[0], row0=boxes[1], ncols=boxes[2],
                  nrows=boxes[3], pixel0=pixel0, base=base, step_col=step_col,
                  step_row=step_row, inv_depth=inv_depth, buckets=buckets)


def _plane(faces: _Faces, row: int, part: slice, drow: torch.Tensor, dcol: torch.Tensor
           ) -> torch.Tensor:
    """Affine quantity ``row`` of the triangles in ``part`` over their [n, rows, cols] grids."""
    values = faces.base[row, part, None]
    if drow.numel() > 1:
        values = torch.addcmul(values, drow, faces.step_row[row, part, None])
    values = values.unsqueeze(2)
    if dcol.numel() > 1:
        values = torch.addcmul(values, dcol, faces.step_col[row, part, None, None])
    return values


def _splat_part(
    zbuffer: torch.Tensor, faces: _Faces, part: slice, rows: int, cols: int, width: int
) -> None:
    """Depth-test the triangles ``part`` (bboxes <= rows x cols) into the packed zbuffer."""
    device, dtype = zbuffer.device, faces.base.dtype
    drow_i, dcol_i = torch.arange(rows, device=device), torch.arange(cols, device=device)
    drow, dcol = drow_i.to(dtype), dcol_i.to(dtype)
    outside = _plane(faces, 0, part, drow, dcol) < -INSIDE_TOLERANCE
    outside |= _plane(faces, 1, part, drow, dcol) < -INSIDE_TOLERANCE
    outside |= _plane(faces, 2, part, drow, dcol) < -INSIDE_TOLERANCE
    padded = rows > 4 or cols > 4  # buckets of sizes 1..4 are exact, larger ones are padded
    if padded:
        outside |= drow_i[None, :, None] >= faces.nrows[part, None, None]
        outside |= dcol_i >= faces.ncols[part, None, None]
    # For positive floats the IEEE bit pattern read as an integer grows with the value.
    keys = _plane(faces, 3, part, drow, dcol).view(torch.int32).long()
    keys <<= 32
    keys |= (_LOW_MASK - faces.global_id[part])[:, None, None]
    keys.masked_fill_(outside, -1)  # -1 never wins amax, so its pixel index may be any slot
    pixels = (faces.pixel0[part, None] + drow_i * width).unsqueeze(2) + dcol_i
    if padded:  # padding may run past the last pixel
        pixels.clamp_max_(zbuffer.numel() - 1)
    zbuffer.scatter_reduce_(0, pixels.view(-1), keys.view(-1), "amax")


def _splat_all(faces: _Faces, num_pixels: int, width: int, max_candidates: int) -> torch.Tensor:
    """Depth-resolved packed keys [num_pixels] (-1 where nothing is drawn)."""
    zbuffer = torch.full((num_pixels,), -1, dtype=torch.int64, device=faces.base.device)
    for start, stop, rows, cols in faces.buckets:
        step = max(1, max_candidates // (rows * cols))
        for first in range(start, stop, step):
            _splat_part(zbuffer, faces, slice(first, min(stop, first + step)), rows, cols, width)
    return zbuffer


def _resolve(
    keys: torch.Tensor,
    faces: _Faces,
    num_faces: int,
    height: int,
    width: int,
    triangle_id: torch.Tensor,
    barycentrics: torch.Tensor,
) -> None:
    """Write triangle ids [P] and perspective-correct barycentrics [P, 3] for keys [P]."""
    hit = (keys >= 0).nonzero().squeeze(1)
    global_id = _LOW_MASK - (keys.index_select(0, hit) & _LOW_MASK)
    triangle_id.index_copy_(0, hit, global_id % num_faces)
    winner = faces.slot.index_select(0, global_id)

    def at_winner(values: torch.Tensor) -> torch.Tensor:
        return values.index_select(0, winner)

    image_pixel = hit % (height * width)
    dcol = (image_pixel % width - at_winner(faces.col0)).to(faces.base.dtype)
    drow = (image_pixel // width - at_winner(faces.row0)).to(faces.base.dtype)
    weights = torch.empty(hit.numel(), 3, dtype=faces.base.dtype, device=keys.device)
    for i in range(3):
        lam = at_winner(faces.base[i]).addcmul_(dcol, at_winner(faces.step_col[i]))
        lam.addcmul_(drow, at_winner(faces.step_row[i])).clamp_min_(0.0)
        torch.mul(lam, at_winner(faces.inv_depth[i]), out=weights[:, i])
    weights /= weights.sum(1, keepdim=True).clamp_min_(1e-30)
    barycentrics.index_copy_(0, hit, weights)


def rasterize(
    pixel_xy: torch.Tensor,
    depth: torch.Tensor,
    triangles: torch.Tensor,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    max_faces: int = DEFAULT_MAX_FACES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise a batch of projected meshes with a z-buffer; the nearest positive depth wins.

    Args:
        pixel_xy: [B, V, 2] vertex pixel coordinates (x right, y down, pixel centres at +0.5).
        depth: [B, V] vertex depth along the viewing axis (positive in front of the camera).
        triangles: [F, 3] vertex indices, shared by the batch.
        height, width: image size in pixels.
        cull_backfaces: drop triangles that are clockwise as seen by the camera (front faces
            are counter-clockwise, the OpenGL convention).
        max_candidates: candidate pixels evaluated at once (bounds temporary memory).
        max_faces: images are processed in groups of about this many triangles (at least one
            image per group); smaller groups also stay in cache better.

    Returns:
        triangle_id [B, H, W] int64 (-1 = background; on exact depth ties the lowest index)
        and perspective-correct barycentrics [B, H, W, 3] (corner weights; 0 on background).
    """
    pixel_xy = pixel_xy.float()
    depth = depth.float()
    triangles = triangles.to(device=pixel_xy.device, dtype=torch.int64)
    batch, num_faces = pixel_xy.shape[0], triangles.shape[0]
    if batch == 0 or num_faces == 0:
        return (torch.full((batch, height, width), -1, dtype=torch.int64, device=depth.device),
                torch.zeros((batch, height, width, 3), device=depth.device))
    triangle_id = torch.full((batch, height, width), -1, dtype=torch.int64, device=depth.device)
    barycentrics = torch.zeros((batch, height, width, 3), device=depth.device)
    images_per_chunk = max(1, max_faces // num_faces)
    for start in range(0, batch, images_per_chunk):
        stop = min(batch, start + images_per_chunk)
        faces = _setup_faces(pixel_xy[start:stop], depth[start:stop], triangles,
                             height, width, cull_backfaces)
        keys = _splat_all(faces, (stop - start) * height * width, width, max_candidates)
        _resolve(keys, faces, num_faces, height, width, triangle_id[start:stop].view(-1),
                 barycentrics[start:stop].view(-1, 3))
    return triangle_id, barycentrics
