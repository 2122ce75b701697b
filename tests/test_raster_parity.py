"""Every pair of available rasteriser backends agrees, on hand-made cases and real ICT faces.

Hand-made cases also check each backend against exact references computed here (pixel
centres at +0.5, inside-inclusive edges, nearest surface wins, perspective-correct weights),
so a backend that agrees with another only by sharing a bug still fails.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from facesym.appearance import appearance_masks, vertex_albedo
from facesym.render import available_backends, frontal_camera, get_rasterizer, render_batch
from facesym.render import rotation_matrix as rotation
from facesym.render.raster_numba import numba_available

BACKENDS = available_backends()
PAIRS = list(itertools.combinations(BACKENDS, 2))
needs_numba = pytest.mark.skipif(not numba_available(), reason="numba is not installed")


def run(backend: str, xy: torch.Tensor, depth: torch.Tensor, triangles: torch.Tensor,
        height: int, width: int, cull: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasterise with ``backend``; results on the CPU."""
    ids, bary = get_rasterizer(backend)(xy, depth, triangles, height, width,
                                        cull_backfaces=cull)
    return ids.cpu(), bary.cpu()


def reference_coverage(corners: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean [H, W]: pixel centres inside (or on an edge of) the 2D triangle, in float64."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    (x0, y0), (x1, y1), (x2, y2) = corners
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    l0 = ((x1 - cols) * (y2 - rows) - (y1 - rows) * (x2 - cols)) / area
    l1 = ((x2 - cols) * (y0 - rows) - (y2 - rows) * (x0 - cols)) / area
    l2 = 1.0 - l0 - l1
    return (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


# --- hand-made cases, each backend against an exact reference ---------------------------

# An asymmetric triangle (right angle at the top left, longer downwards), off-centre in a
# non-square image, with vertices on pixel centres so that all three edges pass exactly
# through pixel centres (inclusive): a flip of x or y, a transpose or a half-pixel offset
# changes its coverage.
ASYMMETRIC = np.array([[2.5, 1.5], [8.5, 1.5], [2.5, 13.5]])


def interior_coverage(corners: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixel centres strictly inside the triangle (off every edge by > 1e-3)."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    (x0, y0), (x1, y1), (x2, y2) = corners
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    l0 = ((x1 - cols) * (y2 - rows) - (y1 - rows) * (x2 - cols)) / area
    l1 = ((x2 - cols) * (y0 - rows) - (y2 - rows) * (x0 - cols)) / area
    return (l0 > 1e-3) & (l1 > 1e-3) & (1.0 - l0 - l1 > 1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_coverage_of_an_asymmetric_triangle(backend: str) -> None:
    xy = torch.tensor(ASYMMETRIC, dtype=torch.float32).unsqueeze(0)
    expected = torch.from_numpy(reference_coverage(ASYMMETRIC, 17, 13))
    assert expected.sum() == 49  # counted by hand: rows of 7, 6, 6, 5, 5, ..., 1, 1 pixels
    assert expected[1, 2] and expected[1, 8] and expected[13, 2] and not expected[1, 9]
    for winding in ([0, 1, 2], [0, 2, 1]):  # both windings are drawn without culling
        ids, bary = run(backend, xy, torch.full((1, 3), 5.0), torch.tensor([winding]), 17, 13)
        drawn = ids[0] >= 0
        if backend == "kaolin":  # its own edge rule: only interior centres are certain
            interior = torch.from_numpy(interior_coverage(ASYMMETRIC, 17, 13))
            assert (drawn >= interior).all() and (drawn <= expected).all()
        else:
            assert torch.equal(drawn, expected), backend
        # Constant depth: perspective-correct = screen-space barycentrics; at the centre
        # (3.5, 2.5) of pixel (row 2, col 3) the corner weights are 3/4, 1/6, 1/12.
        weights = bary[0, 2, 3, winding].tolist()
        assert weights == pytest.approx([0.75, 1 / 6, 1 / 12], abs=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearer_surface_wins_in_either_order(backend: str) -> None:
    xy = torch.tensor([[[0.0, 0.0], [32.0, 0.0], [0.0, 32.0],
                        [4.0, 4.0], [20.0, 4.0], [4.0, 20.0]]])
    depth = torch.tensor([[10.0, 10.0, 10.0, 5.0, 5.0, 5.0]])
    for order in ([0, 1], [1, 0]):
        triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])[order]
        ids, _ = run(backend, xy, depth, triangles, 32, 32)
        near, far = order.index(1), order.index(0)
        assert ids[0, 8, 8].item() == near and ids[0, 2, 2].item() == far
        assert ids[0, 30, 30].item() == -1


@pytest.mark.parametrize("backend", BACKENDS)
def test_interpenetrating_triangles_split_by_depth(backend: str) -> None:
    """Two tilted triangles crossing at x = 16: each wins where it is nearer."""
    xy = torch.tensor([[[0.0, 0.0], [32.0, 0.0], [0.0, 32.0], [32.0, 32.0]]])
    left_near = torch.tensor([[4.0, 8.0, 4.0, 8.0]])  # depth grows to the right
    right_near = torch.tensor([[8.0, 4.0, 8.0, 4.0]])
    # Same screen quad covered twice: triangles 0/1 use left_near depths, 2/3 right_near.
    xy2 = torch.cat([xy, xy], dim=1)
    depth = torch.cat([left_near, right_near], dim=1)
    triangles = torch.tensor([[0, 1, 3], [0, 3, 2], [4, 5, 7], [4, 7, 6]])
    ids, _ = run(backend, xy2, depth, triangles, 32, 32)
    assert (ids[0, :, :15] <= 1).all() and (ids[0, :, 17:] >= 2).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_back_faces_drawn_unless_culled(backend: str) -> None:
    # Counter-clockwise on screen (y down) is a front face; its mirror image is a back face.
    xy = torch.tensor([[[2.0, 2.0], [2.0, 14.0], [14.0, 2.0],
                        [18.0, 2.0], [30.0, 2.0], [18.0, 14.0]]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5]])
    depth = torch.full((1, 6), 5.0)
    drawn, _ = run(backend, xy, depth, triangles, 16, 32)
    culled, _ = run(backend, xy, depth, triangles, 16, 32, cull=True)
    assert set(drawn.unique().tolist()) == {-1, 0, 1}
    assert set(culled.unique().tolist()) == {-1, 0}
    assert torch.equal(drawn[0, :, :16], culled[0, :, :16])


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_of_frame_and_behind_camera(backend: str) -> None:
    xy = torch.tensor([[[-20.0, -20.0], [40.0, -20.0], [-20.0, 40.0],  # corner clipped
                        [40.0, 40.0], [90.0, 40.0], [40.0, 90.0],  # fully outside
                        [0.0, 0.0], [30.0, 0.0], [0.0, 30.0]]])  # one corner behind
    depth = torch.tensor([[5.0, 5.0, 5.0, 5.0, 5.0, 5.0, -1.0, 5.0, 5.0]])
    triangles = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    ids, bary = run(backend, xy, depth, triangles, 20, 24)
    expected = reference_coverage(xy[0, :3].double().numpy(), 20, 24)
    assert expected.any() and not expected.all()
    assert torch.equal(ids[0] == 0, torch.from_numpy(expected))
    assert set(ids.unique().tolist()) == {-1, 0}
    assert (bary[ids < 0] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_perspective_correct_weights_on_a_tilted_triangle(backend: str) -> None:
    xy = torch.tensor([[[1.0, 1.0], [30.0, 3.0], [4.0, 28.0]]])
    depth = torch.tensor([[2.0, 9.0, 5.0]])
    ids, bary = run(backend, xy, depth, torch.tensor([[0, 1, 2]]), 32, 32)
    rows, cols = torch.nonzero(ids[0] == 0, as_tuple=True)
    assert len(rows) > 300
    corners = xy[0].double().numpy()
    (x0, y0), (x1, y1), (x2, y2) = corners
    px, py = cols.double().numpy() + 0.5, rows.double().numpy() + 0.5
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    l0 = ((x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)) / area
    l1 = ((x2 - px) * (y0 - py) - (y2 - py) * (x0 - px)) / area
    screen = np.stack([l0, l1, 1 - l0 - l1], 1)
    weights = screen / depth[0].double().numpy()
    expected = weights / weights.sum(1, keepdims=True)
    np.testing.assert_allclose(bary[0, rows, cols].double().numpy(), expected, atol=2e-5)
    assert np.abs(screen - expected).max() > 0.1  # needs the perspective correction


# --- pairs of backends --------------------------------------------------------------------


def _random_soup(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Overlapping random triangles, some partly out of frame, varied depths and windings."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(60, 1, 2, generator=gen) * 56 - 4
    corners = centres + torch.randn(60, 3, 2, generator=gen) * 6
    depth = (torch.rand(60, 1, generator=gen) * 10 + 2) + torch.rand(60, 3, generator=gen)
    return (corners.reshape(1, -1, 2), depth.reshape(1, -1),
            torch.arange(180).reshape(60, 3))


@pytest.mark.skipif(not PAIRS, reason="only one rasteriser backend is available")
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: "-".join(p))
@pytest.mark.parametrize("cull", [False, True])
def test_backend_pairs_agree_on_a_triangle_soup(pair: tuple[str, str], cull: bool) -> None:
    xy, depth, triangles = _random_soup(7)
    (ids_a, bary_a), (ids_b, bary_b) = (run(b, xy, depth, triangles, 48, 48, cull)
                                        for b in pair)
    assert iou(ids_a >= 0, ids_b >= 0) >= 0.999
    assert (ids_a == ids_b).float().mean() >= 0.995
    same = (ids_a == ids_b) & (ids_a >= 0)
    torch.testing.assert_close(bary_a[same], bary_b[same], atol=1e-3, rtol=0)


def seeded_ict_faces(model, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor, object]:
    """Posed seeded ICT faces: vertices [B, V, 3], triangles, albedo [B, V, 3], camera."""
    rng = np.random.default_rng(seed)
    n_id, n_expr = model.identity.shape[0], model.expression.shape[0]
    beta = rng.normal(size=(batch, n_id)).astype(np.float32)
    weights = (rng.uniform(0.0, 0.7, size=(batch, n_expr))
               * (rng.uniform(size=(batch, n_expr)) < 0.2)).astype(np.float32)
    meshes = (model.template[None] + np.einsum("bk,kvc->bvc", beta, model.identity)
              + np.einsum("be,evc->bvc", weights, model.expression))
    pivot = torch.from_numpy(model.template[model.landmarks].mean(0))
    angles = torch.from_numpy(rng.uniform(-25.0, 25.0, size=(3, batch)))
    rot = rotation(angles[0], angles[1], angles[2]).float()
    vertices = (torch.from_numpy(meshes) - pivot) @ rot.mT + pivot
    albedo = torch.from_numpy(vertex_albedo(appearance_masks(model), rng.uniform(size=batch)))
    camera = frontal_camera(75.0, 20.0, 224, target=tuple(float(c) for c in pivot))
    return vertices, torch.from_numpy(model.triangles), albedo, camera


@pytest.mark.skipif(not PAIRS, reason="only one rasteriser backend is available")
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: "-".join(p))
def test_backend_pairs_agree_on_seeded_ict_faces(ict_model, pair: tuple[str, str]) -> None:
    vertices, triangles, albedo, camera = seeded_ict_faces(ict_model, 4, seed=11)
    xy, depth = camera.project(vertices)
    (ids_a, _), (ids_b, _) = (run(b, xy, depth, triangles, 224, 224) for b in pair)
    for i in range(len(vertices)):
        assert iou(ids_a[i] >= 0, ids_b[i] >= 0) >= 0.999
    assert (ids_a == ids_b).float().mean() >= 0.999
    images = [render_batch(vertices, triangles, albedo, camera, light_dir=(0.3, 0.4, 1.0),
                           background_rgb=(0.45, 0.45, 0.45), backend=b,
                           device="cuda" if b == "kaolin" else "cpu").cpu() for b in pair]
    delta = (images[0].int() - images[1].int()).abs().float()
    assert delta.mean().item() <= 1.0  # mean |delta colour| <= 1/255
    assert (images[0] >= 0).all() and images[0].float().std() > 10  # a real picture


# --- numba specifics ------------------------------------------------------------------------


@needs_numba
def test_numba_matches_torch_exactly_on_ict_faces(ict_model) -> None:
    """Same float32 formulas: the same triangle wins every pixel, weights to float rounding."""
    vertices, triangles, _, camera = seeded_ict_faces(ict_model, 3, seed=5)
    xy, depth = camera.project(vertices)
    ids_t, bary_t = run("torch", xy, depth, triangles, 224, 224)
    ids_n, bary_n = run("numba", xy, depth, triangles, 224, 224)
    assert torch.equal(ids_t, ids_n)
    torch.testing.assert_close(bary_t, bary_n, atol=2e-5, rtol=0)


@needs_numba
def test_numba_bytes_independent_of_batch_and_threads(ict_model) -> None:
    vertices, triangles, albedo, camera = seeded_ict_faces(ict_model, 4, seed=3)

    def render(v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return render_batch(v, triangles, a, camera, backend="numba")

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        whole = render(vertices, albedo)
        torch.set_num_threads(1)
        single_thread = render(vertices, albedo)
        one_by_one = torch.cat([render(vertices[i:i + 1], albedo[i:i + 1]) for i in range(4)])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(whole, single_thread)
    assert torch.equal(whole, one_by_one)
    assert torch.equal(whole, render(vertices, albedo))  # and run to run


@pytest.mark.skipif(not numba_available(), reason="numba not installed")
def test_compiled_cavity_equals_the_sparse_product(ict_model) -> None:
    """The compiled smoothing of ``cavity`` gives exactly torch's CSR products (same sums)."""
    from facesym.render.shading import CAVITY_ITERATIONS, _smoother, cavity, vertex_normals

    rng = np.random.default_rng(5)
    tri = torch.as_tensor(ict_model.triangles)
    base = torch.as_tensor(ict_model.template, dtype=torch.float32)
    v = base + torch.as_tensor(rng.normal(0, 0.05, (3, *base.shape)), dtype=torch.float32)
    normals = vertex_normals(v, tri)
    op = _smoother(tri, v.shape[1], v.dtype)
    flat = v.permute(1, 0, 2).reshape(v.shape[1], -1)
    smooth = flat
    for _ in range(CAVITY_ITERATIONS):
        smooth = op @ smooth
    expected = ((smooth - flat).view(v.shape[1], 3, 3).permute(1, 0, 2) * normals).sum(-1)
    got = cavity(v, tri, normals)
    assert torch.equal(got, expected)
    assert float(got.abs().max()) > 0
