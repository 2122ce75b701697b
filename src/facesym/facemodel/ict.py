"""ICT-FaceKit "Light" (FaceXModel OBJs) → :class:`FaceModel`."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facesym.facemodel.base import FaceModel, compute_mirror_map

# Inclusive vertex ranges of ICT-FaceKit's FaceXModel (from its documentation).
ICT_REGIONS: list[tuple[str, int, int]] = [
    ("face", 0, 9408),
    ("head", 9409, 11247),
    ("mouth_socket", 11248, 13293),
    ("eye_socket", 13294, 14061),
    ("gums_tongue", 14062, 17038),
    ("teeth", 17039, 21450),
    ("sclera_left", 21451, 22220),
    ("iris_left", 22221, 23020),
    ("sclera_right", 23021, 23790),
    ("iris_right", 23791, 24590),
    ("lacrimal_fluid", 24591, 24998),
    ("eye_blend", 24999, 25046),
    ("eye_occlusion", 25047, 25350),
    ("eyelashes", 25351, 26718),
]
# Transparent helper meshes in the original shading: never rendered.
ICT_HIDDEN = ("lacrimal_fluid", "eye_blend", "eye_occlusion")
# Multi-PIE 68 landmark vertices.
ICT_LANDMARKS = [
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725,
    3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533,
    6216, 6207, 6470, 5517, 5966,
]
MIRROR_TOLERANCE_CM = 0.05


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """The ``v x y z`` records of an OBJ file as a (V, 3) float64 array."""
    text = Path(path).read_bytes()
    lines = [ln for ln in text.split(b"\n") if ln.startswith(b"v ")]
    flat = np.array(b" ".join(ln[2:] for ln in lines).split(), dtype=np.float64)
    return flat.reshape(-1, 3)


def read_obj_polygons(path: str | Path) -> list[list[int]]:
    """The ``f`` records of an OBJ file as lists of 0-based vertex indices."""
    polys = []
    for ln in Path(path).read_bytes().split(b"\n"):
        if ln.startswith(b"f "):
            polys.append([int(tok.split(b"/")[0]) - 1 for tok in ln.split()[1:]])
    return polys


def triangulate(polygons: list[list[int]]) -> np.ndarray:
    """Fan-triangulate convex polygons → (F, 3) int64."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int64)


def region_labels(n_vertices: int) -> tuple[np.ndarray, list[str]]:
    """Per-vertex region code and the region names, from :data:`ICT_REGIONS`."""
    labels = np.full(n_vertices, -1, dtype=np.int16)
    names = [r[0] for r in ICT_REGIONS]
    for code, (_, lo, hi) in enumerate(ICT_REGIONS):
        labels[lo : hi + 1] = code
    if (labels < 0).any():
        raise ValueError("ICT region table does not cover every vertex")
    return labels, names


def _mirror_groups(region: np.ndarray, names: list[str]) -> np.ndarray:
    """Regions whose mirror partners live in the twin region (left eye ↔ right eye) share a code."""
    group = region.copy()
    for a, b in (("sclera_left", "sclera_right"), ("iris_left", "iris_right")):
        group[region == names.index(b)] = names.index(a)
    return group


def build_ict_model(
    folder: str | Path, identity_modes: int = 100,
    progress: Callable[[str], None] | None = None,
) -> FaceModel:
    """Load ICT-FaceKit's FaceXModel folder into a FaceModel (whole head, helpers hidden)."""
    folder = Path(folder)
    neutral_path = folder / "generic_neutral_mesh.obj"
    if not neutral_path.is_file():
        raise FileNotFoundError(f"ICT-FaceKit neutral mesh not found: {neutral_path}")
    template = read_obj_vertices(neutral_path)
    n = len(template)
    region, names = region_labels(n)
    tris = triangulate(read_obj_polygons(neutral_path))
    hidden = np.isin(region, [names.index(h) for h in ICT_HIDDEN])
    tris = tris[~hidden[tris].any(axis=1)]

    expr_names = sorted(
        p.stem for p in folder.glob("*.obj")
        if p.stem != "generic_neutral_mesh" and not p.stem.startswith("identity")
    )
    id_paths = [folder / f"identity{k:03d}.obj" for k in range(identity_modes)]
    paths = [folder / f"{e}.obj" for e in expr_names] + id_paths
    if progress:
        progress(f"reading {len(paths)} OBJ files")
    with ThreadPoolExecutor(max_workers=2) as pool:
        meshes = list(pool.map(read_obj_vertices, paths))
    for p, m in zip(paths, meshes, strict=True):
        if m.shape != template.shape:
            raise ValueError(f"{p} has {len(m)} vertices, expected {n} (topology mismatch)")
    disp = np.stack(meshes) - template[None]
    expression = disp[: len(expr_names)].astype(np.float32)
    identity = disp[len(expr_names) :].astype(np.float32)

    mirror, err, x0 = compute_mirror_map(template, _mirror_groups(region, names),
                                         MIRROR_TOLERANCE_CM)
    info = json.loads((folder / "vertex_indices.json").read_text())
    face = region == names.index("face")
    meta = {
        "source": "ICT-FaceKit FaceXModel",
        "identity_modes": identity_modes,
        "hidden_regions": list(ICT_HIDDEN),
        "mirror_tolerance_cm": MIRROR_TOLERANCE_CM,
        "mirror_unpaired": int((mirror < 0).sum()),
        "mirror_face_max_error_cm": float(err[face].max()),
        "fitting_expressions": info.get("expressions", []),
    }
    return FaceModel(
        name="ict", template=template.astype(np.float32), triangles=tris, identity=identity,
        expression=expression, expression_names=expr_names,
        landmarks=np.asarray(ICT_LANDMARKS, dtype=np.int64), region=region, region_names=names,
        mirror=mirror, mirror_error=err, midline_x=x0, units="cm", meta=meta,
    )
