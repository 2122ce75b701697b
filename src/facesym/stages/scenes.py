"""Scenes stage: the SCM's exogenous noise of one shard's faces (one seeded stream per factor and
face) → a cube."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from facesym.cubes import write_dataset
from facesym.expressions import prototype_matrix
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs
from facesym.scenes import FACTORS, SCENE_FACTORS, sample_face

UNITS = {"yaw": "deg", "pitch": "deg", "roll": "deg", "light_azimuth": "deg",
         "light_elevation": "deg"}


def _spec(scenes_cfg: Mapping, dotted: str) -> Mapping:
    node = scenes_cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def sample_shard(cfg: Mapping, model: FaceModel, faces: Sequence[int]) -> xr.Dataset:
    """The scene cube of faces ``range(*faces)``: each face's noise values and expression weights.

    Face i has emotion i mod E and its own seeded streams, so a face's values do not depend on
    the shard it falls in nor on the study's size.
    """
    sc = cfg["scenes"]
    emotions = list(sc["emotions"])
    index = np.arange(*faces)
    k = cfg["face_model"]["identity_modes"]
    draws = [sample_face(cfg["seed"], int(i), sc, k) for i in index]
    which = index % len(emotions)
    protos = prototype_matrix(emotions, cfg["expressions"], model)
    intensity = np.array([d["intensity"] for d in draws], dtype=np.float64)
    weights = protos[which] * intensity[:, None]
    scalar = {var: ("face", np.array([d[var] for d in draws], dtype=np.float64))
              for var in SCENE_FACTORS}
    ds = xr.Dataset(
        {
            "emotion": ("face", np.array([emotions[e] for e in which],
                                         dtype=np.dtypes.StringDType())),
            "identity": (("face", "mode"), np.stack([d["identity"] for d in draws])
                         if k and draws else np.zeros((len(index), k))),
            "expression_weight": (("face", "shape"), weights.astype(np.float32)),
            **scalar,
        },
        coords={
            "face": index,
            "mode": np.arange(k),
            "shape": np.array(model.expression_names, dtype=np.dtypes.StringDType()),
        },
    )
    for var, key in SCENE_FACTORS.items():
        ds[var].attrs["distribution"] = json.dumps(dict(_spec(sc, key)), sort_keys=True)
        units = model.units if var == "camera_distance_offset" else UNITS.get(var)
        if units:
            ds[var].attrs["units"] = units
    ds["expression_weight"].attrs["description"] = "prototype(emotion) × intensity"
    return ds


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Sample the scene values and expression weights of the shard's faces into a store."""
    model = FaceModel.load(inputs["model"])
    faces = cfg["faces"]
    scenes = sample_shard(cfg, model, faces)
    attrs = provenance_attrs(
        "scenes", cfg, inputs={"model": inputs["model"]},
        seeds={"seed": cfg["seed"], "streams": "SeedSequence([seed, crc32(factor), face])",
               "factors": list(FACTORS)},
        extra={"faces": list(faces)},
    )
    write_dataset(scenes, outputs["scenes"], attrs)
    log.info("scenes: faces %d..%d", faces[0], faces[1] - 1)
