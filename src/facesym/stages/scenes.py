"""Scenes stage: the SCM's exogenous noise of one shard's faces (one seeded stream per factor and
face) → a cube, with the source of its expression prototypes in the provenance."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import xarray as xr

from facesym.cubes import write_dataset
from facesym.expressions import file_source, literature_source, load_prototypes_file
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs
from facesym.scenes import FACTORS, sample_scenes


def sample_shard(cfg: Mapping, model: FaceModel, faces: Sequence[int]) -> xr.Dataset:
    """The scene cube of faces ``range(*faces)`` (see :func:`facesym.scenes.sample_scenes`)."""
    return sample_scenes(cfg, model, faces)


def prototypes_source(cfg: Mapping, inputs: Mapping) -> dict:
    """Where the shard's prototypes come from: the literature tables, or the prototypes file
    (``inputs["prototypes"]``, named by ``expressions.prototypes_file``), checked again here
    and against the prototypes the rule passed (a file edited after the workflow read it would
    otherwise leave params and store disagreeing)."""
    expressions = cfg["expressions"]
    emotions = list(cfg["scenes"]["emotions"])
    if "prototypes_file" not in expressions:  # the key is present only when a file is named
        return literature_source(expressions, emotions)
    configured = expressions["prototypes_file"]
    # AUs were checked against the study's tables when the config was validated; here the
    # studied emotions must equal what the rule passed
    loaded = load_prototypes_file(inputs["prototypes"], {"action_units": None}, emotions,
                                  expressions["prototypes_sha256"])
    for emotion in emotions:
        if emotion in loaded["prototypes"] and (
                loaded["prototypes"][emotion] != {a: float(v) for a, v in
                                                  expressions["prototypes"][emotion].items()}):
            raise ValueError(f"prototypes file {configured}: {emotion} differs from the "
                             "prototypes the workflow read at its start (the file changed "
                             "while it ran); run again")
    return file_source(configured, loaded)


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Sample the scene values and expression weights of the shard's faces into a store."""
    model = FaceModel.load(inputs["model"])
    faces = cfg["faces"]
    source = prototypes_source(cfg, inputs)
    scenes = sample_shard(cfg, model, faces)
    files = {"model": inputs["model"]}
    if source["kind"] == "file":
        files["prototypes"] = inputs["prototypes"]
    attrs = provenance_attrs(
        "scenes", cfg, inputs=files,
        seeds={"seed": cfg["seed"], "streams": "SeedSequence([seed, crc32(factor), face])",
               "factors": list(FACTORS)},
        extra={"faces": list(faces), "prototypes_source": source},
    )
    write_dataset(scenes, outputs["scenes"], attrs)
    log.info("scenes: faces %d..%d, prototypes: %s", faces[0], faces[1] - 1,
             source.get("path", source.get("source")))
