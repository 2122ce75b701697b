"""Sampling the structural causal model's exogenous noise, one seeded stream per factor and face.

Face i's value of factor f is drawn from ``Generator(PCG64(SeedSequence([seed, id(f), i])))``,
so changing one factor's distribution, or the number of faces, never changes any other factor's
draws, nor the draws of existing faces. Scalar factors are ``ppf(u)`` of one uniform variate of
their stream (``facesym.distributions``): editing a distribution keeps each face's quantile.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping

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


def sample_scenes(cfg: Mapping, model: FaceModel) -> xr.Dataset:
    """The scene cube: one row per face with every noise value and its expression weights."""
    sc = cfg["scenes"]
    emotions = list(sc["emotions"])
    n = sc["faces_per_emotion"] * len(emotions)
    k = cfg["face_model"]["identity_modes"]
    draws = [sample_face(cfg["seed"], i, sc, k) for i in range(n)]
    emotion = [emotions[i % len(emotions)] for i in range(n)]
    protos = prototype_matrix(emotions, cfg["expressions"], model)
    intensity = np.array([d["intensity"] for d in draws])
    weights = protos[[i % len(emotions) for i in range(n)]] * intensity[:, None]
    scalar = {key: ("face", np.array([d[key] for d in draws]))
              for key in draws[0] if key != "identity"}
    ds = xr.Dataset(
        {
            "emotion": ("face", np.array(emotion, dtype=np.dtypes.StringDType())),
            "identity": (("face", "mode"), np.stack([d["identity"] for d in draws])
                         if k else np.zeros((n, 0))),
            "expression_weight": (("face", "shape"), weights.astype(np.float32)),
            **scalar,
        },
        coords={
            "face": np.arange(n),
            "mode": np.arange(k),
            "shape": np.array(model.expression_names, dtype=np.dtypes.StringDType()),
        },
    )
    units = {"yaw": "deg", "pitch": "deg", "roll": "deg", "light_azimuth": "deg",
             "light_elevation": "deg", "camera_distance_offset": model.units}
    for var, key in SCENE_FACTORS.items():
        ds[var].attrs["distribution"] = json.dumps(dict(_spec(sc, key)), sort_keys=True)
        if var in units:
            ds[var].attrs["units"] = units[var]
    ds["expression_weight"].attrs["description"] = "prototype(emotion) × intensity"
    return ds
