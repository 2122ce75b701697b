"""Classify stage: one classifier over one shard's images → prob[face, side, strength, label].

With ``classify.flip`` (``laterality``: the images the laterality reads; ``all``: every one)
images are also scored mirrored left-right, their face boxes mirrored with them
(:func:`facesym.image_flip.flip_images`), into ``<variable>_flipped`` variables of the same
dims beside ``prob``, ``prob_native`` and ``logit`` (or ``raw_output``), NaN where not scored:
every reader of ``prob`` is unchanged, and the statistics find the image-flip control by
:data:`facesym.image_flip.PROB_FLIPPED`. Identical images of one face (the untouched renders
of every side) are scored once.
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
from facesym.distinct import distinct_rows
from facesym.image_flip import FLIPPED_SUFFIX, flip_images
from facesym.provenance import provenance_attrs
from facesym.stages.shards import check_faces
from facesym.vocab import LEFT, RIGHT

#: ``classify.flip`` modes: which images are also scored mirrored left-right
FLIP_MODES = ("none", "laterality", "all")


def flip_mode(flip: str | bool) -> str:
    """``classify.flip`` as one of :data:`FLIP_MODES` (true = all, false = none).

    >>> flip_mode(True), flip_mode(False), flip_mode("laterality")
    ('all', 'none', 'laterality')
    """
    if isinstance(flip, bool):
        return "all" if flip else "none"
    if flip not in FLIP_MODES:
        raise ValueError(f"config key classify.flip: {flip!r} is not allowed (allowed values: "
                         f"{', '.join(FLIP_MODES)}, true, false)")
    return flip


def flip_wanted(sides: list[str], strengths: list[float], mode: str) -> np.ndarray:
    """Which (side, strength) images are scored mirrored too: every one (``all``), none, or
    (``laterality``) just what the laterality's flip control reads: the untouched images
    (smallest strength) and the left and right interventions at the largest strength.

    >>> flip_wanted(["left", "right", "control"], [0.0, 0.5, 1.0], "laterality").astype(int)
    array([[1, 0, 1],
           [1, 0, 1],
           [1, 0, 0]])
    """
    want = np.full((len(sides), len(strengths)), mode == "all")
    if mode == "laterality":
        a = np.asarray(strengths, dtype=float)
        want[:, int(np.argmin(a))] = True
        for i, side in enumerate(sides):
            if side in (LEFT, RIGHT):
                want[i, int(np.argmax(a))] = True
    return want


def classify_renders(clf: Classifier, renders: xr.Dataset, batch_size: int = 64,
                     device: str = "cpu", progress: bool = True, flip: str | bool = False
                     ) -> xr.Dataset:
    """Run ``clf`` on every image of the render cube, streaming it face chunk by face chunk;
    with ``flip`` (``all``/True, or ``laterality``: see :func:`flip_wanted`) on those images
    mirrored left-right too (``*_flipped`` variables, NaN where not scored).

    Identical images of a face (the untouched renders of every side) are scored once and
    their scores copied (:func:`facesym.distinct.distinct_rows`): the same numbers for the
    same pixels."""
    nf, ns, na = (renders.sizes[d] for d in ("face", "side", "strength"))
    mode = flip_mode(flip)
    want = flip_wanted([str(s) for s in renders["side"].values],
                       [float(a) for a in renders["strength"].values], mode).ravel()
    per_face = ns * na
    # read a few batches' worth of faces per Zarr read; predict() batches them
    faces_per_step = max(1, batch_size // per_face) * 4
    views = (False, True) if mode != "none" else (False,)
    nl = len(clf.labels)
    raw = {v: np.full((nf, per_face, nl), np.nan, dtype=np.float32) for v in views}
    probs = {v: np.full_like(raw[v], np.nan) for v in views}
    scored = 0
    bar = tqdm(total=nf, desc=f"classify {clf.name}", unit="face", disable=not progress)
    for start in range(0, nf, faces_per_step):
        sl = slice(start, min(nf, start + faces_per_step))
        images = renders["image"].isel(face=sl).values
        boxes = renders["face_box"].isel(face=sl).values
        n = images.shape[0]
        images = images.reshape(n, per_face, *images.shape[3:])
        boxes = boxes.reshape(n, per_face, 4)
        batch_x, batch_b, scatter = [], [], []  # scatter: (view, face, image slots, row)
        for f in range(n):
            first, which = distinct_rows(images[f], boxes[f])
            for view in views:
                for u, i in enumerate(first):
                    slots = np.flatnonzero(which == u)
                    if view:
                        slots = slots[want[slots]]
                        if not len(slots):
                            continue
                    scatter.append((view, start + f, slots, len(batch_x)))
                    batch_x.append(images[f, i])
                    batch_b.append(boxes[f, i])
        x, b = np.stack(batch_x), np.stack(batch_b)
        rows = np.array([view for view, *_ in scatter])
        if rows.any():
            x[rows], b[rows] = flip_images(x[rows], b[rows])
        r, p = clf.predict(x, b, batch_size=batch_size, device=device)
        for view, face, slots, row in scatter:
            raw[view][face, slots] = r[row]
            probs[view][face, slots] = p[row]
        scored += len(x)
        bar.update(n)
    bar.close()
    logging.getLogger("facesym").info(
        "%s: %d distinct images scored for %d cube entries (flip: %s)", clf.name, scored,
        nf * per_face * len(views), mode)
    raw = {v: a.reshape(nf, ns, na, nl) for v, a in raw.items()}
    probs = {v: a.reshape(nf, ns, na, nl) for v, a in probs.items()}
    coords = {"face": renders["face"].values, "side": renders["side"].values,
              "strength": renders["strength"].values}
    dims, native = ("face", "side", "strength", "label"), ("face", "side", "strength",
                                                           "native_label")
    raw_name = "logit" if clf.has_logits else "raw_output"
    variables: dict[str, tuple] = {}
    for view in views:
        suffix, seen = (FLIPPED_SUFFIX, " of the image mirrored left-right (face box "
                        "mirrored with it)") if view else ("", "")
        if view and mode == "laterality":
            seen += ("; scored for the untouched images and the largest-strength left and "
                     "right images only (classify.flip: laterality), NaN elsewhere")
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
    flip = flip_mode(ccfg["flip"])
    cube = classify_renders(clf, renders, batch_size=ccfg["batch_size"], device=ccfg["device"],
                            flip=flip)
    attrs = provenance_attrs(
        "classify", cfg, inputs={"renders": inputs["renders"]}, resources=clf.weights_sha256,
        extra={**classify_attrs(clf, entry, ccfg["device"]), "faces": list(cfg["faces"]),
               "flip_control": flip},
    )
    write_dataset(cube, outputs["cube"], attrs)
    log.info("classified %d images with %s%s", cube["prob"].size // cube.sizes["label"], name,
             f", flip control: {flip}" if flip != "none" else "")
