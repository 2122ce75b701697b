"""Render stage: every face × side × strength, with symmetry scores and face boxes, into a cube."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from facesym.appearance import appearance_masks, vertex_albedo
from facesym.cubes import CubeWriter
from facesym.facemodel.base import FaceModel
from facesym.interventions import (
    displacement_parts,
    intervene,
    intervention_masks,
    shape_groups,
)
from facesym.render import frontal_camera, project_points, render_batch, rotation_matrix
from facesym.symmetry import asymmetry_2d, asymmetry_3d, asymmetry_rms_3d, paired_vertices

BACKGROUND_RGB = (0.45, 0.45, 0.45)


@dataclass
class FaceMeshes:
    """Every intervened mesh of one face plus the measures of what the intervention did."""

    vertices: np.ndarray  # (S, A, V, 3) model frame, before pose
    neutral: np.ndarray  # (V, 3) same identity without expression
    asym_3d: np.ndarray  # (S, A)
    asym_rms_3d: np.ndarray  # (S, A)
    expression_norm: np.ndarray  # (S, A) mean |Δ| over face vertices


def face_meshes(model: FaceModel, beta: np.ndarray, weights: np.ndarray,
                sides: list[str], strengths: list[float], intervention_cfg: Mapping,
                masks: dict[str, np.ndarray]) -> FaceMeshes:
    """Meshes of one face for every (side, strength) of the design."""
    groups = shape_groups(model, intervention_cfg["spared_shapes"])
    parts = displacement_parts(model, weights, groups)
    neutral = model.identity_mesh(beta) if beta.size else model.template.copy()
    disp = np.stack([np.stack([intervene(parts, s, a, masks) for a in strengths])
                     for s in sides])
    paired = paired_vertices(model)
    face = model.region_mask("face")
    return FaceMeshes(
        vertices=neutral[None, None] + disp,
        neutral=neutral,
        asym_3d=asymmetry_3d(disp, model, paired),
        asym_rms_3d=asymmetry_rms_3d(disp, model, paired),
        expression_norm=np.linalg.norm(disp[..., face, :], axis=-1).mean(-1),
    )


def light_direction(azimuth_deg: np.ndarray, elevation_deg: np.ndarray) -> np.ndarray:
    """Unit direction towards a light at azimuth (towards +x) and elevation (towards +y)."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.stack([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)], axis=-1)


