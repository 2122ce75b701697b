"""Sampling the structural causal model's exogenous noise, one seeded stream per factor and face.

Face i's value of factor f is drawn from ``Generator(PCG64(SeedSequence([seed, id(f), i])))``,
so changing one factor's distribution, or the number of faces, never changes any other factor's
draws, nor the draws of existing faces. Scalar factors are ``ppf(u)`` of one uniform variate of
their stream (``facesym.distributions``): editing a distribution keeps each face's quantile.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from facesym.distributions import quantile
from facesym.expressions import prototype_matrix
from facesym.facemodel.base import FaceModel

# Scalar scene variable -> its config key below ``scenes`` (its distribution spec).
SCENE_FACTORS = {
    "intensity": "intensity",
    "yaw": "pose_deg.yaw",
    "pitch": "pose_deg.pitch",
    "roll": "pose_deg.roll",
    "light_azimuth": "light.azimuth_deg",
    "light_elevation": "light.elevation_deg",
    "ambient": "light.ambient",
    "skin_tone": "appearance.skin_tone",
    "camera_distance_offset": "camera.distance_offset_cm",
}
FACTORS = ("identity", *SCENE_FACTORS)


def factor_id(factor: str) -> int:
    """A stable integer id of a factor name (CRC-32), used as a seed-sequence word."""
    return zlib.crc32(factor.encode())


def factor_rng(seed: int, factor: str, face: int) -> np.random.Generator:
    """The random stream of ``factor`` for face index ``face``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, factor_id(factor),
                                                                       face])))


def _spec(scenes_cfg: Mapping, dotted: str) -> Mapping:
    node = scenes_cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def sample_face(seed: int, face: int, scenes_cfg: Mapping, identity_modes: int) -> dict:
    """All noise values of one face: identity coefficients and every scalar factor."""
    out: dict = {
        "identity": factor_rng(seed, "identity", face).standard_normal(identity_modes)
        * scenes_cfg["identity_sd"],
    }
    for var, key in SCENE_FACTORS.items():
        u = factor_rng(seed, var, face).random()
        out[var] = float(quantile(_spec(scenes_cfg, key), u))
    return out


UNITS = {"yaw": "deg", "pitch": "deg", "roll": "deg", "light_azimuth": "deg",
         "light_elevation": "deg"}


def sample_scenes(cfg: Mapping, model: FaceModel,
                  faces: Sequence[int] | None = None) -> xr.Dataset:
    """The scene cube: one row per face with every noise value and its expression weights.

    ``faces`` = (start, stop) samples only faces ``range(start, stop)`` (a shard; the face
    coordinate keeps the global index) without reading ``scenes.faces_per_emotion``; by default
    every face of the study. Face i has emotion i mod E and its own seeded streams, so a face's
    values depend neither on the shard it falls in nor on the study's size.
    """
    sc = cfg["scenes"]
    emotions = list(sc["emotions"])
    index = np.arange(*faces) if faces is not None else np.arange(
        sc["faces_per_emotion"] * len(emotions))
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
