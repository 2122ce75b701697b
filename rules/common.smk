# Config validation, paths and helpers shared by every rule.
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from facesym.classifiers.zoo import (
    check_user_weights,
    is_user_supplied,
    load_zoo,
    user_weights_path,
    zoo_entry,
)
from facesym.config import ConfigError, load_schema, stage_config, validate_config

BASEDIR = Path(workflow.basedir)

try:
    _validated = validate_config(config, load_schema(BASEDIR / "config" / "schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

ZOO = load_zoo(BASEDIR / "config" / "zoo.yaml", BASEDIR / "config" / "zoo_byo_templates.yaml")
for _name in config["classifiers"]:
    if _name not in ZOO:
        raise WorkflowError(
            f"config key classifiers: unknown classifier {_name!r} "
            f"(allowed values: {', '.join(sorted(ZOO))}; see config/zoo.yaml)"
        )
    if is_user_supplied(ZOO[_name]):
        try:
            check_user_weights(_name, ZOO[_name])
        except (FileNotFoundError, ValueError) as err:
            raise WorkflowError(str(err)) from None

STUDY = config["study"]
RESULTS = f"results/{STUDY}"
CACHE = config["resources"]["cache_dir"]
MIRROR = config["resources"]["mirror"] or os.environ.get("FACESYM_MIRROR", "")
CLASSIFIERS = list(config["classifiers"])
STATS_OUTPUTS = [
    f"{RESULTS}/stats/tests.zarr",
    f"{RESULTS}/stats/summary.csv",
    f"{RESULTS}/stats/summary.md",
    f"{RESULTS}/stats/dose_response.png",
]


def resource_stamp(rid):
    """The stamp file the fetch rule leaves once resource ``rid`` is verified."""
    return f"{CACHE}/{rid}.verified.json"


def classifier_weights(wildcards):
    """A classifier's weights: its resource's stamp, or the file the user supplied."""
    entry = zoo_entry(wildcards.classifier, ZOO)
    if is_user_supplied(entry):
        return str(user_weights_path(entry))
    return resource_stamp(entry["weights"]["resource"])


def face_model_inputs(wildcards):
    """ICT comes from its verified resource; FLAME is the user's own file (and landmarks)."""
    fm = config["face_model"]
    if fm["name"] == "flame":
        files = {"flame": fm["flame"]["path"]}
        if isinstance(fm["flame"]["landmarks"], str):
            files["landmarks"] = fm["flame"]["landmarks"]
        return files
    return {"stamp": resource_stamp("ict_facekit")}
