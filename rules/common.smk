# Config validation, paths and helpers shared by every rule.
from snakemake.exceptions import WorkflowError

from facesym.classifiers.zoo import is_user_supplied, load_zoo, user_weights_path, zoo_entry
from facesym.config import ConfigError, validate_study_config
from facesym.stages.params import stage_config

# Exactly what `facesym check-config` validates: schema, defaults, FACS tables, classifiers.
try:
    _study = validate_study_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_study)

# the shipped zoo plus the study's own `zoo:` entries
ZOO = load_zoo(extra=config.get("zoo"))

STUDY = config["study"]
RESULTS = f"results/{STUDY}"
CACHE = config["resources"]["cache_dir"]
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
