# Config validation, paths and helpers shared by every rule.
from snakemake.exceptions import WorkflowError

from facesym.classifiers.zoo import is_user_supplied, load_zoo, user_weights_path, zoo_entry
from facesym.config import ConfigError, n_faces, validate_study_config
from facesym.stages.params import stage_config
from facesym.stages.shards import shard_count, shard_name, shard_range, shards_of_faces

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

# Faces in shards: scenes, render and classify run one job per shard of FACES_PER_SHARD faces.
N_FACES = n_faces(config)
FACES_PER_SHARD = config["shards"]["faces_per_shard"]
SHARDS = [shard_name(k) for k in range(shard_count(N_FACES, FACES_PER_SHARD))]
STATS_OUTPUTS = [
    f"{RESULTS}/stats/tests.zarr",
    f"{RESULTS}/stats/summary.csv",
    f"{RESULTS}/stats/summary.md",
    f"{RESULTS}/stats/laterality.csv",
    f"{RESULTS}/stats/dose_response.png",
]


def resource_stamp(rid):
    """The stamp file the fetch rule leaves once resource ``rid`` is verified."""
    return f"{CACHE}/{rid}.verified.json"


def classify_priority(wildcards):
    """Larger inputs first (input side / 100 px, plus 1): the slowest classify jobs start early
    and the last one to finish is a short one (facex 200 px, face_api 112 px, the rest <= 64)."""
    return 1 + int(zoo_entry(wildcards.classifier, ZOO)["input"]["size"]) // 100


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


def prototypes_input(wildcards=None):
    """The prototypes file the study names (expressions.prototypes_file), as a named input."""
    path = config["expressions"]["prototypes_file"]
    return {"prototypes": path} if path else {}


def shard_faces(wildcards):
    """[start, stop) of the faces of the job's shard (``{shard}`` is ``shard-00000``)."""
    return shard_range(int(wildcards.shard.removeprefix("shard-")), N_FACES, FACES_PER_SHARD)


def classify_shards(wildcards=None):
    """Every classifier's shard stores, classifier-major (the order the stats stages split)."""
    return expand(f"{RESULTS}/classify/{{classifier}}/{{shard}}.zarr",
                  classifier=CLASSIFIERS, shard=SHARDS)


def contact_sheet_scenes(wildcards):
    """Only the scene shards holding the contact sheet's faces."""
    shards = shards_of_faces(config["contact_sheet"]["faces"], FACES_PER_SHARD)
    return [f"{RESULTS}/scenes/{shard_name(k)}.zarr" for k in shards]


# The real-photo branch (rules/photos.smk), on when photos.manifest is set.
from types import SimpleNamespace

from facesym.photos.detect import PREDICTOR_RESOURCE
from facesym.photos.manifest import read_manifest

PHOTOS = f"{RESULTS}/photos"
PHOTO_MANIFEST = config["photos"]["manifest"]
PHOTO_CLASSIFIERS = list(config["photos"]["classifiers"] or CLASSIFIERS)
PHOTO_OUTPUTS = (
    [f"{PHOTOS}/{name}.csv" for name in ("groups", "gcm", "gcm_correlations", "composites")]
    + [f"{PHOTOS}/summary.md"]
    if PHOTO_MANIFEST is not None
    else []
)


def photo_manifest(wildcards):
    """The manifest (an input: editing it re-runs the branch)."""
    if PHOTO_MANIFEST is None:
        raise WorkflowError("config key photos.manifest: not set (null); set it to a CSV of "
                            "photos to run the photo branch")
    return PHOTO_MANIFEST


def photo_images(wildcards):
    """The manifest's photos that exist: replacing one re-runs the branch (missing ones are
    bad rows, listed by the stage, not missing inputs)."""
    return read_manifest(photo_manifest(wildcards))[0]["path"].tolist()


def photo_detector_stamps(wildcards):
    """The verified landmark predictor, and MTCNN's weights when it is a detector."""
    stamps = [resource_stamp(PREDICTOR_RESOURCE)]
    if "mtcnn" in config["photos"]["detectors"]:
        stamps.append(resource_stamp("facenet_pytorch"))
    return stamps


def photo_classifier_weights(wildcards):
    """Each photo classifier's weights: its resource's stamp, or the file the user supplied."""
    return [classifier_weights(SimpleNamespace(classifier=name)) for name in PHOTO_CLASSIFIERS]
