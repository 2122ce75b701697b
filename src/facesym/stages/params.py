"""What each rule passes to its stage as ``params.cfg``: the stage's true dependency map.

Snakemake re-runs a job when its params change, so a stage must read exactly these keys: a key
it reads but is not given would leave a stale output; a key it is given but never reads would
re-run it for nothing. ``tests/test_stages.py`` checks both for every stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from facesym.config import select

# Config keys (dotted) each stage reads, selected whole from the validated study config.
STAGE_KEYS: dict[str, tuple[str, ...]] = {
    "fetch_resource": ("resources.cache_dir", "resources.mirror"),
    "face_model": ("face_model",),
    "scenes": ("seed", "scenes", "face_model.identity_modes"),
    "render": ("intervention", "render"),
    "classify": ("classify", "resources.cache_dir"),
    "stats": ("seed", "stats", "classifiers"),
    "manipulation_check": ("classifiers",),
    "contact_sheet": ("intervention", "render.appearance", "render.backend", "render.device",
                      "render.size", "render.fov_deg", "render.distance_cm", "scenes.emotions",
                      "contact_sheet.faces"),
    "photo_cube": ("photos.detectors", "photos.composite_strengths", "photos.feather_frac",
                   "resources.cache_dir"),
    "photo_stats": ("seed", "photos.reference_group", "photos.n_permutations",
                    "photos.n_resamples", "photos.use_grade"),
}

# Values only the rule knows (wildcards and what it derives from them), passed at the top level.
# ``faces`` is a shard's [start, stop) of global face indices (see facesym.stages.shards).
RULE_VALUES: dict[str, tuple[str, ...]] = {
    "fetch_resource": ("rid",),
    "scenes": ("faces",),
    "render": ("faces",),
    "classify": ("classifier", "zoo_entry", "faces"),
    # the photo branch's classifiers (photos.classifiers, else the study's), in order
    "photo_cube": ("classifiers", "zoo_entries"),
}

# Study-size keys a shard job must not see: adding faces then re-runs only new (or grown) shards.
SHARD_INDEPENDENT = {"scenes": ("faces_per_emotion",)}

# Stages that turn emotions into shape weights: they get the FACS tables the study uses.
USES_EXPRESSIONS = ("scenes", "contact_sheet")
# Stages that read expressions.prototypes_file (an input of their rule) and record its source.
READS_PROTOTYPES_FILE = ("scenes",)

# Zoo entry fields no loader reads (documentation): editing them must not re-classify.
ZOO_DOC_FIELDS = ("description",)


def sorted_keys(node: Any) -> Any:
    """``node`` with every mapping's keys in sorted order, so that params compare equal when
    only the order of keys in the schema or config files changed (Snakemake's params trigger
    is order-sensitive)."""
    if isinstance(node, Mapping):
        return {k: sorted_keys(node[k]) for k in sorted(node)}
    return node


def expression_subset(config: Mapping, prototypes_file: bool = False) -> dict:
    """The FACS tables the study's emotions use: their prototypes and those prototypes' AUs;
    with ``prototypes_file``, also ``expressions.prototypes_file`` and
    ``prototypes_sha256`` when a file is named (absent otherwise, so that studies without one
    keep their params).

    Editing a prototype or action unit no studied emotion uses then re-runs nothing.
    """
    tables = config["expressions"]
    prototypes = {e: dict(tables["prototypes"][e]) for e in config["scenes"]["emotions"]}
    used = sorted({au for proto in prototypes.values() for au in proto})
    out = {"action_units": {au: dict(tables["action_units"][au]) for au in used},
           "prototypes": prototypes}
    if prototypes_file and tables.get("prototypes_file"):
        out["prototypes_file"] = tables["prototypes_file"]
        out["prototypes_sha256"] = tables.get("prototypes_sha256")
    return out


def stage_config(config: Mapping, stage: str, **rule_values: Any) -> dict:
    """The ``params.cfg`` of the rule running ``stage``: its config subset plus rule values.

    ``rule_values`` must be exactly the names in ``RULE_VALUES[stage]`` (e.g. the classifier
    and its zoo entry for ``classify``).
    """
    if stage not in STAGE_KEYS:
        raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_KEYS)}")
    wanted = set(RULE_VALUES.get(stage, ()))
    if set(rule_values) != wanted:
        raise TypeError(f"stage {stage} takes rule values {sorted(wanted)}, "
                        f"got {sorted(rule_values)}")
    out = select(config, STAGE_KEYS[stage])
    for section, keys in SHARD_INDEPENDENT.items():
        if section in out and "faces" in wanted:
            for key in keys:
                out[section].pop(key, None)
    if "faces" in rule_values:
        rule_values["faces"] = [int(f) for f in rule_values["faces"]]
    if stage == "face_model":
        fm = out["face_model"]
        if fm["name"] == "flame":
            # the pickle (and a landmark file) are the rule's inputs, tracked as such
            fm["flame"].pop("path", None)
            if isinstance(fm["flame"].get("landmarks"), str):
                fm["flame"].pop("landmarks")
        else:
            fm.pop("flame", None)  # FLAME settings do not affect an ICT model
            out.update(select(config, ("resources.cache_dir",)))
    if "zoo_entry" in rule_values:
        rule_values["zoo_entry"] = {k: v for k, v in rule_values["zoo_entry"].items()
                                    if k not in ZOO_DOC_FIELDS}
    if "zoo_entries" in rule_values:
        rule_values["zoo_entries"] = {
            name: {k: v for k, v in entry.items() if k not in ZOO_DOC_FIELDS}
            for name, entry in rule_values["zoo_entries"].items()}
    out = sorted_keys({**out, **rule_values})
    if stage in USES_EXPRESSIONS:
        # in the tables' own order: AUs sharing a shape add up in that order (float sums)
        out["expressions"] = expression_subset(config, stage in READS_PROTOTYPES_FILE)
    return out
