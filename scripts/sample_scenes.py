"""Snakemake entry point: sample the scene cube."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.cubes import write_dataset
from facesym.facemodel.base import FaceModel
from facesym.logs import logged
from facesym.provenance import provenance_attrs
from facesym.scenes import FACTORS, sample_scenes

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    model = FaceModel.load(smk.input.model)
    scenes = sample_scenes(smk.config, model)
    attrs = provenance_attrs(
        "scenes", smk.params.cfg, inputs={"model": smk.input.model},
        seeds={"seed": smk.config["seed"], "streams": "SeedSequence([seed, crc32(factor), face])",
               "factors": list(FACTORS)},
    )
    write_dataset(scenes, smk.output.scenes, attrs)
    log.info("scenes: %d faces", scenes.sizes["face"])