def pose_vertices(vertices: torch.Tensor, yaw: float, pitch: float, roll: float,
                  pivot: torch.Tensor, depth_offset: float) -> torch.Tensor:
    """Rotate (..., V, 3) about ``pivot`` by the head pose and move it away by ``depth_offset``."""
    rot = rotation_matrix(yaw, pitch, roll, dtype=vertices.dtype)
    posed = (vertices - pivot) @ rot.mT + pivot
    posed[..., 2] -= depth_offset
    return posed


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def render_study(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, out: str | Path,
                 attrs: Mapping, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
    """Render the whole design into the Zarr cube ``out`` (streamed face by face)."""
    rcfg, icfg = cfg["render"], cfg["intervention"]
    sides = list(icfg["sides"])
    strengths = [float(a) for a in icfg["strengths"]]
    size = int(rcfg["size"])
    n_faces = scenes.sizes["face"]
    device = rcfg["device"]

    landmarks = model.landmarks
    pivot = torch.as_tensor(model.template[landmarks].mean(0), dtype=torch.float32)
    camera = frontal_camera(rcfg["distance_cm"], rcfg["fov_deg"], size,
                            target=tuple(float(c) for c in pivot))
    triangles = torch.as_tensor(model.triangles)
    amasks = appearance_masks(model)
    hemi = intervention_masks(model, icfg["mask_width_cm"])

    writer = CubeWriter(out, coords={
        "face": scenes["face"].values, "side": sides, "strength": strengths,
        "y": np.arange(size), "x": np.arange(size), "channel": ["R", "G", "B"],
        "landmark": np.arange(len(landmarks)), "box": ["x0", "y0", "x1", "y1"],
    })
    ns, na = len(sides), len(strengths)
    writer.add_variable("image", ("face", "side", "strength", "y", "x", "channel"), np.uint8,
                        chunks=(1, ns, na, size, size, 3),
                        attrs={"description": "rendered RGB image"})
    per_image = ("face", "side", "strength")
    for name, desc in (
        ("asym_3d", "3D asymmetry index of the expression displacement (0 symmetric, 1 one-sided)"),
        ("asym_rms_3d", f"RMS of the antisymmetric expression displacement ({model.units})"),
        ("asym_2d", "2D asymmetry index of the 68 projected landmarks' displacement"),
        ("expression_norm", f"mean |expression displacement| over face vertices ({model.units})"),
    ):
        writer.add_variable(name, per_image, np.float32, attrs={"description": desc})
    writer.add_coord("xy", ["x", "y"])
    writer.add_variable("landmarks_2d", (*per_image, "landmark", "xy"), np.float32,
                        attrs={"description": "68 landmark pixel coordinates (x right, y down)"})
    writer.add_variable("face_box", (*per_image, "box"), np.float32,
                        attrs={"description": "landmark bounding box in pixels"})
    writer.add_variable("emotion", ("face",), np.dtypes.StringDType(), fill_value="")
    writer.write("emotion", (slice(None),), scenes["emotion"].values)

    emotions = scenes["emotion"].values
    weights = scenes["expression_weight"].values
    identity = scenes["identity"].values
    light = light_direction(scenes["light_azimuth"].values, scenes["light_elevation"].values)
    albedo_all = vertex_albedo(amasks, scenes["skin_tone"].values)
    batch_faces = max(1, int(rcfg["batch_size"]) // (ns * na))
    try:
        bar = tqdm(total=n_faces, desc="render", unit="face", disable=not progress)
        for chunk in _chunks(n_faces, batch_faces):
            verts, refs, meas = [], [], []
            for f in range(chunk.start, chunk.stop):
                fm = face_meshes(model, identity[f], weights[f], sides, strengths, icfg, hemi)
                s = scenes.isel(face=f)
                args = (float(s["yaw"]), float(s["pitch"]), float(s["roll"]), pivot,
                        float(s["camera_distance_offset"]))
                verts.append(pose_vertices(torch.as_tensor(fm.vertices), *args))
                refs.append(pose_vertices(torch.as_tensor(fm.neutral[landmarks]), *args))
                meas.append(fm)
            v = torch.stack(verts).reshape(-1, model.n_vertices, 3)
            nb = len(verts)
            rep = ns * na
            images = render_batch(
                v, triangles,
                torch.as_tensor(albedo_all[chunk]).repeat_interleave(rep, 0),
                camera,
                light_dir=torch.as_tensor(light[chunk], dtype=torch.float32
                                          ).repeat_interleave(rep, 0),
                ambient=torch.as_tensor(scenes["ambient"].values[chunk], dtype=torch.float32
                                        ).repeat_interleave(rep, 0),
                diffuse=torch.as_tensor(1.0 - scenes["ambient"].values[chunk],
                                        dtype=torch.float32).repeat_interleave(rep, 0),
                background_rgb=BACKGROUND_RGB, backend=rcfg["backend"], device=device,
            ).cpu().numpy()
            lm = project_points(v[:, landmarks], camera).reshape(nb, ns, na, -1, 2).numpy()
            lm_ref = project_points(torch.stack(refs), camera).numpy()[:, None, None]
            box = np.concatenate([lm.min(axis=-2), lm.max(axis=-2)], axis=-1)
            writer.write("image", (chunk,), images.reshape(nb, ns, na, size, size, 3))
            writer.write("landmarks_2d", (chunk,), lm.astype(np.float32))
            writer.write("face_box", (chunk,), box.astype(np.float32))
            writer.write("asym_2d", (chunk,), asymmetry_2d(lm, lm_ref).astype(np.float32))
            for name in ("asym_3d", "asym_rms_3d", "expression_norm"):
                writer.write(name, (chunk,),
                             np.stack([getattr(m, name) for m in meas]).astype(np.float32))
            bar.update(nb)
            if log:
                log(f"rendered faces {chunk.start}..{chunk.stop - 1} ({emotions[chunk][0]}...)")
        bar.close()
        writer.close({**attrs, "camera": repr(camera), "background_rgb": list(BACKGROUND_RGB),
                      "fov_deg": float(rcfg["fov_deg"]), "image_size": size,
                      "focal_px": float(camera.focal_px)})
    except BaseException:
        writer.abort()
        raise
