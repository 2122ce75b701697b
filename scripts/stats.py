"""Snakemake entry point: tests, summary tables and the dose-response figure."""

import sys
from pathlib import Path

# the package from this checkout, also inside per-rule conda envs that lack it
sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821

from facesym.cubes import open_cube, write_dataset
from facesym.logs import logged
from facesym.plots import dose_response_figure, effects_figure
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stats import (
    dose_response_tables,
    effect_tests,
    omnibus_table,
    summary_markdown,
    summary_table,
)

smk = snakemake  # noqa: F821
with logged(smk.log[0]) as log:
    scfg = smk.params.cfg["stats"]
    cubes = {name: open_cube(path) for name, path in
             zip(smk.params.classifiers, smk.input.cubes, strict=True)}
    tests = effect_tests(cubes, alpha=scfg["alpha"], correction=scfg["correction"],
                         n_flips=scfg["n_flips"], seed=smk.params.cfg["seed"])
    attrs = provenance_attrs("stats", smk.params.cfg,
                             inputs=dict(zip(smk.params.classifiers, smk.input.cubes,
                                             strict=True)),
                             seeds={"seed": smk.params.cfg["seed"],
                                    "bootstrap": "per test, seeded by its position",
                                    "max-T flips": tests.attrs["n_flips"]})
    df = summary_table(tests)
    df.to_csv(smk.output.csv, index=False, float_format="%.6g")
    omnibus = omnibus_table(tests)
    omnibus.to_csv(smk.output.omnibus, index=False, float_format="%.6g")
    deriv, ols = dose_response_tables(cubes, scfg["derivative_points"], scfg["alpha"])
    deriv.to_csv(smk.output.derivatives, index=False, float_format="%.6g")
    ols.to_csv(smk.output.ols, index=False, float_format="%.6g")
    line = provenance_line(attrs)
    with open(smk.output.md, "w") as fh:
        fh.write(summary_markdown(df, scfg["alpha"], scfg["correction"], omnibus))
        fh.write(f"\nProvenance: {line}\n")
    dose_response_figure(cubes, smk.output.figure, provenance=line)
    effects_figure(df, smk.output.effects, provenance=line)
    write_dataset(tests, smk.output.tests, attrs)
    log.info("stats: %d tests, %d significant (%s), %d by max-T", int(tests["p"].notnull().sum()),
             int(tests["significant"].sum()), scfg["correction"],
             int((tests["p_maxT"] < scfg["alpha"]).sum()))
