"""The real-photo branch's input: a manifest of labelled photos, validated, scored, as a cube.

The manifest is a CSV with columns ``image`` (path relative to the manifest's folder; absolute
paths are taken as they are), ``subject``, ``group`` (e.g. healthy / palsy), ``label`` (the
expression shown: a canonical label or a synonym such as "happy") and optionally ``grade`` (a
clinical grade, a number). Every row that cannot be used is reported in a table with its
manifest line, a status code and a reason, and skipped: missing subject or group, unknown
label, non-numeric grade, duplicate image, missing file (:func:`read_manifest`), unreadable
image, no face, several faces (:func:`photo_cube`).

:func:`photo_cube` detects the face and its 68 landmarks (:class:`~facesym.photos.detect.
FaceFinder`), crops it as each classifier wants, builds both 2D mirror composites at each
strength (:mod:`facesym.photos.composite`) and runs every classifier on photo and composites.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm import tqdm

from facesym.classifiers.base import (
    CANONICAL_LABELS,
    LABEL_SYNONYMS,
    Classifier,
    preprocess,
)
from facesym.photos.asymmetry import asym_2d_photo, mirror_asymmetry
from facesym.photos.composite import mirror_composite
from facesym.photos.detect import FaceFinder, ImageReadError, read_image
from facesym.photos.geometry import fit_midline
from facesym.photos.score import _face_patch, resolve_classifiers
from facesym.vocab import CLASSIFIER, EMOTION, LABEL, MIRROR_SIDES, SIDE, STRENGTH

REQUIRED = ("image", "subject", "group", "label")
OPTIONAL = ("grade",)
#: columns of the bad-rows table
BAD_COLUMNS = ("line", "image", "subject", "status", "reason")
#: patch side / classifier crop side: room for the reflection of every crop pixel
_PATCH_FACTOR = 2.0


def _bad(line: int, image: str, subject: str, status: str, reason: str) -> dict:
    return {"line": line, "image": image, "subject": subject, "status": status,
            "reason": reason}


def canonical_label(label: str) -> str | None:
    """The canonical expression label of a manifest label (None when unknown).

    >>> canonical_label(" Happy "), canonical_label("neutral"), canonical_label("smirk")
    ('happiness', 'neutral', None)
    """
    return LABEL_SYNONYMS.get(str(label).strip().lower())


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable rows, bad rows) of a manifest CSV (module docstring).

    Usable rows keep the manifest's ``image`` text, gain ``path`` (resolved), ``line`` (the
    CSV line, header = 1), the canonical ``label`` and ``grade`` (float, NaN when empty or
    absent). A missing required column raises ValueError naming it.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, "a.png"), "wb").close()
    >>> with open(os.path.join(folder, "m.csv"), "w") as f:
    ...     _ = f.write("image,subject,group,label\\na.png,s1,healthy,happy\\n"
    ...                 "b.png,s2,palsy,happy\\na.png,,palsy,smirk\\n")
    >>> ok, bad = read_manifest(os.path.join(folder, "m.csv"))
    >>> ok[["image", "subject", "label"]].values.tolist()
    [['a.png', 's1', 'happiness']]
    >>> bad[["line", "status"]].values.tolist()
    [[3, 'missing_file'], [4, 'missing_subject']]
    """
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"manifest {path}: missing column(s) {missing}; required "
                         f"{list(REQUIRED)}, optional {list(OPTIONAL)}")
    root = path.parent
    good, bad, seen = [], [], {}
    for i, rec in enumerate(table.to_dict("records")):
        line = i + 2
        rec = {k: str(v).strip() for k, v in rec.items()}
        image, subject = rec["image"], rec["subject"]
        label = canonical_label(rec["label"])
        grade = rec.get("grade", "")
        problem = None
        if not image:
            problem = ("missing_image", "no image path")
        elif not subject:
            problem = ("missing_subject", "no subject")
        elif not rec["group"]:
            problem = ("missing_group", "no group")
        elif label is None:
            problem = ("unknown_label", f"label {rec['label']!r} is not one of "
                       f"{', '.join(CANONICAL_LABELS)} (or a synonym)")
        elif grade and not _is_number(grade):
            problem = ("bad_grade", f"grade {grade!r} is not a number")
        full = (root / image).resolve() if image else root
        if problem is None and not full.is_file():
            problem = ("missing_file", f"no file {image!r} relative to the manifest's folder")
        if problem is None and full in seen:
            problem = ("duplicate", f"same image as line {seen[full]}")
        if problem is not None:
            bad.append(_bad(line, image, subject, *problem))
            continue
        seen[full] = line
        good.append({"line": line, "image": image, "path": str(full), "subject": subject,
                     "group": rec["group"], "label": label,
                     "grade": float(grade) if grade else np.nan})
    cols = ["line", "image", "path", "subject", "group", "label", "grade"]
    ok = pd.DataFrame(good, columns=cols)
    ok.attrs["has_grade"] = "grade" in table.columns
    return ok, pd.DataFrame(bad, columns=list(BAD_COLUMNS))


