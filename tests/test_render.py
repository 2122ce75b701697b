"""Tests of facesym.render on meshes built here (spheres, triangles), without mocks."""

from __future__ import annotations

import math

import pytest
import torch

from facesym.render import (
    PerspectiveCamera,
    available_backends,
    frontal_camera,
    get_rasterizer,
    kaolin_available,
    lambert,
    project_points,
    rasterize,
    render_batch,
    rotation_matrix,
    vertex_normals,
)
from facesym.render.raster_numba import numba_available
from facesym.render.shading import _vertex_normals_numba, _vertex_normals_torch


def icosphere(subdivisions: int, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sphere mesh (float64 vertices [V, 3], triangles [F, 3]) wound CCW seen from outside."""
    t = (1.0 + 5.0**0.5) / 2.0
    verts = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t),
             (0, -1, -t), (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    faces = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
             (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
             (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    points = [torch.tensor(v, dtype=torch.float64) for v in verts]
    for _ in range(subdivisions):
        faces = _subdivide(points, faces)
    vertices = torch.stack(points)
    vertices = vertices / vertices.norm(dim=1, keepdim=True) * radius
    triangles = torch.tensor(faces, dtype=torch.int64)
    corners = vertices[triangles]
    normal = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    inward = (normal * corners.mean(1)).sum(1) < 0
    triangles[inward] = triangles[inward].flip(1)
    return vertices, triangles


def _subdivide(points: list[torch.Tensor], faces: list[tuple[int, int, int]]
               ) -> list[tuple[int, int, int]]:
    """Split each triangle in four, appending the edge midpoints to ``points``."""
    midpoint_of: dict[tuple[int, int], int] = {}

    def midpoint(a: int, b: int) -> int:
        key = (min(a, b), max(a, b))
        if key not in midpoint_of:
            midpoint_of[key] = len(points)
            points.append((points[a] + points[b]) / 2.0)
        return midpoint_of[key]

    refined = []
    for a, b, c in faces:
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        refined += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
    return refined


@pytest.fixture(scope="module")
def sphere() -> tuple[torch.Tensor, torch.Tensor]:
    return icosphere(4, radius=10.0)


def rasterize_world(vertices: torch.Tensor, triangles: torch.Tensor, camera: PerspectiveCamera,
                    **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    xy, depth = camera.project(vertices.float().unsqueeze(0))
    return rasterize(xy, depth, triangles, camera.height, camera.width, **kwargs)


# --- camera -------------------------------------------------------------------------------


def test_frontal_camera_projects_known_points() -> None:
    camera = frontal_camera(distance_cm=50.0, fov_deg=90.0, size=(80, 60))
    focal = 30.0  # (height / 2) / tan(45 deg)
    assert camera.focal_px == pytest.approx(focal)
    points = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0],
                           [5.0, -5.0, 10.0]])
    xy, depth = camera.project(points)
    expected_xy = torch.tensor([[40.0, 30.0], [40.0 + focal * 10 / 50, 30.0],
                                [40.0, 30.0 - focal * 10 / 50],
                                [40.0 + focal * 5 / 40, 30.0 + focal * 5 / 40]])
    torch.testing.assert_close(xy, expected_xy)
    torch.testing.assert_close(depth, torch.tensor([50.0, 50.0, 50.0, 40.0]))


def test_camera_from_the_side_and_batched_leading_dims() -> None:
    camera = PerspectiveCamera(eye=(100.0, 0.0, 0.0), target=(0.0, 0.0, 0.0), fov_deg=60.0,
                               width=64, height=64)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0], [20.0, 5.0, 0.0]])
    cam = camera.world_to_camera(points)
    # Looking along -x with +y up: world +z is to the camera's left, world +y is up (-y cam).
    torch.testing.assert_close(cam, torch.tensor([[0.0, 0.0, 100.0], [-10.0, 0.0, 100.0],
                                                  [0.0, -5.0, 80.0]]))
    batched = points.expand(2, 5, 3, 3)
    xy, depth = camera.project(batched)
    assert xy.shape == (2, 5, 3, 2) and depth.shape == (2, 5, 3)
    torch.testing.assert_close(project_points(points.unsqueeze(0), camera)[0], xy[0, 0])


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_compiled_projection_equals_the_torch_one() -> None:
    camera = PerspectiveCamera(eye=(30.0, -20.0, 80.0), target=(1.0, 2.0, -3.0), fov_deg=25.0,
                               width=96, height=64)
    points = torch.randn(2, 5, 300, 3, generator=torch.Generator().manual_seed(0)) * 10
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
        xy, depth = camera.project(points.to(dtype))  # compiled on the CPU
        cam = camera.world_to_camera(points.to(dtype))  # the torch formula, by hand
        expected = cam[..., :2] * (camera.focal_px / cam[..., 2:]) + torch.tensor(
            [48.0, 32.0], dtype=dtype)
        assert xy.shape == (2, 5, 300, 2) and depth.shape == (2, 5, 300) and xy.dtype == dtype
        torch.testing.assert_close(xy, expected, atol=tol, rtol=0)
        torch.testing.assert_close(depth, cam[..., 2], atol=tol, rtol=0)


def test_camera_rejects_up_parallel_to_view() -> None:
    camera = PerspectiveCamera(eye=(0.0, 10.0, 0.0), target=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="parallel"):
        camera.world_to_camera(torch.zeros(1, 3))


# --- rotation convention -------------------------------------------------------------------


def test_rotation_matrix_convention() -> None:
    nose, left, up = torch.eye(3)[2], torch.eye(3)[0], torch.eye(3)[1]
    torch.testing.assert_close(rotation_matrix(90.0) @ nose, left)  # yaw: nose to +x
    torch.testing.assert_close(rotation_matrix(0.0, 90.0) @ nose, -up)  # pitch: nose down
    torch.testing.assert_close(rotation_matrix(0.0, 0.0, 90.0) @ left, up)  # roll: left up
    r = rotation_matrix(30.0, -20.0, 10.0)
    torch.testing.assert_close(r, rotation_matrix(30.0) @ rotation_matrix(0.0, -20.0)
                               @ rotation_matrix(0.0, 0.0, 10.0))
    torch.testing.assert_close(r @ r.T, torch.eye(3))
    assert torch.linalg.det(r).item() == pytest.approx(1.0, abs=1e-6)


def test_rotation_matrix_batched() -> None:
    yaw = torch.tensor([0.0, 90.0, 180.0])
    r = rotation_matrix(yaw, 0.0, 0.0)
    assert r.shape == (3, 3, 3)
    torch.testing.assert_close(r[2] @ torch.tensor([0.0, 0.0, 1.0]),
                               torch.tensor([0.0, 0.0, -1.0]))


def test_yawed_head_turns_towards_image_right(sphere) -> None:
    """Yaw +30 moves a marker on the nose (+z) to the image right in the frontal view."""
    camera = frontal_camera(60.0, 30.0, 64)
    nose = torch.tensor([[[0.0, 0.0, 10.0]]])
    turned = nose @ rotation_matrix(30.0).mT
    assert project_points(turned, camera)[0, 0, 0] > project_points(nose, camera)[0, 0, 0] + 1


# --- rasteriser ----------------------------------------------------------------------------


def test_sphere_silhouette_matches_projected_disk(sphere) -> None:
    vertices, triangles = sphere
    distance, size = 60.0, 96
    camera = frontal_camera(distance, 30.0, size)
    triangle_id, _ = rasterize_world(vertices, triangles, camera)
    radius_px = camera.focal_px * 10.0 / math.sqrt(distance**2 - 10.0**2)
    disk_area = math.pi * radius_px**2
    drawn = (triangle_id >= 0).sum().item()
    assert drawn == pytest.approx(disk_area, rel=0.02)
    # The disk is centred on the image centre.
    rows, cols = torch.nonzero(triangle_id[0] >= 0, as_tuple=True)
    assert (cols.float() + 0.5).mean().item() == pytest.approx(size / 2, abs=0.05)
    assert (rows.float() + 0.5).mean().item() == pytest.approx(size / 2, abs=0.05)


def test_backface_culling_keeps_closed_sphere_identical(sphere) -> None:
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 64)
    plain, bary = rasterize_world(vertices, triangles, camera)
    culled, bary_culled = rasterize_world(vertices, triangles, camera, cull_backfaces=True)
    assert torch.equal(plain, culled)
    torch.testing.assert_close(bary, bary_culled)


def _two_triangles(order: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A far big triangle (depth 10) and a near small one (depth 5) overlapping it."""
    xy = torch.tensor([[[0.0, 0.0], [32.0, 0.0], [0.0, 32.0],
                        [4.0, 4.0], [20.0, 4.0], [4.0, 20.0]]])
    depth = torch.tensor([[10.0, 10.0, 10.0, 5.0, 5.0, 5.0]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
    return xy, depth, triangles


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_nearer_triangle_wins_regardless_of_order(order: list[int]) -> None:
    xy, depth, triangles = _two_triangles(order)
    triangle_id, _ = rasterize(xy, depth, triangles, 32, 32)
    near = order.index(1)
    far = order.index(0)
    assert triangle_id[0, 8, 8].item() == near  # inside both
    assert triangle_id[0, 2, 2].item() == far  # only in the big one
    assert triangle_id[0, 30, 30].item() == -1  # in neither


def test_exact_depth_ties_pick_lowest_triangle_index() -> None:
    xy = torch.tensor([[[0.0, 0.0], [16.0, 0.0], [0.0, 16.0]]])
    depth = torch.full((1, 3), 7.0)
    triangles = torch.tensor([[0, 1, 2], [0, 2, 1], [1, 2, 0]])
    triangle_id, _ = rasterize(xy, depth, triangles, 16, 16)
    assert set(triangle_id.unique().tolist()) == {-1, 0}


def test_perspective_correct_barycentrics_match_ray_intersection() -> None:
    """A triangle strongly tilted in depth: barycentrics equal the 3D ray-hit barycentrics."""
    camera = frontal_camera(30.0, 60.0, 48)
    corners = torch.tensor([[-12.0, -9.0, 8.0], [10.0, -6.0, -15.0], [-2.0, 12.0, -2.0]],
                           dtype=torch.float64)
    triangle_id, bary = rasterize_world(corners, torch.tensor([[0, 1, 2]]), camera)
    rows, cols = torch.nonzero(triangle_id[0] == 0, as_tuple=True)
    assert len(rows) > 200

    # Rays through the drawn pixel centres, intersected with the triangle (Moller-Trumbore).
    centre = camera.width / 2
    cam_dirs = torch.stack([(cols + 0.5 - centre) / camera.focal_px,
                            (rows + 0.5 - centre) / camera.focal_px,
                            torch.ones(len(rows), dtype=torch.float64)], dim=1)
    directions = cam_dirs @ camera.rotation(torch.float64)  # camera -> world
    edge1, edge2 = corners[1] - corners[0], corners[2] - corners[0]
    p = torch.linalg.cross(directions, edge2.expand_as(directions))
    det = p @ edge1
    s = torch.tensor(camera.eye, dtype=torch.float64) - corners[0]
    u = (p @ s) / det
    v = (directions @ torch.linalg.cross(s, edge1)) / det
    expected = torch.stack([1 - u - v, u, v], dim=1)
    torch.testing.assert_close(bary[0, rows, cols].double(), expected, atol=2e-5, rtol=0)

    xy, _ = camera.project(corners)
    screen = _screen_barycentrics(xy, torch.stack([cols + 0.5, rows + 0.5], dim=1))
    assert (screen - expected).abs().max() > 0.05  # the check needs perspective correction


def _screen_barycentrics(xy: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Screen-space (affine) barycentrics [P, 3] of points [P, 2] in triangle xy [3, 2]."""
    a, b, c = xy.double()
    px, py = points.double().unbind(1)
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    u = ((px - a[0]) * (c[1] - a[1]) - (py - a[1]) * (c[0] - a[0])) / area
    v = ((b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])) / area
    return torch.stack([1 - u - v, u, v], dim=1)


def test_barycentrics_are_a_partition_of_unity(sphere) -> None:
    vertices, triangles = sphere
    triangle_id, bary = rasterize_world(vertices, triangles, frontal_camera(60.0, 30.0, 64))
    drawn = triangle_id >= 0
    torch.testing.assert_close(bary[drawn].sum(-1), torch.ones(int(drawn.sum())))
    assert (bary[drawn] >= 0).all()
    assert (bary[~drawn] == 0).all()


def test_matches_brute_force_reference(sphere) -> None:
    """Every pixel against every triangle (dense, small): ids and barycentrics agree."""
    vertices, triangles = icosphere(2, radius=10.0)
    vertices = vertices @ rotation_matrix(20.0, 10.0, 5.0, dtype=torch.float64).T
    camera = frontal_camera(40.0, 35.0, 40)
    xy, depth = camera.project(vertices.unsqueeze(0))
    triangle_id, bary = rasterize(xy, depth, triangles, 40, 40)

    corners, corner_depth = xy[0, triangles], depth[0, triangles]  # [F, 3, 2], [F, 3]
    centres = torch.stack(torch.meshgrid(torch.arange(40.0), torch.arange(40.0),
                                         indexing="xy"), -1).reshape(-1, 1, 2) + 0.5
    rel = corners.unsqueeze(0) - centres.unsqueeze(2)  # [P, F, 3, 2]
    nxt, prv = rel.roll(-1, dims=2), rel.roll(-2, dims=2)
    cross = nxt[..., 0] * prv[..., 1] - nxt[..., 1] * prv[..., 0]  # [P, F, 3]
    lam = cross / cross.sum(-1, keepdim=True)
    inside = (lam >= 0).all(-1)
    inv_depth = torch.where(inside, (lam / corner_depth).sum(-1), torch.zeros(()))
    best = inv_depth.argmax(1)
    expected_id = torch.where(inside.any(1), best, -1).reshape(40, 40)
    assert (expected_id != triangle_id[0]).sum() <= 2  # pixels on shared edges may differ
    same = (expected_id == triangle_id[0]) & (expected_id >= 0)
    weights = lam[torch.arange(1600), best] / corner_depth[best]
    expected_bary = (weights / weights.sum(-1, keepdim=True)).reshape(40, 40, 3)
    torch.testing.assert_close(bary[0][same], expected_bary[same].float(), atol=1e-5, rtol=0)


def test_chunking_does_not_change_the_result(sphere) -> None:
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 48)
    batch = torch.stack([vertices, vertices @ rotation_matrix(40.0, dtype=torch.float64).T])
    xy, depth = camera.project(batch.float())
    whole = rasterize(xy, depth, triangles, 48, 48)
    chunked = rasterize(xy, depth, triangles, 48, 48, max_candidates=64, max_faces=100)
    assert torch.equal(whole[0], chunked[0])
    torch.testing.assert_close(whole[1], chunked[1])


def test_triangles_behind_camera_or_off_screen_are_not_drawn() -> None:
    xy = torch.tensor([[[0.0, 0.0], [30.0, 0.0], [0.0, 30.0],
                        [40.0, 40.0], [90.0, 40.0], [40.0, 90.0]]])
    depth = torch.tensor([[-1.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    triangle_id, bary = rasterize(xy, depth, torch.tensor([[0, 1, 2], [3, 4, 5]]), 32, 32)
    assert (triangle_id == -1).all()
    assert (bary == 0).all()


def test_large_triangle_clipped_to_the_image() -> None:
    xy = torch.tensor([[[-500.0, -500.0], [900.0, -500.0], [-500.0, 900.0]]])
    depth = torch.full((1, 3), 3.0)
    triangle_id, _ = rasterize(xy, depth, torch.tensor([[0, 1, 2]]), 20, 30)
    assert triangle_id.shape == (1, 20, 30)
    assert (triangle_id == 0).all()


# --- shading -------------------------------------------------------------------------------


def test_sphere_normals_point_outward(sphere) -> None:
    vertices, triangles = sphere
    normals = vertex_normals(vertices.unsqueeze(0), triangles)[0]
    torch.testing.assert_close(normals.norm(dim=1), torch.ones(len(vertices),
                                                                dtype=torch.float64))
    radial = vertices / vertices.norm(dim=1, keepdim=True)
    assert (normals * radial).sum(1).min() > 0.99


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_compiled_normals_equal_the_torch_ones(sphere) -> None:
    vertices, triangles = sphere
    batch = torch.stack([vertices, vertices @ rotation_matrix(30.0, dtype=torch.float64).T,
                         vertices * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)])
    batch[2, 5] = torch.nan  # a broken vertex spoils only its own neighbourhood
    unused = torch.cat([batch, torch.ones(3, 1, 3, dtype=torch.float64)], dim=1)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        compiled = _vertex_normals_numba(unused.to(dtype), triangles)
        reference = _vertex_normals_torch(unused.to(dtype), triangles)
        assert compiled.dtype == dtype and compiled.shape == unused.shape
        finite = reference.isfinite()
        assert torch.equal(finite, compiled.isfinite())
        torch.testing.assert_close(compiled[finite], reference[finite], atol=tol, rtol=0)
        assert (compiled[:, -1] == 0).all()  # a vertex of no triangle: zero normal


def test_lambert_brightest_facing_the_light(sphere) -> None:
    vertices, triangles = sphere
    normals = vertex_normals(vertices.unsqueeze(0).float(), triangles)
    light = torch.tensor([1.0, 2.0, 2.0])
    shade = lambert(torch.ones(1, len(vertices), 3), normals, light, ambient=0.1, diffuse=0.9)
    brightest = vertices[shade[0, :, 0].argmax()]
    cosine = (brightest / brightest.norm()) @ (light.double() / light.norm())
    assert cosine > 0.99
    assert shade[0, :, 0].max().item() == pytest.approx(1.0, abs=2e-3)
    assert shade[0, :, 0].min().item() == pytest.approx(0.1)  # the far side: ambient only


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
def test_compiled_lambert_equals_the_torch_formula(sphere) -> None:
    vertices, triangles = sphere
    normals = vertex_normals(torch.stack([vertices, -vertices]).float(), triangles)
    albedo = torch.rand(1, len(vertices), 3, generator=torch.Generator().manual_seed(1))
    light = torch.tensor([[1.0, 2.0, 2.0], [0.0, -1.0, 0.5]])
    ambient, diffuse = torch.tensor([0.2, 0.4]), 0.7
    shade = lambert(albedo, normals, light, ambient, diffuse)  # compiled on the CPU
    unit = light / light.norm(dim=1, keepdim=True)
    cos = (normals * unit[:, None]).sum(-1, keepdim=True).clamp_min(0.0)
    expected = albedo * (ambient[:, None, None] + diffuse * cos)
    assert shade.shape == (2, len(vertices), 3)
    torch.testing.assert_close(shade, expected, atol=1e-6, rtol=0)


def test_lambert_batched_parameters() -> None:
    normals = torch.tensor([[[0.0, 0.0, 1.0]], [[0.0, 0.0, 1.0]]])
    light = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    shade = lambert(torch.full((1, 1, 3), 0.5), normals, light,
                    ambient=torch.tensor([0.0, 0.2]), diffuse=torch.tensor([1.0, 1.0]))
    torch.testing.assert_close(shade[:, 0, 0], torch.tensor([0.5, 0.1]))


# --- pipeline -----------------------------------------------------------------------------


def test_render_batch_lit_side_brighter_and_background(sphere) -> None:
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 64)
    batch = vertices.float().unsqueeze(0).expand(2, -1, -1)
    light = torch.tensor([[1.0, 0.0, 0.3], [-1.0, 0.0, 0.3]])  # from the right / the left
    images = render_batch(batch, triangles, torch.full((1, len(vertices), 3), 0.8), camera,
                          light_dir=light, ambient=0.1, diffuse=0.9,
                          background_rgb=(0.0, 0.5, 1.0))
    assert images.dtype == torch.uint8 and images.shape == (2, 64, 64, 3)
    assert images[:, 0, 0].tolist() == [[0, 128, 255]] * 2  # corner: background
    right = images[:, 24:40, 40:48].float().mean((1, 2, 3))
    left = images[:, 24:40, 16:24].float().mean((1, 2, 3))
    assert right[0] > left[0] + 40 and left[1] > right[1] + 40
    # Grey albedo and white light: drawn pixels are grey.
    centre = images[0, 32, 32]
    assert centre[0] == centre[1] == centre[2] > 0


def test_render_batch_nothing_in_view_is_all_background(sphere) -> None:
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 32)
    behind = vertices.float().unsqueeze(0) + torch.tensor([0.0, 0.0, 200.0])
    images = render_batch(behind, triangles, torch.ones(1, len(vertices), 3), camera,
                          background_rgb=(0.2, 0.4, 0.6))
    assert (images == torch.tensor([51, 102, 153], dtype=torch.uint8)).all()


def test_render_batch_interpolates_vertex_colours(sphere) -> None:
    """Albedo red on the right half, blue on the left: the image shows the same split."""
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 64)
    albedo = torch.where(vertices[:, :1] > 0, torch.tensor([1.0, 0.0, 0.0]),
                         torch.tensor([0.0, 0.0, 1.0])).float().unsqueeze(0)
    image = render_batch(vertices.float().unsqueeze(0), triangles, albedo, camera,
                         ambient=1.0, diffuse=0.0)[0]
    assert image[32, 44].tolist() == [255, 0, 0]
    assert image[32, 20].tolist() == [0, 0, 255]


def test_render_batch_cavity_relative_to_the_neutral_mesh(sphere) -> None:
    """A dent pressed into a sphere is a crease: with the dented mesh as its own neutral
    (the dent is part of the identity) it is not shaded, exactly as without cavity shading;
    against the round sphere as neutral (the dent is what the expression added) it is, as
    with the absolute concavity. One neutral serves consecutive meshes; a neutral count that
    does not divide the batch is an error."""
    vertices, triangles = sphere
    vertices = vertices.float()
    front = vertices[:, 2] > 9.0  # a cap facing the camera
    dented = vertices.clone()
    dented[front, 2] -= 1.5 * (vertices[front, 2] - 9.0)  # flattened, sunk at the centre
    camera = frontal_camera(60.0, 30.0, 64)
    albedo = torch.full((1, len(vertices), 3), 0.8)

    def draw(cavity: float, neutral: torch.Tensor | None, batch: int = 1) -> torch.Tensor:
        return render_batch(dented.unsqueeze(0).expand(batch, -1, -1), triangles, albedo,
                            camera, lighting="sh", cavity=cavity, neutral_vertices=neutral,
                            cavity_absolute=0.0, backend="numba")

    plain = draw(0.0, None)
    absolute = draw(1.0, None)
    assert absolute.float().mean() < plain.float().mean() - 0.5  # the dent rim is shaded
    assert torch.equal(draw(1.0, dented.unsqueeze(0)), plain)  # own neutral: no shading
    against_round = draw(1.0, vertices.unsqueeze(0))
    assert against_round.float().mean() < plain.float().mean() - 0.5
    both = draw(1.0, torch.stack([dented, vertices]), batch=4)  # 2 meshes per neutral
    assert torch.equal(both[0], plain[0]) and torch.equal(both[1], plain[0])
    assert torch.equal(both[2], against_round[0]) and torch.equal(both[3], against_round[0])
    with pytest.raises(ValueError, match="neutral_vertices"):
        draw(1.0, torch.stack([dented, vertices, vertices]), batch=4)


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="allowed.*kaolin.*numba.*torch"):
        get_rasterizer("opengl")
    assert get_rasterizer("torch") is rasterize
    assert "torch" in available_backends()
    assert ("numba" in available_backends()) == numba_available()


@pytest.mark.skipif(not numba_available(), reason="numba is not installed")
@pytest.mark.parametrize("cull", [False, True])
def test_numba_backend_renders_like_torch(sphere, cull: bool) -> None:
    """Fused numba raster + colour blend vs torch raster + _shade_pixels: same bytes here."""
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 64)
    batch = torch.stack([vertices, vertices @ rotation_matrix(25.0, 10.0, dtype=torch.float64).T])
    albedo = torch.rand(2, len(vertices), 3, generator=torch.Generator().manual_seed(0))
    kwargs = dict(light_dir=(0.3, -0.5, 1.0), background_rgb=(0.1, 0.5, 0.9),
                  cull_backfaces=cull)
    ours = render_batch(batch.float(), triangles, albedo, camera, backend="numba", **kwargs)
    theirs = render_batch(batch.float(), triangles, albedo, camera, backend="torch", **kwargs)
    assert ours.dtype == torch.uint8 and ours.shape == (2, 64, 64, 3)
    assert (ours.int() - theirs.int()).abs().max() <= 1
    assert (ours != theirs).any(-1).float().mean() < 1e-3
    assert ours[:, 0, 0].tolist() == [[26, 128, 230]] * 2


@pytest.mark.skipif(kaolin_available(), reason="kaolin is importable here")
def test_kaolin_backend_unavailable_says_how_to_install() -> None:
    with pytest.raises(RuntimeError, match="pip install kaolin"):
        get_rasterizer("kaolin")
    assert "kaolin" not in available_backends()


@pytest.mark.skipif(not (kaolin_available() and torch.cuda.is_available()),
                    reason="kaolin is not importable (or no CUDA device): kaolin backend untested")
def test_kaolin_backend_agrees_with_torch(sphere) -> None:
    vertices, triangles = sphere
    camera = frontal_camera(60.0, 30.0, 64)
    batch = torch.stack([vertices, vertices @ rotation_matrix(30.0, dtype=torch.float64).T])
    xy, depth = camera.project(batch.float())
    ids_torch, bary_torch = rasterize(xy, depth, triangles, 64, 64)
    ids_kaolin, bary_kaolin = get_rasterizer("kaolin")(xy.cuda(), depth.cuda(),
                                                       triangles.cuda(), 64, 64)
    ids_kaolin, bary_kaolin = ids_kaolin.cpu(), bary_kaolin.cpu()
    assert (ids_torch == ids_kaolin).float().mean() > 0.99
    same = (ids_torch == ids_kaolin) & (ids_torch >= 0)
    torch.testing.assert_close(bary_torch[same], bary_kaolin[same], atol=1e-3, rtol=0)
    images = render_batch(batch.float(), triangles, torch.ones(1, len(vertices), 3), camera,
                          backend="kaolin", device="cuda")
    assert images.shape == (2, 64, 64, 3) and images.device.type == "cuda"
