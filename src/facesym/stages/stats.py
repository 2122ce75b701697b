"""Stats stage: the test family, summary tables, derivative and OLS tables, the laterality
report (image-flip control, when the classify cubes carry it), and figures."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.cubes import open_cube, write_dataset
from facesym.expressions import prototypes_source_markdown, with_prototypes
from facesym.laterality import PROB_FLIPPED, study_laterality
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
from facesym.stats.family import OMNIBUS_RESAMPLES

# what the statistics read of a classify cube (its images' probabilities and the design)
STATS_VARIABLES = ("prob", "emotion")
# and, when the cubes carry it, the image-flip control of the laterality
LATERALITY_VARIABLES = (PROB_FLIPPED,)


def flip_scored(paths: list[str], classifier: str) -> bool:
    """Whether every classify shard of ``classifier`` holds the flipped scores (classify.flip);
    a mixture of shards with and without them is stale and raises ValueError."""
    found = [PROB_FLIPPED in open_cube(p).data_vars for p in paths]
    if any(found) and not all(found):
        missing = [p for p, f in zip(paths, found, strict=True) if not f]
        raise ValueError(f"classifier {classifier}: shards {missing} have no {PROB_FLIPPED} "
                         "while its other shards do (classify.flip changed between runs): "
                         "delete them and re-run")
    return all(found)


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Test every classifier's shards (``inputs["cubes"]``: classifier-major, in
    ``cfg["classifiers"]`` order), joined along ``face``; the summary says which prototypes
    made the faces (``inputs["scenes"]``: a scene shard)."""
    stats_cfg, seed = cfg["stats"], cfg["seed"]
    alpha, correction = stats_cfg["alpha"], stats_cfg["correction"]
    shards = split_by_classifier(inputs["cubes"], cfg["classifiers"])
    read = {name: open_shards(group, STATS_VARIABLES + (
        LATERALITY_VARIABLES if flip_scored(group, name) else ())) for name, group in
        shards.items()}
    cubes = {name: cube[list(STATS_VARIABLES)] for name, cube in read.items()}
    paths = shard_inputs(shards)
    tests = effect_tests(cubes, alpha=alpha, correction=correction,
                         n_flips=stats_cfg["n_flips"], seed=seed, floor=stats_cfg["floor"],
                         equivalence_margin=stats_cfg["equivalence_margin"])
    attrs = provenance_attrs("stats", cfg, inputs=paths,
                             seeds={"seed": seed, "bootstrap": tests.attrs["bootstrap_seeds"],
                                    "max-T flips": tests.attrs["n_flips"],
                                    "laterality bootstrap": f"numpy default_rng(seed), "
                                                            f"{OMNIBUS_RESAMPLES} resamples"},
                             extra={"flip_control": {name: PROB_FLIPPED in cube
                                                     for name, cube in read.items()}})
    table = summary_table(tests)
    table.to_csv(outputs["csv"], index=False, float_format="%.6g")
    omnibus = omnibus_table(tests)
    omnibus.to_csv(outputs["omnibus"], index=False, float_format="%.6g")
    derivatives, ols = dose_response_tables(cubes, stats_cfg["derivative_points"], alpha)
    derivatives.to_csv(outputs["derivatives"], index=False, float_format="%.6g")
    ols.to_csv(outputs["ols"], index=False, float_format="%.6g")
    floor = table.loc[table["floor"].astype(bool), ["classifier", "emotion"]]
    laterality = study_laterality(
        read, excluded={name: set(cells["emotion"]) for name, cells in floor.groupby(
            "classifier")}, margin=stats_cfg["equivalence_margin"], n_boot=OMNIBUS_RESAMPLES,
        seed=seed)
    laterality.to_csv(outputs["laterality"], index=False, float_format="%.6g")
    line = provenance_line(attrs)
    markdown = summary_markdown(table, alpha, correction, omnibus, laterality=laterality)
    if inputs.get("scenes"):  # the workflow always passes one; library callers may not
        markdown = with_prototypes(
            markdown, prototypes_source_markdown(open_cube(inputs["scenes"]).attrs))
    with open(outputs["md"], "w") as fh:
        fh.write(markdown)
        fh.write(f"\nProvenance: {line}\n")
    dose_response_figure(cubes, outputs["figure"], provenance=line)
    effects_figure(table, outputs["effects"], provenance=line)
    write_dataset(tests, outputs["tests"], attrs)
    log.info("laterality (flip control): %s", ", ".join(
        f"{r.classifier} {r.attribution}" for r in laterality.itertuples()))
    log.info("stats: %d tests, %d significant (%s), %d by max-T", int(tests["p"].notnull().sum()),
             int(tests["significant"].sum()), correction, int((tests["p_maxT"] < alpha).sum()))
