"""Render stage: every face × side × strength, with symmetry scores and face boxes, into a cube."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from facesym.appearance import Look, appearance_masks, vertex_albedo
from facesym.cubes import CubeWriter, open_cube
from facesym.distinct import distinct_rows
from facesym.facemodel.base import FaceModel
from facesym.interventions import (
    displacement_parts,
    intervene,
    intervention_masks,
    shape_groups,
)
from facesym.provenance import provenance_attrs
from facesym.render import frontal_camera, project_points, render_batch, rotation_matrix
from facesym.stages.shards import check_faces
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
    groups = shape_groups(model, intervention_cfg["spared_shapes"],
                          mode=intervention_cfg.get("mode", "split"))
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


@dataclass
class RenderedFaces:
    """Images and measures of a batch of faces over the (side, strength) design."""

    images: np.ndarray  # (B, S, A, H, W, 3) uint8
    landmarks_2d: np.ndarray  # (B, S, A, 68, 2)
    face_box: np.ndarray  # (B, S, A, 4)
    asym_2d: np.ndarray  # (B, S, A)
    asym_3d: np.ndarray
    asym_rms_3d: np.ndarray
    expression_norm: np.ndarray


class StudyRenderer:
    """Everything that is the same for every face of a study: camera, appearance, masks."""

    def __init__(self, model: FaceModel, cfg: Mapping) -> None:
        self.model = model
        self.rcfg, self.icfg = cfg["render"], cfg["intervention"]
        self.sides = list(self.icfg["sides"])
        self.strengths = [float(a) for a in self.icfg["strengths"]]
        self.size = int(self.rcfg["size"])
        self.pivot = torch.as_tensor(model.template[model.landmarks].mean(0), dtype=torch.float32)
        self.camera = frontal_camera(self.rcfg["distance_cm"], self.rcfg["fov_deg"], self.size,
                                     target=tuple(float(c) for c in self.pivot))
        self.triangles = torch.as_tensor(model.triangles)
        self.look = Look.from_config(self.rcfg["appearance"])
        self.appearance = appearance_masks(model)
        self.hemi = intervention_masks(model, self.icfg["mask_width_cm"])

    def render(self, identity: np.ndarray, weights: np.ndarray, scene: Mapping[str, np.ndarray]
               ) -> RenderedFaces:
        """Render B faces: identity (B, K), expression weights (B, E), scene values (B,) each.

        Identical meshes of a face (the untouched one of every side) are rendered once and
        the image copied (:func:`facesym.distinct.distinct_rows`)."""
        model, landmarks = self.model, self.model.landmarks
        ns, na, nb = len(self.sides), len(self.strengths), len(identity)
        rep = ns * na
        verts, neutrals, refs, meas, owner = [], [], [], [], []
        slot = np.empty((nb, rep), dtype=np.int64)  # image (face, side·strength) → mesh drawn
        for f in range(nb):
            fm = face_meshes(model, identity[f], weights[f], self.sides, self.strengths,
                             self.icfg, self.hemi)
            flat = fm.vertices.reshape(rep, model.n_vertices, 3)
            first, which = distinct_rows(flat)
            slot[f] = len(owner) + which
            owner.extend([f] * len(first))
            args = (float(scene["yaw"][f]), float(scene["pitch"][f]), float(scene["roll"][f]),
                    self.pivot, float(scene["camera_distance_offset"][f]))
            verts.append(pose_vertices(torch.as_tensor(flat[first]), *args))
            # the cavity shading darkens only what the expression adds to this identity
            neutrals.append(pose_vertices(torch.as_tensor(fm.neutral), *args))
            refs.append(pose_vertices(torch.as_tensor(fm.neutral[landmarks]), *args))
            meas.append(fm)
        v = torch.cat(verts)
        drawn = torch.as_tensor(np.asarray(owner))  # face of each mesh drawn
        ambient = torch.as_tensor(np.asarray(scene["ambient"]), dtype=torch.float32)[drawn]
        light = light_direction(np.asarray(scene["light_azimuth"]),
                                np.asarray(scene["light_elevation"]))
        albedo = torch.as_tensor(vertex_albedo(self.appearance, np.asarray(scene["skin_tone"]),
                                               self.look))
        drawn_images = render_batch(
            v, self.triangles, albedo[drawn], self.camera,
            light_dir=torch.as_tensor(light, dtype=torch.float32)[drawn],
            ambient=ambient, diffuse=1.0 - ambient,
            background_rgb=BACKGROUND_RGB, backend=self.rcfg["backend"],
            device=self.rcfg["device"], neutral_vertices=torch.stack(neutrals)[drawn],
            **self.look.shading(),
        ).cpu().numpy()
        images = drawn_images[slot.ravel()]
        lm = project_points(v[:, landmarks], self.camera).numpy()[slot.ravel()]
        lm = lm.reshape(nb, ns, na, -1, 2)
        lm_ref = project_points(torch.stack(refs), self.camera).numpy()[:, None, None]
        return RenderedFaces(
            images=images.reshape(nb, ns, na, self.size, self.size, 3),
            landmarks_2d=lm.astype(np.float32),
            face_box=np.concatenate([lm.min(axis=-2), lm.max(axis=-2)], axis=-1
                                    ).astype(np.float32),
            asym_2d=asymmetry_2d(lm, lm_ref).astype(np.float32),
            **{name: np.stack([getattr(m, name) for m in meas]).astype(np.float32)
               for name in ("asym_3d", "asym_rms_3d", "expression_norm")},
        )

    def camera_attrs(self) -> dict:
        """Camera and background facts for provenance."""
        return {"camera": repr(self.camera), "background_rgb": list(BACKGROUND_RGB),
                "fov_deg": float(self.rcfg["fov_deg"]), "image_size": self.size,
                "focal_px": float(self.camera.focal_px)}


SCENE_VARS = ("yaw", "pitch", "roll", "camera_distance_offset", "ambient", "light_azimuth",
              "light_elevation", "skin_tone")
MEASURES = {
    "asym_3d": "3D asymmetry index of the expression displacement (0 symmetric, 1 one-sided)",
    "asym_rms_3d": "RMS of the antisymmetric expression displacement (model units)",
    "asym_2d": "2D asymmetry index of the 68 projected landmarks' displacement",
    "expression_norm": "mean |expression displacement| over face vertices (model units)",
}


def _open_writer(out: str | Path, scenes: xr.Dataset, r: StudyRenderer) -> CubeWriter:
    size, ns, na = r.size, len(r.sides), len(r.strengths)
    writer = CubeWriter(out, coords={
        "face": scenes["face"].values, "side": r.sides, "strength": r.strengths,
        "y": np.arange(size), "x": np.arange(size), "channel": ["R", "G", "B"],
        "landmark": np.arange(len(r.model.landmarks)), "box": ["x0", "y0", "x1", "y1"],
        "xy": ["x", "y"],
    })
    per_image = ("face", "side", "strength")
    writer.add_variable("image", (*per_image, "y", "x", "channel"), np.uint8,
                        chunks=(1, ns, na, size, size, 3),
                        attrs={"description": "rendered RGB image"})
    for name, desc in MEASURES.items():
        writer.add_variable(name, per_image, np.float32, attrs={"description": desc})
    writer.add_variable("landmarks_2d", (*per_image, "landmark", "xy"), np.float32,
                        attrs={"description": "68 landmark pixel coordinates (x right, y down)"})
    writer.add_variable("face_box", (*per_image, "box"), np.float32,
                        attrs={"description": "landmark bounding box in pixels"})
    writer.add_variable("emotion", ("face",), np.dtypes.StringDType(), fill_value="")
    writer.write("emotion", (slice(None),), scenes["emotion"].values)
    return writer


def render_study(model: FaceModel, scenes: xr.Dataset, cfg: Mapping, out: str | Path,
                 attrs: Mapping, progress: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
    """Render the whole design into the Zarr cube ``out`` (streamed in face batches)."""
    r = StudyRenderer(model, cfg)
    n_faces = scenes.sizes["face"]
    writer = _open_writer(out, scenes, r)
    values = {k: scenes[k].values for k in SCENE_VARS}
    weights, identity = scenes["expression_weight"].values, scenes["identity"].values
    batch_faces = max(1, int(r.rcfg["batch_size"]) // (len(r.sides) * len(r.strengths)))
    try:
        with tqdm(total=n_faces, desc="render", unit="face", disable=not progress) as bar:
            for chunk in _chunks(n_faces, batch_faces):
                res = r.render(identity[chunk], weights[chunk],
                               {k: v[chunk] for k, v in values.items()})
                for name in ("images", "landmarks_2d", "face_box", *MEASURES):
                    writer.write("image" if name == "images" else name, (chunk,),
                                 getattr(res, name))
                bar.update(chunk.stop - chunk.start)
                if log:
                    log(f"rendered faces {chunk.start}..{chunk.stop - 1} of {n_faces}")
        writer.close({**attrs, **r.camera_attrs()})
    except BaseException:
        writer.abort()
        raise


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Render the shard's faces (``cfg["faces"]``) from the face model and the shard's scene cube
    into ``outputs["renders"]``.

    Rendering is deterministic: its only randomness is the scenes', whose seeds that store holds.
    """
    model = FaceModel.load(inputs["model"])
    scenes = open_cube(inputs["scenes"]).load()
    check_faces(scenes, cfg["faces"], inputs["scenes"])
    rcfg = cfg["render"]
    attrs = provenance_attrs(
        "render", cfg, inputs={"model": inputs["model"], "scenes": inputs["scenes"]},
        extra={"backend": rcfg["backend"], "device": rcfg["device"], "faces": list(cfg["faces"])},
    )
    render_study(model, scenes, cfg, outputs["renders"], attrs, log=log.info)
