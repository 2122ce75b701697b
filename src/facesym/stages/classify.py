"""Classify stage: one classifier over one shard's images → prob[face, side, strength, label].

With ``classify.flip`` every image is also scored mirrored left-right, its face box mirrored
with it (:func:`facesym.laterality.flip_images`), into ``<variable>_flipped`` variables of the
same dims beside ``prob``, ``prob_native`` and ``logit`` (or ``raw_output``): every reader of
``prob`` is unchanged, and the statistics find the image-flip control by
:data:`facesym.laterality.PROB_FLIPPED`.
"""

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
from facesym.laterality import FLIPPED_SUFFIX, flip_images
from facesym.provenance import provenance_attrs
from facesym.stages.shards import check_faces


def classify_renders(clf: Classifier, renders: xr.Dataset, batch_size: int = 64,
                     device: str = "cpu", progress: bool = True, flip: bool = False
                     ) -> xr.Dataset:
    """Run ``clf`` on every image of the render cube, streaming it face chunk by face chunk;
    with ``flip``, on every image mirrored left-right too (``*_flipped`` variables)."""
    nf, ns, na = (renders.sizes[d] for d in ("face", "side", "strength"))
    per_face = ns * na
    # read a few batches' worth of faces per Zarr read; predict() batches them
    faces_per_step = max(1, batch_size // per_face) * 4
    views = (False, True) if flip else (False,)
    raw = {v: np.empty((nf, ns, na, len(clf.labels)), dtype=np.float32) for v in views}
    probs = {v: np.empty_like(raw[v]) for v in views}
    bar = tqdm(total=nf * len(views), desc=f"classify {clf.name}", unit="face",
               disable=not progress)
    for start in range(0, nf, faces_per_step):
        sl = slice(start, min(nf, start + faces_per_step))
        images = renders["image"].isel(face=sl).values
        boxes = renders["face_box"].isel(face=sl).values
        n = images.shape[0]
        for view in views:
            x, b = flip_images(images, boxes) if view else (images, boxes)
            r, p = clf.predict(x.reshape(n * per_face, *x.shape[3:]),
                               b.reshape(n * per_face, 4), batch_size=batch_size,
                               device=device)
            raw[view][sl] = r.reshape(n, ns, na, -1)
            probs[view][sl] = p.reshape(n, ns, na, -1)
            bar.update(n)
    bar.close()
    coords = {"face": renders["face"].values, "side": renders["side"].values,
              "strength": renders["strength"].values}
    dims, native = ("face", "side", "strength", "label"), ("face", "side", "strength",
                                                           "native_label")
    raw_name = "logit" if clf.has_logits else "raw_output"
    variables: dict[str, tuple] = {}
    for view in views:
        suffix, seen = (FLIPPED_SUFFIX, " of the image mirrored left-right (face box "
                        "mirrored with it)") if view else ("", "")
        variables["prob" + suffix] = (dims, clf.to_canonical(probs[view]), {
            "description": f"class probabilities on the canonical label set{seen}"})
        variables["prob_native" + suffix] = (native, probs[view], {
            "description": f"class probabilities in the model's own order{seen}"})
        variables[raw_name + suffix] = (native, raw[view], {
            "description": (f"pre-softmax outputs in the model's own order{seen}"
                            if clf.has_logits else f"raw outputs in the model's own order{seen}")})
    ds = xr.Dataset(
        {**variables, "emotion": ("face", renders["emotion"].values)},
        coords={**coords, "label": list(CANONICAL_LABELS), "native_label": list(clf.labels)},
    )
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
    flip = bool(ccfg["flip"])
    cube = classify_renders(clf, renders, batch_size=ccfg["batch_size"], device=ccfg["device"],
                            flip=flip)
    attrs = provenance_attrs(
        "classify", cfg, inputs={"renders": inputs["renders"]}, resources=clf.weights_sha256,
        extra={**classify_attrs(clf, entry, ccfg["device"]), "faces": list(cfg["faces"]),
               "flip_control": flip},
    )
    write_dataset(cube, outputs["cube"], attrs)
    log.info("classified %d images with %s%s", cube["prob"].size // cube.sizes["label"], name,
             ", each also mirrored left-right (flip control)" if flip else "")
