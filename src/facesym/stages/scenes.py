"""Scenes stage: the SCM's exogenous noise of one shard's faces (one seeded stream per factor and
face) → a cube."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import xarray as xr

from facesym.cubes import write_dataset
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs
from facesym.scenes import FACTORS, sample_scenes


def sample_shard(cfg: Mapping, model: FaceModel, faces: Sequence[int]) -> xr.Dataset:
    """The scene cube of faces ``range(*faces)`` (see :func:`facesym.scenes.sample_scenes`)."""
    return sample_scenes(cfg, model, faces)


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
