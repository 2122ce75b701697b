"""Snakemake entry point: manipulation check table and confusion figure."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.cubes import open_cube
from facesym.logs import logged
from facesym.plots import confusion_figure
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stats import confusion_matrices, manipulation_check

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    cubes = {name: open_cube(path) for name, path in
             zip(smk.params.classifiers, smk.input.cubes, strict=True)}
    line = provenance_line(provenance_attrs(
        "manipulation_check", {}, inputs=dict(zip(smk.params.classifiers, smk.input.cubes,
                                                  strict=True))))
    table = manipulation_check(cubes)
    table.to_csv(smk.output.csv, index=False, float_format="%.4f")
    wide = table.pivot(index="emotion", columns="classifier", values="recognition_rate")
    with open(smk.output.md, "w") as fh:
        fh.write("# Manipulation check (a = 0): recognition rate per emotion\n\n")
        fh.write(wide.to_markdown(floatfmt=".2f") + "\n\n")
        fh.write("## Mean intended-class probability\n\n")
        fh.write(table.pivot(index="emotion", columns="classifier", values="mean_p_intended")
                 .to_markdown(floatfmt=".3f") + "\n")
        fh.write(f"\nProvenance: {line}\n")
    confusion_figure(confusion_matrices(cubes), smk.output.figure, provenance=line)
    log.info("manipulation check: %s", table[table.emotion == "all"].to_dict("records"))
