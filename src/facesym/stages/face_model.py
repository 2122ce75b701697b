"""Face-model stage: the morphable model's source files → one compact cache (``.npz``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from facesym.facemodel import build_face_model
from facesym.provenance import provenance_attrs
from facesym.resources import get_resource, verify_resource


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Build ICT-FaceKit from its verified resource, or the user's FLAME, and save it."""
    fm = cfg["face_model"]
    if fm["name"] == "flame":
        source, sources = Path(inputs["flame"]), {"flame": inputs["flame"]}
        model = build_face_model(fm, source, landmarks=inputs.get("landmarks"))
    else:
        cache = Path(cfg["resources"]["cache_dir"])
        verify_resource(get_resource("ict_facekit"), cache)
        sources = {"stamp": inputs["stamp"]}
        model = build_face_model(fm, cache / "ict_facekit" / "FaceXModel", progress=log.info)
        model.meta["resource_stamp"] = Path(inputs["stamp"]).read_text()
    model.meta["provenance"] = provenance_attrs("face_model", cfg, inputs=sources)
    model.save(outputs["model"])
    log.info("face model %s: %d vertices, %d triangles, %d expression shapes, %d identity modes",
             model.name, model.n_vertices, len(model.triangles), len(model.expression_names),
             len(model.identity))
