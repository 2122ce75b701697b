"""Scenes stage: the SCM's exogenous noise per face (one seeded stream per factor) → a cube."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.cubes import write_dataset
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs
from facesym.scenes import FACTORS, sample_scenes


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Sample every face's scene values and expression weights into ``outputs["scenes"]``."""
    model = FaceModel.load(inputs["model"])
    scenes = sample_scenes(cfg, model)
    attrs = provenance_attrs(
        "scenes", cfg, inputs={"model": inputs["model"]},
        seeds={"seed": cfg["seed"], "streams": "SeedSequence([seed, crc32(factor), face])",
               "factors": list(FACTORS)},
    )
    write_dataset(scenes, outputs["scenes"], attrs)
    log.info("scenes: %d faces", scenes.sizes["face"])
