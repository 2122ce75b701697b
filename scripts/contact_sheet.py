"""Snakemake entry point: the contact sheet PNG."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.contact_sheet import contact_sheet
from facesym.cubes import open_cube
from facesym.facemodel.base import FaceModel
from facesym.logs import logged
from facesym.provenance import provenance_attrs, provenance_line

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    model = FaceModel.load(smk.input.model)
    scenes = open_cube(smk.input.scenes).load()
    line = provenance_line(provenance_attrs(
        "contact_sheet", smk.params.cfg,
        inputs={"model": smk.input.model, "scenes": smk.input.scenes}))
    scores = contact_sheet(model, scenes, smk.config, smk.params.faces, smk.output.sheet,
                           provenance=line)
    for face, s in scores.items():
        log.info("%s asymmetry at max strength (emotion x side): %s", face,
                 s[:, :, -1].round(3).tolist())
