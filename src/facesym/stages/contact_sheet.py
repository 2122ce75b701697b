"""Contact-sheet stage: chosen identities with every emotion × side × strength, as one PNG."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from facesym.contact_sheet import contact_sheet
from facesym.facemodel.base import FaceModel
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stages.shards import open_shards


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Render ``cfg["contact_sheet"]["faces"]`` into ``outputs["sheet"]`` and log their scores
    and the 2D-vs-3D mirror composite errors of the first face.

    ``inputs["scenes"]`` are the scene shards that hold those faces (not the whole study).
    """
    model = FaceModel.load(inputs["model"])
    paths = [inputs["scenes"]] if isinstance(inputs["scenes"], str) else list(inputs["scenes"])
    scenes = open_shards(paths)
    line = provenance_line(provenance_attrs(
        "contact_sheet", cfg, inputs={"model": inputs["model"],
                                      **{f"scenes/{Path(p).stem}": p for p in paths}}))
    scores = contact_sheet(model, scenes, cfg, cfg["contact_sheet"]["faces"], outputs["sheet"],
                           provenance=line)
    log.info("sides shown: %s", ", ".join(scores.sides))
    for face, asym in scores.asym.items():
        log.info("%s asymmetry at max strength (emotion x side): %s", face,
                 asym[:, :, -1].round(3).tolist())
    comp = scores.composites
    for side, mae in comp.mae_2d_vs_3d.items():
        log.info("face%d 2D vs 3D mirror composite (%s), masked MAE 0-255 per emotion: %s "
                 "(3D composite vs original: %s)", comp.face, side, mae.round(2).tolist(),
                 comp.mae_original_vs_3d[side].round(2).tolist())
