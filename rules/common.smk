# Config validation, paths and helpers shared by every rule.
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError

from facesym.classifiers.zoo import load_zoo, zoo_entry
from facesym.config import ConfigError, load_schema, stage_config, validate_config

BASEDIR = Path(workflow.basedir)

try:
    _validated = validate_config(config, load_schema(BASEDIR / "config" / "schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

ZOO = load_zoo(BASEDIR / "config" / "zoo.yaml")
for _name in config["classifiers"]:
    if _name not in ZOO:
        raise WorkflowError(
            f"config key classifiers: unknown classifier {_name!r} "
            f"(allowed values: {', '.join(sorted(ZOO))}; see config/zoo.yaml)"
        )

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


def classifier_stamp(wildcards):
    """Stamp of the resource holding a classifier's weights."""
    return resource_stamp(zoo_entry(wildcards.classifier, ZOO)["weights"]["resource"])


def face_model_inputs(wildcards):
    """ICT comes from its verified resource; FLAME is the user's own file (and landmarks)."""
    fm = config["face_model"]
    if fm["name"] == "flame":
        files = {"flame": fm["flame"]["path"]}
        if isinstance(fm["flame"]["landmarks"], str):
            files["landmarks"] = fm["flame"]["landmarks"]
        return files
    return {"stamp": resource_stamp("ict_facekit")}
