"""Throughput benchmark of facesym's rasterisers on the ICT-FaceKit head (~51k triangles).

Renders seeded ICT faces (random identity, sparse random expression, small random head pose,
the study's camera) at 224x224 (Gouraud, one directional light) in batches of 32 and prints
images/s for, in one run:

* ``facesym numba``: ``facesym.render.render_batch(backend="numba")`` (full pipeline: normals,
  Lambert, projection, compiled rasterisation and colour interpolation);
* ``facesym torch``: the same with the portable torch rasteriser (and ``(cull)``: with
  back-face culling, valid for closed meshes only);
* ``moderngl llvmpipe (peer)``: OpenGL through ``moderngl`` on Mesa's llvmpipe, the standard
  multi-threaded JIT-compiled CPU rasteriser (headless EGL), given the same per-vertex colours
  (computed by facesym's normals + Lambert, included in its time). When moderngl does not
  import, the benchmark pip-installs it into ``<cache>/bench-peers`` (not into the project's
  environment); it needs Mesa's EGL/DRI drivers (Debian ``libegl1 libgl1-mesa-dri``);
* ``numpy loop (peer)``: a straightforward per-triangle reference z-buffer in this script
  (slow, so it renders ``--peer-images`` images);
* ``facesym kaolin``: when kaolin and a CUDA device are available.

It then prints the ratios to llvmpipe (``numba / llvmpipe`` is the acceptance number, >= 2),
the numba kernels' first-call time (compilation, or loading numba's on-disk cache) and the
pixel agreement between the renderers.

Usage::

    python bench/render.py [--batch 32] [--size 224] [--repeats 5] [--peer-images 1]
                           [--obj PATH | --synthetic] [--png /tmp/render_check.png]

``--obj`` renders a Wavefront OBJ (v/f lines, polygons fan-triangulated, units cm, head at
the origin facing +z); ``--synthetic`` a head-like sphere mesh of 52k triangles.
"""

from __future__ import annotations

import argparse
import importlib
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facesym.render import (
    PerspectiveCamera,
    frontal_camera,
    kaolin_available,
    lambert,
    render_batch,
    rotation_matrix,
    vertex_normals,
)
from facesym.render.raster_numba import numba_available, warm_up
from facesym.resources import default_cache_dir

LIGHT_DIR = (0.3, 0.4, 1.0)
AMBIENT, DIFFUSE = 0.35, 0.65
BACKGROUND = (0.2, 0.2, 0.2)


def _spherical_bump(directions: np.ndarray, centre: tuple[float, float, float],
                    width: float) -> np.ndarray:
    """Gaussian bump on the unit sphere around direction ``centre``."""
    c = np.asarray(centre, dtype=np.float64)
    c /= np.linalg.norm(c)
    return np.exp(-((directions - c) ** 2).sum(-1) / (2.0 * width**2))