def _is_number(text: str) -> bool:
    try:
        return bool(np.isfinite(float(text)))
    except ValueError:
        return False


def _forward(clfs: Sequence[Classifier], inputs: dict[str, list[torch.Tensor]]
             ) -> dict[str, np.ndarray]:
    """Canonical probabilities of every pending input, per classifier."""
    out = {}
    for clf in clfs:
        x = torch.cat(inputs[clf.name])
        if clf.channels_last:
            clf.module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        _, probs = clf.forward(x)
        out[clf.name] = clf.to_canonical(probs.float().numpy())
        inputs[clf.name].clear()
    return out


def photo_cube(manifest: str | Path, classifiers: Iterable[str | Classifier] | None = None,
               *, finder: FaceFinder | None = None, strengths: Sequence[float] = (0.5, 1.0),
               feather_frac: float = 0.05, batch_size: int = 16, progress: bool = False,
               cache_dir: str | Path | None = None, mirror: str | Path | None = None
               ) -> tuple[xr.Dataset, pd.DataFrame]:
    """(photo cube, bad rows) of a manifest.

    The cube: ``prob[image, classifier, label]`` (canonical labels) and
    ``composite_prob[image, classifier, side, strength, label]`` (sides mirror_left /
    mirror_right, each at ``strengths``; seam feather = ``feather_frac`` × outer-eye-corner
    distance), ``asym_2d``, ``asym_mirror``, ``midline_angle_deg``, ``det_score`` per image and
    ``landmarks_2d[image, point, xy]``; per-image coordinates ``subject``, ``group``,
    ``emotion`` (the manifest's label), ``grade`` (when the manifest has the column),
    ``detector`` and ``line``. The image coordinate is the manifest's image text.
    """
    rows, bad = read_manifest(manifest)
    bad_rows = bad.to_dict("records")
    finder = finder or FaceFinder(cache_dir=cache_dir, mirror=mirror)
    clfs = resolve_classifiers(classifiers, cache_dir, mirror)
    for clf in clfs:
        clf.module.eval()
    a = np.asarray(strengths, dtype=np.float64)
    n_in = 1 + len(MIRROR_SIDES) * len(a)
    margin = _PATCH_FACTOR * (1 + max([c.spec.margin for c in clfs], default=0.0)) - 1
    kept, measures, probs = [], [], {c.name: [] for c in clfs}
    pending: dict[str, list[torch.Tensor]] = {c.name: [] for c in clfs}
    with torch.inference_mode():
        for rec in tqdm(rows.to_dict("records"), desc="photos", unit="image",
                        disable=not progress):
            try:
                image = read_image(rec["path"])
            except ImageReadError as err:
                bad_rows.append(_bad(rec["line"], rec["image"], rec["subject"], "unreadable",
                                     str(err.__cause__ or err)))
                continue
            faces = finder.find(image)
            if len(faces) != 1:
                status = "no_face" if not faces else "several_faces"
                reason = (f"no face found by {', '.join(finder.detectors)}" if not faces else
                          f"{len(faces)} faces found; the manifest needs one face per image")
                bad_rows.append(_bad(rec["line"], rec["image"], rec["subject"], status,
                                     reason))
                continue
            face = faces[0]
            lm = face.landmarks
            patch, box = _face_patch(image, face.landmark_box, margin)
            local = lm - (face.landmark_box[:2] - box[:2])
            line = fit_midline(local)
            feather = feather_frac * float(np.linalg.norm(lm[45] - lm[36]))
            stack = np.repeat(patch[None], len(a), axis=0)
            batch = np.concatenate([patch[None], *(
                mirror_composite(stack, line, side.removeprefix("mirror_"), a, feather)
                for side in MIRROR_SIDES)])
            for clf in clfs:
                pending[clf.name].append(
                    preprocess(batch, np.broadcast_to(box, (n_in, 4)).copy(), clf.spec))
            kept.append(rec)
            measures.append({"asym_2d": float(asym_2d_photo(lm)),
                             "asym_mirror": float(mirror_asymmetry(lm)),
                             "midline_angle_deg": float(fit_midline(lm).angle_deg()),
                             "det_score": face.score, "detector": face.detector,
                             "landmarks_2d": lm})
            if clfs and len(pending[clfs[0].name]) >= batch_size:
                for name, p in _forward(clfs, pending).items():
                    probs[name].append(p)
        if clfs and pending[clfs[0].name]:
            for name, p in _forward(clfs, pending).items():
                probs[name].append(p)
    bad_table = pd.DataFrame(bad_rows, columns=list(BAD_COLUMNS)).sort_values(
        "line", kind="stable", ignore_index=True)
    return _assemble(kept, measures, probs, clfs, a, rows.attrs.get("has_grade", False),
                     manifest), bad_table


