"""Snakemake entry point: build the face model cache from the verified resource files."""

from pathlib import Path

from facesym.facemodel.ict import build_ict_model
from facesym.logs import logged
from facesym.resources import get_resource, verify_resource

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    cache = Path(smk.params.cache)
    verify_resource(get_resource("ict_facekit"), cache)
    model = build_ict_model(cache / "ict_facekit" / "FaceXModel",
                            identity_modes=smk.params.cfg["face_model"]["identity_modes"],
                            progress=log.info)
    model.meta["resource_stamp"] = Path(smk.input.stamp).read_text()
    model.save(smk.output.model)
    log.info("face model: %d vertices, %d triangles, %d expression shapes, %d identity modes",
             model.n_vertices, len(model.triangles), len(model.expression_names),
             len(model.identity))
