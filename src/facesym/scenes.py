"""Sampling the structural causal model's exogenous noise, one seeded stream per factor and face.

Face i's value of factor f is drawn from ``Generator(PCG64(SeedSequence([seed, id(f), i])))``,
so changing one factor's distribution, or the number of faces, never changes any other factor's
draws, nor the draws of existing faces.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import xarray as xr

from facesym.expressions import prototype_matrix
from facesym.facemodel.base import FaceModel

FACTORS = ("identity", "intensity", "pose", "light", "appearance", "camera")


def factor_id(factor: str) -> int:
    """A stable integer id of a factor name (CRC-32), used as a seed-sequence word."""
    return zlib.crc32(factor.encode())


def factor_rng(seed: int, factor: str, face: int) -> np.random.Generator:
    """The random stream of ``factor`` for face index ``face``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, factor_id(factor),
                                                                       face])))


def _uniform(rng: np.random.Generator, spec: Mapping) -> float:
    return float(rng.uniform(spec["low"], spec["high"]))


def sample_face(seed: int, face: int, scenes_cfg: Mapping, identity_modes: int) -> dict:
    """All noise values of one face (identity, intensity, pose, light, appearance, camera)."""
    rng = {f: factor_rng(seed, f, face) for f in FACTORS}
    pose = scenes_cfg["pose_sd_deg"]
    light = scenes_cfg["light"]
    return {
        "identity": rng["identity"].standard_normal(identity_modes) * scenes_cfg["identity_sd"],
        "intensity": _uniform(rng["intensity"], scenes_cfg["intensity"]),
        "yaw": float(rng["pose"].normal(0.0, 1.0)) * pose["yaw"],
        "pitch": float(rng["pose"].normal(0.0, 1.0)) * pose["pitch"],
        "roll": float(rng["pose"].normal(0.0, 1.0)) * pose["roll"],
        "light_azimuth": _uniform(rng["light"], light["azimuth_deg"]),
        "light_elevation": _uniform(rng["light"], light["elevation_deg"]),
        "ambient": _uniform(rng["light"], light["ambient"]),
        "skin_tone": _uniform(rng["appearance"], scenes_cfg["appearance"]["skin_tone"]),
        "camera_distance_offset": float(
            rng["camera"].uniform(-1.0, 1.0) * scenes_cfg["camera"]["distance_jitter_cm"]
        ),
    }


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
    for var, unit in units.items():
        ds[var].attrs["units"] = unit
    ds["expression_weight"].attrs["description"] = "prototype(emotion) × intensity"
    return ds