def _assemble(kept: list[dict], measures: list[dict], probs: dict[str, list[np.ndarray]],
              clfs: Sequence[Classifier], a: np.ndarray, has_grade: bool,
              manifest: str | Path) -> xr.Dataset:
    n, n_lab = len(kept), len(CANONICAL_LABELS)
    shape = (n, 1 + len(MIRROR_SIDES) * len(a), n_lab)
    per_clf = np.stack([np.concatenate(probs[c.name]).reshape(shape) if n else
                        np.zeros(shape, np.float32) for c in clfs], axis=1) if clfs else \
        np.zeros((n, 0, *shape[1:]), np.float32)
    comp = per_clf[:, :, 1:].reshape(n, len(clfs), len(MIRROR_SIDES), len(a), n_lab)
    coords = {
        "image": np.array([r["image"] for r in kept], dtype=str),
        CLASSIFIER: [c.name for c in clfs], LABEL: list(CANONICAL_LABELS),
        SIDE: list(MIRROR_SIDES), STRENGTH: a,
        "subject": ("image", np.array([r["subject"] for r in kept], dtype=str)),
        "group": ("image", np.array([r["group"] for r in kept], dtype=str)),
        EMOTION: ("image", np.array([r["label"] for r in kept], dtype=str)),
        "detector": ("image", np.array([m["detector"] for m in measures], dtype=str)),
        "line": ("image", np.array([r["line"] for r in kept], dtype=np.int64)),
    }
    if has_grade:
        coords["grade"] = ("image", np.array([r["grade"] for r in kept], dtype=np.float64))
    scalar = {k: ("image", np.array([m[k] for m in measures], dtype=np.float64))
              for k in ("asym_2d", "asym_mirror", "midline_angle_deg", "det_score")}
    lms = np.stack([m["landmarks_2d"] for m in measures]) if n else np.zeros((0, 68, 2))
    ds = xr.Dataset(
        {"prob": (("image", CLASSIFIER, LABEL), per_clf[:, :, 0].astype(np.float32)),
         "composite_prob": (("image", CLASSIFIER, SIDE, STRENGTH, LABEL),
                            comp.astype(np.float32)),
         "landmarks_2d": (("image", "point", "xy"), lms.astype(np.float32)),
         **scalar},
        coords=coords,
    )
    ds.attrs.update(manifest=Path(manifest).name, composite_strengths=a.tolist(),
                    classifier_engines={c.name: c.engine_info["engine"] for c in clfs})
    return ds
