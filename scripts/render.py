"""Snakemake entry point: render the intervened faces into the image cube."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

import torch

from facesym.cubes import open_cube
from facesym.facemodel.base import FaceModel
from facesym.logs import logged
from facesym.provenance import provenance_attrs

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    from facesym.stages.render import render_study

    torch.set_num_threads(smk.threads)
    model = FaceModel.load(smk.input.model)
    scenes = open_cube(smk.input.scenes).load()
    attrs = provenance_attrs(
        "render", smk.params.cfg,
        inputs={"model": smk.input.model, "scenes": smk.input.scenes},
        seeds={"seed": smk.config["seed"]},
        extra={"backend": smk.config["render"]["backend"],
               "device": smk.config["render"]["device"]},
    )
    render_study(model, scenes, smk.config, smk.output.renders, attrs, log=log.info)
