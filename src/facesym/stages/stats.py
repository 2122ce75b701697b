"""Stats stage: the test family, summary tables, derivative and OLS tables, and figures."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.cubes import write_dataset
from facesym.plots import dose_response_figure, effects_figure
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stages.shards import open_shards, shard_inputs, split_by_classifier
from facesym.stats import (
    dose_response_tables,
    effect_tests,
    omnibus_table,
    summary_markdown,
    summary_table,
)

# what the statistics read of a classify cube (its images' probabilities and the design)
STATS_VARIABLES = ("prob", "emotion")


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Test every classifier's shards (``inputs["cubes"]``: classifier-major, in
    ``cfg["classifiers"]`` order), joined along ``face``."""
    stats_cfg, seed = cfg["stats"], cfg["seed"]
    alpha, correction = stats_cfg["alpha"], stats_cfg["correction"]
    shards = split_by_classifier(inputs["cubes"], cfg["classifiers"])
    cubes = {name: open_shards(group, STATS_VARIABLES) for name, group in shards.items()}
    paths = shard_inputs(shards)
    tests = effect_tests(cubes, alpha=alpha, correction=correction,
                         n_flips=stats_cfg["n_flips"], seed=seed, floor=stats_cfg["floor"],
                         equivalence_margin=stats_cfg["equivalence_margin"])
    attrs = provenance_attrs("stats", cfg, inputs=paths,
                             seeds={"seed": seed, "bootstrap": tests.attrs["bootstrap_seeds"],
                                    "max-T flips": tests.attrs["n_flips"]})
    table = summary_table(tests)
    table.to_csv(outputs["csv"], index=False, float_format="%.6g")
    omnibus = omnibus_table(tests)
    omnibus.to_csv(outputs["omnibus"], index=False, float_format="%.6g")
    derivatives, ols = dose_response_tables(cubes, stats_cfg["derivative_points"], alpha)
    derivatives.to_csv(outputs["derivatives"], index=False, float_format="%.6g")
    ols.to_csv(outputs["ols"], index=False, float_format="%.6g")
    line = provenance_line(attrs)
    with open(outputs["md"], "w") as fh:
        fh.write(summary_markdown(table, alpha, correction, omnibus))
        fh.write(f"\nProvenance: {line}\n")
    dose_response_figure(cubes, outputs["figure"], provenance=line)
    effects_figure(table, outputs["effects"], provenance=line)
    write_dataset(tests, outputs["tests"], attrs)
    log.info("stats: %d tests, %d significant (%s), %d by max-T", int(tests["p"].notnull().sum()),
             int(tests["significant"].sum()), correction, int((tests["p_maxT"] < alpha).sum()))
