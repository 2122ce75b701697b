"""Contact-sheet stage: chosen identities with every emotion × side × strength, as one PNG."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.contact_sheet import contact_sheet
from facesym.cubes import open_cube
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs, provenance_line


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Render ``cfg["contact_sheet"]["faces"]`` into ``outputs["sheet"]`` and log their scores."""
    model = FaceModel.load(inputs["model"])
    scenes = open_cube(inputs["scenes"]).load()
    line = provenance_line(provenance_attrs(
        "contact_sheet", cfg, inputs={"model": inputs["model"], "scenes": inputs["scenes"]}))
    scores = contact_sheet(model, scenes, cfg, cfg["contact_sheet"]["faces"], outputs["sheet"],
                           provenance=line)
    for face, asym in scores.items():
        log.info("%s asymmetry at max strength (emotion x side): %s", face,
                 asym[:, :, -1].round(3).tolist())
