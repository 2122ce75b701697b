# facesym: does facial symmetry causally change what expression classifiers output?
# Chain: resources -> face_model -> scenes -> render -> classify -> stats, with scenes, render and
# classify one job per shard of faces (and per classifier); stats read the shards back lazily.
# With photos.manifest set, a real-photo branch runs too: photo_cube -> photo_stats.
# All science lives in the facesym package (src/); rules only wire it.

import os

from snakemake.utils import min_version

min_version("9.0")


# The default study; `--configfile other.yaml` is merged on top of it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/face_model.smk"
include: "rules/scenes.smk"
include: "rules/render.smk"
include: "rules/classify.smk"
include: "rules/stats.smk"
include: "rules/manipulation.smk"
include: "rules/contact_sheet.smk"
include: "rules/photos.smk"


rule all:
    input:
        # every shard store is a product of the study: one deleted is made again (and what
        # depends on it), not only when a later stage happens to need it
        expand(f"{RESULTS}/{{stage}}/{{shard}}.zarr", stage=("scenes", "renders"), shard=SHARDS),
        STATS_OUTPUTS,
        rules.manipulation_check.output,
        rules.contact_sheet.output,
        # the real-photo branch, only when photos.manifest is set
        PHOTO_OUTPUTS,
    default_target: True
