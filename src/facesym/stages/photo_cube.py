"""Photo-cube stage: a manifest of labelled photos → prob[image, classifier, label], composites,
asymmetry scores (a Zarr cube) and the table of manifest rows that could not be used."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from facesym.classifiers.zoo import load_classifier
from facesym.cubes import write_dataset, write_text_atomic
from facesym.photos.detect import PREDICTOR_FILE, PREDICTOR_RESOURCE, FaceFinder
from facesym.photos.manifest import photo_cube, read_manifest
from facesym.provenance import file_digest, provenance_attrs
from facesym.resources import get_resource

MTCNN_RESOURCE = "facenet_pytorch"


def images_digest(paths: list[str]) -> str:
    """SHA-256 over the SHA-256 of each file, in order: changes when any photo changes."""
    h = hashlib.sha256()
    for p in paths:
        h.update(file_digest(p).encode())
    return h.hexdigest()


def detector_weights(detectors: list[str]) -> dict[str, str]:
    """{"<resource>/<member>": sha256} of the pinned detector and landmark files used."""
    out = {f"{PREDICTOR_RESOURCE}/{PREDICTOR_FILE}":
           get_resource(PREDICTOR_RESOURCE).files[PREDICTOR_FILE]}
    if "mtcnn" in detectors:
        out.update({f"{MTCNN_RESOURCE}/{m}": d
                    for m, d in get_resource(MTCNN_RESOURCE).files.items()})
    return out


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Detect, score, composite and classify every photo of ``inputs["manifest"]`` with
    ``cfg["classifiers"]``; skipped rows go to ``outputs["bad_rows"]`` with their reasons."""
    pcfg, cache = cfg["photos"], cfg["resources"]["cache_dir"]
    entries = cfg["zoo_entries"]
    names = list(cfg["classifiers"])
    clfs = [load_classifier(name, {name: entries[name]}, cache_dir=cache) for name in names]
    detectors = list(pcfg["detectors"])
    finder = FaceFinder(detectors=detectors, cache_dir=cache)
    manifest = inputs["manifest"]
    cube, bad = photo_cube(manifest, clfs, finder=finder,
                           strengths=list(pcfg["composite_strengths"]),
                           feather_frac=pcfg["feather_frac"])
    for rec in bad.to_dict("records"):
        log.warning("manifest line %d (%s): %s: %s", rec["line"], rec["image"], rec["status"],
                    rec["reason"])
    if cube.sizes["image"] == 0:
        raise ValueError(f"config key photos.manifest: no usable photo in {manifest}: all "
                         f"{len(bad)} row(s) were skipped (reasons logged above)")
    rows, _ = read_manifest(manifest)
    used = rows.set_index("line").loc[cube["line"].values, "path"].tolist()
    weights = {name: clf.weights_sha256 for name, clf in zip(names, clfs, strict=True)}
    attrs = provenance_attrs(
        "photo_cube", cfg, inputs={"manifest": manifest},
        resources={**{k: v for w in weights.values() for k, v in w.items()},
                   **detector_weights(detectors)},
        extra={"classifier_weights": weights, "images_digest": images_digest(used),
               "n_images": int(cube.sizes["image"]), "n_bad_rows": len(bad),
               "bad_rows_by_status": bad["status"].value_counts().sort_index().to_dict()},
    )
    write_text_atomic(outputs["bad_rows"], bad.to_csv(index=False))
    write_dataset(cube, outputs["cube"], attrs)
    log.info("photo cube: %d photos of %d subjects, %d classifier(s); %d row(s) skipped",
             cube.sizes["image"], len(set(cube["subject"].values)), len(clfs), len(bad))
