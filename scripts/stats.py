"""Snakemake entry point: tests, summary table and dose-response figure."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.cubes import open_cube, write_dataset
from facesym.logs import logged
from facesym.plots import dose_response_figure
from facesym.provenance import provenance_attrs
from facesym.stats import effect_tests, summary_markdown, summary_table

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    scfg = smk.params.cfg["stats"]
    cubes = {name: open_cube(path) for name, path in
             zip(smk.params.classifiers, smk.input.cubes, strict=True)}
    tests = effect_tests(cubes, alpha=scfg["alpha"], correction=scfg["correction"])
    attrs = provenance_attrs("stats", smk.params.cfg,
                             inputs=dict(zip(smk.params.classifiers, smk.input.cubes,
                                             strict=True)))
    df = summary_table(tests)
    df.to_csv(smk.output.csv, index=False, float_format="%.6g")
    with open(smk.output.md, "w") as fh:
        fh.write(summary_markdown(df, scfg["alpha"], scfg["correction"]))
    dose_response_figure(cubes, smk.output.figure)
    write_dataset(tests, smk.output.tests, attrs)
    log.info("stats: %d tests, %d significant", int(tests["p"].notnull().sum()),
             int(tests["significant"].sum()))
