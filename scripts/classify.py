"""Snakemake entry point: run one classifier over the image cube."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

import torch

from facesym.classifiers.zoo import load_classifier
from facesym.cubes import open_cube, write_dataset
from facesym.logs import logged
from facesym.provenance import provenance_attrs
from facesym.stages.classify import classify_attrs, classify_renders

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    cfg = smk.params.cfg["classify"]
    torch.set_num_threads(cfg["threads"] or smk.threads)
    name = smk.wildcards.classifier
    clf = load_classifier(name, {name: smk.params.entry}, cache_dir=smk.params.cache)
    renders = open_cube(smk.input.renders)
    cube = classify_renders(clf, renders, batch_size=cfg["batch_size"], device=cfg["device"])
    attrs = provenance_attrs(
        "classify", {**smk.params.cfg, "zoo_entry": smk.params.entry},
        inputs={"renders": smk.input.renders},
        resources=clf.weights_sha256,
        extra=classify_attrs(clf, smk.params.entry, cfg["device"]),
    )
    write_dataset(cube, smk.output.cube, attrs)
    log.info("classified %d images with %s", cube["prob"].size // cube.sizes["label"], name)