def head_like_mesh(rings: int = 130, segments: int = 200, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed head-sized surface (cm, nose towards +z): vertices, triangles, albedo.

    A latitude/longitude sphere with ``2 * rings * segments`` triangles (52,000 by default),
    deformed into an ellipsoid with a nose, brows, eye sockets and random low-frequency bumps.
    """
    rng = np.random.default_rng(seed)
    polar = np.pi * np.arange(1, rings + 1) / (rings + 1)  # ring angles from +y
    azimuth = 2.0 * np.pi * np.arange(segments) / segments
    p, a = np.meshgrid(polar, azimuth, indexing="ij")
    ring_dirs = np.stack([np.sin(p) * np.sin(a), np.cos(p), np.sin(p) * np.cos(a)], -1)
    dirs = np.concatenate([[[0.0, 1.0, 0.0]], ring_dirs.reshape(-1, 3), [[0.0, -1.0, 0.0]]])

    radius = 1.0 + 0.22 * _spherical_bump(dirs, (0.0, -0.05, 1.0), 0.12)  # nose
    radius += 0.06 * _spherical_bump(dirs, (0.0, 0.25, 1.0), 0.25)  # brow ridge
    for side in (-1.0, 1.0):
        radius -= 0.05 * _spherical_bump(dirs, (0.33 * side, 0.12, 1.0), 0.09)  # eye sockets
    for _ in range(12):
        centre = tuple(rng.normal(size=3))
        radius += rng.uniform(-0.03, 0.03) * _spherical_bump(dirs, centre, 0.4)
    vertices = dirs * radius[:, None] * np.array([7.5, 11.5, 9.5])

    albedo = np.tile(np.array([0.86, 0.66, 0.55]), (len(dirs), 1))
    albedo *= (1.0 - 0.5 * _spherical_bump(dirs, (0.0, -0.35, 1.0), 0.07))[:, None]  # mouth
    for side in (-1.0, 1.0):
        albedo *= (1.0 - 0.7 * _spherical_bump(dirs, (0.33 * side, 0.12, 1.0), 0.04))[:, None]
    return vertices, _sphere_triangles(rings, segments), albedo.clip(0.0, 1.0)


def ict_faces(batch: int, seed: int = 0, distance: float = 75.0, fov: float = 20.0,
              size: int = 224) -> tuple[torch.Tensor, np.ndarray, np.ndarray, PerspectiveCamera]:
    """Seeded ICT-FaceKit faces, posed: vertices [B, V, 3], triangles, albedo, camera.

    Identity ~ N(0, 1) on 10 modes, each expression shape active with probability 0.15 at
    weight U(0, 0.6), yaw/pitch/roll U(-15, 15) degrees about the landmarks' centre, the
    study's default camera (75 cm, 20 degrees) aimed at that centre.
    """
    from facesym.appearance import appearance_masks, vertex_albedo
    from facesym.facemodel.ict import build_ict_model
    from facesym.resources import fetch_resource

    cache = default_cache_dir()
    fetch_resource("ict_facekit", cache)
    model = build_ict_model(cache / "ict_facekit" / "FaceXModel", identity_modes=10)
    rng = np.random.default_rng(seed)
    n_expr = model.expression.shape[0]
    beta = rng.normal(size=(batch, 10)).astype(np.float32)
    weights = (rng.uniform(0.0, 0.6, size=(batch, n_expr))
               * (rng.uniform(size=(batch, n_expr)) < 0.15)).astype(np.float32)
    meshes = (model.template[None] + np.einsum("bk,kvc->bvc", beta, model.identity)
              + np.einsum("be,evc->bvc", weights, model.expression))
    pivot = model.template[model.landmarks].mean(0)
    angles = torch.from_numpy(rng.uniform(-15.0, 15.0, size=(3, batch)))
    rot = rotation_matrix(angles[0], angles[1], angles[2]).float()
    centre = torch.from_numpy(pivot)
    vertices = (torch.from_numpy(meshes) - centre) @ rot.mT + centre
    albedo = vertex_albedo(appearance_masks(model), rng.uniform(size=batch))
    camera = frontal_camera(distance, fov, size, target=tuple(float(c) for c in pivot))
    return vertices, model.triangles.astype(np.int64), albedo, camera


def _sphere_triangles(rings: int, segments: int) -> np.ndarray:
    """Triangles of the latitude/longitude sphere, counter-clockwise seen from outside."""
    top, bottom = 0, 1 + rings * segments
    ring = np.arange(rings)[:, None] * segments + 1
    seg = np.arange(segments)[None, :]
    cur, nxt = ring + seg, ring + (seg + 1) % segments
    quads_a = np.stack([cur[:-1], cur[1:], nxt[1:]], -1).reshape(-1, 3)
    quads_b = np.stack([cur[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)
    top_fan = np.stack([np.full(segments, top), cur[0], nxt[0]], -1)
    bottom_fan = np.stack([np.full(segments, bottom), nxt[-1], cur[-1]], -1)
    return np.concatenate([top_fan, quads_a, quads_b, bottom_fan]).astype(np.int64)


def load_obj(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices and fan-triangulated faces of a Wavefront OBJ, with a uniform skin albedo."""
    verts, tris = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) for p in parts[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            tris += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    vertices = np.asarray(verts, dtype=np.float64)
    albedo = np.tile(np.array([0.86, 0.66, 0.55]), (len(vertices), 1))
    return vertices, np.asarray(tris, dtype=np.int64), albedo


def numpy_loop_render(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray,
                      camera: PerspectiveCamera) -> np.ndarray:
    """Reference renderer: per-triangle Python loop, numpy per bounding box; [H, W, 3] uint8."""
    h, w = camera.height, camera.width
    xy, depth = (t.numpy().astype(np.float64)
                 for t in camera.project(torch.from_numpy(vertices)))
    zbuf = np.zeros((h, w))  # stores 1/depth; 0 = far plane at infinity
    image = np.tile(np.asarray(BACKGROUND), (h, w, 1))
    for tri in triangles:
        (x0, y0), (x1, y1), (x2, y2) = xy[tri]
        z = depth[tri]
        area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if (z <= 0).any() or abs(area2) < 1e-12:
            continue
        c0 = max(math.ceil(min(x0, x1, x2) - 0.5), 0)
        c1 = min(math.floor(max(x0, x1, x2) - 0.5), w - 1)
        r0 = max(math.ceil(min(y0, y1, y2) - 0.5), 0)
        r1 = min(math.floor(max(y0, y1, y2) - 0.5), h - 1)
        if c1 < c0 or r1 < r0:
            continue
        px, py = np.meshgrid(np.arange(c0, c1 + 1) + 0.5, np.arange(r0, r1 + 1) + 0.5)
        l0 = ((x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)) / area2
        l1 = ((x2 - px) * (y0 - py) - (y2 - py) * (x0 - px)) / area2
        l2 = 1.0 - l0 - l1
        inside = (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        inv_z = l0 / z[0] + l1 / z[1] + l2 / z[2]
        region = zbuf[r0:r1 + 1, c0:c1 + 1]
        win = inside & (inv_z > region)
        if not win.any():
            continue
        region[win] = inv_z[win]
        weights = np.stack([l0 / z[0], l1 / z[1], l2 / z[2]], -1)[win] / inv_z[win, None]
        image[r0:r1 + 1, c0:c1 + 1][win] = weights @ colors[tri]
    return (image.clip(0.0, 1.0) * 255.0).round().astype(np.uint8)


_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_color;
out vec3 v_color;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); v_color = in_color; }
"""
_FRAGMENT_SHADER = """
#version 330
in vec3 v_color;
out vec4 f_color;
void main() { f_color = vec4(v_color, 1.0); }
"""


def opengl_mvp(camera: PerspectiveCamera, near: float = 1.0, far: float = 1000.0) -> np.ndarray:
    """Model-view-projection matrix reproducing ``camera`` in OpenGL clip space."""
    view = np.eye(4)
    # facesym's camera frame is x right, y down, z forward; OpenGL's eye frame is y up, z back.
    rot = np.diag([1.0, -1.0, -1.0]) @ camera.rotation(torch.float64).numpy()
    view[:3, :3] = rot
    view[:3, 3] = -rot @ np.asarray(camera.eye)
    f = 1.0 / math.tan(math.radians(camera.fov_deg) / 2.0)
    proj = np.zeros((4, 4))
    proj[0, 0] = f * camera.height / camera.width
    proj[1, 1] = f
    proj[2, 2] = (far + near) / (near - far)
    proj[2, 3] = 2.0 * far * near / (near - far)
    proj[3, 2] = -1.0
    return proj @ view


def import_moderngl():
    """moderngl, pip-installed into ``<cache>/bench-peers`` when it does not import."""
    try:
        return importlib.import_module("moderngl")
    except ImportError:
        pass
    target = default_cache_dir() / "bench-peers"
    if not (target / "moderngl").is_dir():
        print(f"moderngl not importable: installing it into {target} for this benchmark")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target",
                        str(target), "moderngl"], check=True)
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    return importlib.import_module("moderngl")


class ModernglPeer:
    """Headless OpenGL (Mesa llvmpipe via EGL) Gouraud renderer of per-vertex colours."""

    def __init__(self, triangles: np.ndarray, num_vertices: int, camera: PerspectiveCamera):
        moderngl = import_moderngl()  # torch is imported already, as EGL contexts need

        self.ctx = moderngl.create_standalone_context(backend="egl")
        self.renderer = self.ctx.info["GL_RENDERER"]
        self.camera = camera
        prog = self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
        prog["mvp"].write(opengl_mvp(camera).T.astype("f4").tobytes())  # column-major
        self.positions = self.ctx.buffer(reserve=num_vertices * 12, dynamic=True)
        self.colors = self.ctx.buffer(reserve=num_vertices * 12, dynamic=True)
        index = self.ctx.buffer(triangles.astype("u4").tobytes())
        self.vao = self.ctx.vertex_array(prog, [(self.positions, "3f", "in_pos"),
                                                (self.colors, "3f", "in_color")], index)
        self.fbo = self.ctx.simple_framebuffer((camera.width, camera.height), components=3)
        self.ctx.enable(moderngl.DEPTH_TEST)

    def render(self, vertices: np.ndarray, colors: np.ndarray) -> np.ndarray:
        """Images [B, H, W, 3] uint8 of posed vertices [B, V, 3] with colours [B, V, 3]."""
        out = np.empty((len(vertices), self.camera.height, self.camera.width, 3), np.uint8)
        self.fbo.use()
        for i in range(len(vertices)):
            self.positions.write(vertices[i].astype("f4").tobytes())
            self.colors.write(colors[i].astype("f4").tobytes())
            self.fbo.clear(*BACKGROUND, 1.0, depth=1.0)
            self.vao.render()
            pixels = np.frombuffer(self.fbo.read(components=3, alignment=1), np.uint8)
            out[i] = pixels.reshape(self.camera.height, self.camera.width, 3)[::-1]
        return out


def make_moderngl_peer(triangles: np.ndarray, num_vertices: int, camera: PerspectiveCamera
                       ) -> ModernglPeer | None:
    """The OpenGL peer, or None (with the reason printed) when it cannot run here."""
    try:
        return ModernglPeer(triangles, num_vertices, camera)
    except Exception as err:  # ImportError, a failed install, or no EGL display/driver
        print(f"moderngl peer: not available ({type(err).__name__}: {err})")
        return None


def posed_batch(vertices: np.ndarray, batch: int, seed: int = 0) -> torch.Tensor:
    """``batch`` copies of the mesh with small random head poses (yaw/pitch/roll)."""
    rng = np.random.default_rng(seed)
    angles = torch.from_numpy(rng.uniform(-15.0, 15.0, size=(3, batch)))
    rot = rotation_matrix(angles[0], angles[1], angles[2])
    return torch.from_numpy(vertices).float().unsqueeze(0) @ rot.mT


def time_call(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_interleaved(calls: dict[str, object], repeats: int) -> dict[str, float]:
    """Best wall time of each call over ``repeats`` rounds that run every call once in turn.

    Alternating the contenders spreads any change in machine load over all of them, so
    their ratio is fairer than from back-to-back blocks of repeats.
    """
    for fn in calls.values():
        fn()  # warm-up
    best = dict.fromkeys(calls, math.inf)
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def save_png(image: np.ndarray, path: Path) -> None:
    """Write an [H, W, 3] uint8 image as PNG (matplotlib)."""
    import matplotlib.pyplot as plt

    plt.imsave(path, image)


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--obj", type=Path, default=None)
    source.add_argument("--synthetic", action="store_true")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-images", type=int, default=1)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()

    if args.obj or args.synthetic:
        verts_np, tris_np, albedo_np = load_obj(args.obj) if args.obj else head_like_mesh()
        camera = frontal_camera(60.0, 26.0, args.size)
        vertices = posed_batch(verts_np, args.batch)
        albedo = torch.from_numpy(albedo_np).float().unsqueeze(0)
        mesh = "OBJ " + str(args.obj) if args.obj else "synthetic head-like mesh"
    else:
        vertices, tris_np, albedo_np, camera = ict_faces(args.batch, size=args.size)
        albedo = torch.from_numpy(albedo_np).float()
        mesh = "ICT-FaceKit head (seeded faces)"
    triangles = torch.from_numpy(tris_np)
    num_vertices = vertices.shape[1]
    print(f"{mesh}: {num_vertices} vertices, {len(tris_np)} triangles; "
          f"{args.size}x{args.size}, batch {args.batch}, torch threads {torch.get_num_threads()}")

    def facesym(backend: str, cull: bool = False, device: str = "cpu") -> torch.Tensor:
        return render_batch(vertices, triangles, albedo, camera, LIGHT_DIR, AMBIENT, DIFFUSE,
                            BACKGROUND, backend=backend, device=device, cull_backfaces=cull)

    def shaded_colors() -> np.ndarray:
        normals = vertex_normals(vertices, triangles)
        return lambert(albedo, normals, torch.tensor(LIGHT_DIR), AMBIENT, DIFFUSE).numpy()

    rows, images = [], {}
    verts_posed = vertices.numpy()
    gl_peer = make_moderngl_peer(tris_np, num_vertices, camera)
    contenders = {}  # timed in alternation: their ratio is the acceptance number
    if numba_available():
        print(f"numba kernels first call (compile, or load numba's cache): {warm_up():.2f} s")
        contenders["facesym numba"] = lambda: facesym("numba")
    else:
        print("numba backend: not available (pip install numba)")
    if gl_peer is not None:
        print(f"moderngl peer renderer: {gl_peer.renderer}")
        contenders["moderngl llvmpipe (peer)"] = lambda: gl_peer.render(verts_posed,
                                                                        shaded_colors())
    for name, seconds in time_interleaved(contenders, args.repeats).items():
        rows.append((name, args.batch, seconds))
        images[name] = np.asarray(contenders[name]())
    rows.append(("facesym torch", args.batch, time_call(lambda: facesym("torch"),
                                                        args.repeats)))
    images["facesym torch"] = facesym("torch").numpy()
    rows.append(("facesym torch (cull)", args.batch,
                 time_call(lambda: facesym("torch", cull=True), args.repeats)))

    peer_n = min(args.peer_images, args.batch)
    if peer_n > 0:
        def numpy_peer() -> np.ndarray:
            colors = shaded_colors().astype(np.float64)
            return np.stack([numpy_loop_render(verts_posed[i].astype(np.float64), tris_np,
                                               colors[i], camera) for i in range(peer_n)])

        start = time.perf_counter()
        images["numpy loop (peer)"] = numpy_peer()
        rows.append(("numpy loop (peer)", peer_n, time.perf_counter() - start))

    if kaolin_available() and torch.cuda.is_available():
        seconds = time_call(lambda: (facesym("kaolin", device="cuda"),
                                     torch.cuda.synchronize()), args.repeats)
        rows.append(("facesym kaolin (cuda)", args.batch, seconds))
    else:
        print("kaolin backend: not available (kaolin not importable or no CUDA device)")

    print_table(rows, images)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak_mib:.0f} MiB")
    if args.png:
        save_png(next(iter(images.values()))[0], args.png)
        print(f"wrote {args.png}")


def print_table(rows: list[tuple[str, int, float]], images: dict[str, np.ndarray]) -> None:
    """Throughput table, ratios to the llvmpipe peer and pixel agreement between renderers."""
    rates = {name: n / s for name, n, s in rows}
    print(f"\n{'renderer':<26}{'images':>7}{'seconds':>10}{'images/s':>11}")
    for name, n, s in rows:
        print(f"{name:<26}{n:>7}{s:>10.3f}{rates[name]:>11.1f}")
    print()
    peer = "moderngl llvmpipe (peer)"
    for name in ("facesym numba", "facesym torch", "facesym torch (cull)"):
        if name in rates and peer in rates:
            print(f"{name} / llvmpipe: {rates[name] / rates[peer]:.2f}x")
    if "facesym numba" in rates:
        print(f"facesym numba / facesym torch: "
              f"{rates['facesym numba'] / rates['facesym torch']:.2f}x")
    print()
    ours_name = "facesym numba" if "facesym numba" in images else "facesym torch"
    ours = images[ours_name]
    for name, other in images.items():
        if name == ours_name:
            continue
        n = len(other)
        differ = np.any(ours[:n] != other, axis=-1)
        off_by = np.abs(ours[:n].astype(int) - other).max(axis=-1)
        mean_abs = np.abs(ours[:n].astype(int) - other).mean()
        print(f"{ours_name} vs {name}: pixels differing {100 * differ.mean():.3f}% "
              f"(by > 2 levels: {100 * (off_by > 2).mean():.3f}%), mean |delta| "
              f"{mean_abs:.4f} levels")


if __name__ == "__main__":
    main()
