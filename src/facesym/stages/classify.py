"""Classify stage: one classifier over one shard's images → prob[face, side, strength, label]."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from facesym.classifiers.base import CANONICAL_LABELS, Classifier
from facesym.classifiers.zoo import load_classifier
from facesym.cubes import open_cube, write_dataset
from facesym.provenance import provenance_attrs
from facesym.stages.shards import check_faces


def classify_renders(clf: Classifier, renders: xr.Dataset, batch_size: int = 64,
                     device: str = "cpu", progress: bool = True) -> xr.Dataset:
    """Run ``clf`` on every image of the render cube, streaming it face chunk by face chunk."""
    nf, ns, na = (renders.sizes[d] for d in ("face", "side", "strength"))
    per_face = ns * na
    # read a few batches' worth of faces per Zarr read; predict() batches them
    faces_per_step = max(1, batch_size // per_face) * 4
    raw = np.empty((nf, ns, na, len(clf.labels)), dtype=np.float32)
    probs = np.empty_like(raw)
    bar = tqdm(total=nf, desc=f"classify {clf.name}", unit="face", disable=not progress)
    for start in range(0, nf, faces_per_step):
        sl = slice(start, min(nf, start + faces_per_step))
        images = renders["image"].isel(face=sl).values
        boxes = renders["face_box"].isel(face=sl).values
        n = images.shape[0]
        r, p = clf.predict(images.reshape(n * per_face, *images.shape[3:]),
                           boxes.reshape(n * per_face, 4), batch_size=batch_size, device=device)
        raw[sl] = r.reshape(n, ns, na, -1)
        probs[sl] = p.reshape(n, ns, na, -1)
        bar.update(n)
    bar.close()
    coords = {"face": renders["face"].values, "side": renders["side"].values,
              "strength": renders["strength"].values}
    canon = clf.to_canonical(probs)
    ds = xr.Dataset(
        {
            "prob": (("face", "side", "strength", "label"), canon,
                     {"description": "class probabilities on the canonical label set"}),
            "prob_native": (("face", "side", "strength", "native_label"), probs,
                            {"description": "class probabilities in the model's own order"}),
            "emotion": ("face", renders["emotion"].values),
        },
        coords={**coords, "label": list(CANONICAL_LABELS), "native_label": list(clf.labels)},
    )
    if clf.has_logits:
        ds["logit"] = (("face", "side", "strength", "native_label"), raw,
                       {"description": "pre-softmax outputs in the model's own order"})
    else:
        ds["raw_output"] = (("face", "side", "strength", "native_label"), raw)
    return ds


def classify_attrs(clf: Classifier, entry: Mapping, device: str) -> dict:
    """Classifier-specific provenance: zoo entry, weights and their checksums, device."""
    return {
        "classifier": clf.name,
        "zoo_entry": entry,
        "weights_sha256": clf.weights_sha256,
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "engine": clf.engine_info,
    }


def run(inputs: Mapping, outputs: Mapping, cfg: Mapping, log: logging.Logger) -> None:
    """Classify every image of the render shard ``inputs["renders"]`` (faces ``cfg["faces"]``)
    with ``cfg["classifier"]``."""
    ccfg, name, entry = cfg["classify"], cfg["classifier"], cfg["zoo_entry"]
    if ccfg["threads"]:  # 0: the job's threads (set by the runner)
        torch.set_num_threads(ccfg["threads"])
    clf = load_classifier(name, {name: entry}, cache_dir=cfg["resources"]["cache_dir"])
    renders = open_cube(inputs["renders"])
    check_faces(renders, cfg["faces"], inputs["renders"])
    cube = classify_renders(clf, renders, batch_size=ccfg["batch_size"], device=ccfg["device"])
    attrs = provenance_attrs(
        "classify", cfg, inputs={"renders": inputs["renders"]}, resources=clf.weights_sha256,
        extra={**classify_attrs(clf, entry, ccfg["device"]), "faces": list(cfg["faces"])},
    )
    write_dataset(cube, outputs["cube"], attrs)
    log.info("classified %d images with %s", cube["prob"].size // cube.sizes["label"], name)
