"""Manipulation-check stage: recognition on the untouched (a = 0) renders, and confusions."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from facesym.cubes import open_cube
from facesym.expressions import prototypes_source_markdown, with_prototypes
from facesym.plots import confusion_figure
from facesym.provenance import provenance_attrs, provenance_line
from facesym.stages.shards import open_shards, shard_inputs, split_by_classifier
from facesym.stages.stats import STATS_VARIABLES
from facesym.stats import confusion_matrices, manipulation_check, manipulation_markdown


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Table (CSV, Markdown) and confusion figure of every classifier in ``cfg["classifiers"]``;
    the Markdown says which prototypes made the faces (``inputs["scenes"]``: a scene shard)."""
    shards = split_by_classifier(inputs["cubes"], cfg["classifiers"])
    cubes = {name: open_shards(group, STATS_VARIABLES) for name, group in shards.items()}
    paths = shard_inputs(shards)
    line = provenance_line(provenance_attrs("manipulation_check", cfg,
                                            inputs={**paths, "scenes": inputs["scenes"]}))
    prototypes = prototypes_source_markdown(open_cube(inputs["scenes"]).attrs)
    table = manipulation_check(cubes)
    table.to_csv(outputs["csv"], index=False, float_format="%.4f")
    with open(outputs["md"], "w") as fh:
        fh.write(with_prototypes(manipulation_markdown(table, line), prototypes))
    confusion_figure(confusion_matrices(cubes), outputs["figure"], provenance=line)
    log.info("manipulation check: %s", table[table.emotion == "all"].to_dict("records"))
    log.info("%s", prototypes)
