"""``facesym score``: symmetry scores and classifier outputs for a folder of photos.

One CSV row per image and face. Images that cannot be read or hold no face get one row each
with ``status`` and ``reason`` filled and the measures empty: nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from facesym.classifiers.base import CANONICAL_LABELS, Classifier, preprocess, square_crop_boxes
from facesym.photos.asymmetry import asym_2d_photo, mirror_asymmetry
from facesym.photos.composite import SIDES, mirror_composite
from facesym.photos.detect import IMAGE_SUFFIXES, FaceFinder, ImageReadError, read_image
from facesym.photos.geometry import fit_midline

BASE_COLUMNS = ("image", "face", "n_faces", "status", "reason", "detector", "det_score",
                "box_x0", "box_y0", "box_x1", "box_y1", "asym_2d", "asym_mirror",
                "midline_angle_deg")


def list_images(photos_dir: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``photos_dir`` (by suffix), sorted."""
    root = Path(photos_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"photos folder not found: {root}")
    pattern = root.rglob("*") if recursive else root.glob("*")
    return sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def resolve_classifiers(classifiers: Iterable[str | Classifier] | None,
                        cache_dir: str | Path | None = None,
                        mirror: str | Path | None = None) -> list[Classifier]:
    """Classifier objects from names (the shipped zoo) or objects; None = every shipped one."""
    from facesym.classifiers.zoo import is_user_supplied, load_classifier, load_zoo

    zoo = load_zoo()
    if classifiers is None:
        classifiers = [n for n, e in zoo.items() if "weights" in e and not is_user_supplied(e)]
    return [c if isinstance(c, Classifier) else load_classifier(c, zoo, cache_dir, mirror)
            for c in classifiers]


@dataclass
class _Pending:
    """Classifier inputs of faces waiting for a batched forward pass."""

    rows: list[int]
    inputs: dict[str, list[torch.Tensor]]


def _face_patch(image: np.ndarray, box: np.ndarray, margin: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Edge-padded patch holding the square crop of ``box`` with ``margin``, and the box in it.

    Cropping from the patch samples exactly the pixels the crop of the full image would
    (``crop_resize`` clamps to the edge, as the padding does), at a fraction of the memory.
    """
    sq = square_crop_boxes(torch.as_tensor(box[None], dtype=torch.float64), margin)[0].numpy()
    x0, y0 = int(np.floor(sq[0])) - 2, int(np.floor(sq[1])) - 2
    x1, y1 = int(np.ceil(sq[2])) + 2, int(np.ceil(sq[3])) + 2
    h, w = image.shape[:2]
    sub = image[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    pad = ((max(0, -y0), max(0, y1 - h)), (max(0, -x0), max(0, x1 - w)), (0, 0))
    patch = np.pad(sub, pad, mode="edge") if any(sum(p) for p in pad) else sub
    return np.ascontiguousarray(patch), box - np.array([x0, y0, x0, y0], dtype=np.float64)


def _flush(pending: _Pending, classifiers: Sequence[Classifier], rows: list[dict]) -> None:
    if not pending.rows:
        return
    for clf in classifiers:
        x = torch.cat(pending.inputs[clf.name])
        if clf.channels_last:
            clf.module.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        _, probs = clf.forward(x)
        canon = clf.to_canonical(probs.float().numpy())
        for r, p in zip(pending.rows, canon, strict=True):
            for label, v in zip(CANONICAL_LABELS, p, strict=True):
                rows[r][f"{clf.name}_{label}"] = float(v)
            rows[r][f"{clf.name}_top"] = CANONICAL_LABELS[int(np.nanargmax(p))]
    pending.rows.clear()
    for v in pending.inputs.values():
        v.clear()


def score_folder(photos_dir: str | Path, out_csv: str | Path | None,
                 classifiers: Iterable[str | Classifier] | None = None,
                 composites_dir: str | Path | None = None, progress: bool = True,
                 finder: FaceFinder | None = None, strengths: Sequence[float] = (1.0,),
                 feather_frac: float = 0.05, batch_size: int = 32, recursive: bool = True,
                 cache_dir: str | Path | None = None, mirror: str | Path | None = None
                 ) -> pd.DataFrame:
    """Score every image under ``photos_dir``: one row per image and face, written to ``out_csv``.

    Columns: ``image`` (path relative to the folder), ``face`` (0.. widest first; −1 on a bad
    row), ``n_faces``, ``status`` (ok / unreadable / no_face), ``reason``, ``detector``,
    ``det_score``, the detector box, ``asym_2d`` (index against the neutral template, see
    :mod:`facesym.photos.asymmetry`), ``asym_mirror``, ``midline_angle_deg``, and per classifier
    ``<name>_<label>`` probabilities on the canonical labels plus ``<name>_top``. With
    ``composites_dir``, both mirror composites of each face (at each of ``strengths``, seam
    feather = ``feather_frac`` × outer-eye-corner distance) are written there as PNG, named
    ``<image>__face<k>__mirror_<side>[_a<strength>].png`` in the image's relative folder.
    """
    root = Path(photos_dir)
    paths = list_images(root, recursive)
    finder = finder or FaceFinder(cache_dir=cache_dir, mirror=mirror)
    clfs = resolve_classifiers(classifiers, cache_dir, mirror)
    for clf in clfs:
        clf.module.eval()
    max_margin = max([c.spec.margin for c in clfs], default=0.0)
    rows: list[dict] = []
    pending = _Pending(rows=[], inputs={c.name: [] for c in clfs})
    with torch.inference_mode():
        for path in tqdm(paths, desc="score", unit="image", disable=not progress):
            rel = path.relative_to(root).as_posix()
            try:
                image = read_image(path)
            except ImageReadError as err:
                rows.append({"image": rel, "face": -1, "n_faces": 0, "status": "unreadable",
                             "reason": str(err.__cause__ or err)})
                continue
            faces = finder.find(image)
            if not faces:
                rows.append({"image": rel, "face": -1, "n_faces": 0, "status": "no_face",
                             "reason": f"no face found by {', '.join(finder.detectors)}"})
                continue
            for k, face in enumerate(faces):
                lm = face.landmarks
                line = fit_midline(lm)
                rows.append({
                    "image": rel, "face": k, "n_faces": len(faces), "status": "ok",
                    "reason": "", "detector": face.detector, "det_score": face.score,
                    **dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"),
                               face.box.tolist(), strict=True)),
                    "asym_2d": float(asym_2d_photo(lm)),
                    "asym_mirror": float(mirror_asymmetry(lm)),
                    "midline_angle_deg": float(line.angle_deg()),
                })
                if clfs:
                    patch, box = _face_patch(image, face.landmark_box, max_margin)
                    for clf in clfs:
                        pending.inputs[clf.name].append(
                            preprocess(patch[None], box[None], clf.spec))
                    pending.rows.append(len(rows) - 1)
                if composites_dir is not None:
                    _write_composites(image, lm, Path(composites_dir) / rel, k, strengths,
                                      feather_frac)
            if len(pending.rows) >= batch_size:
                _flush(pending, clfs, rows)
        _flush(pending, clfs, rows)
    table = pd.DataFrame(rows)
    for col in BASE_COLUMNS:
        if col not in table:
            table[col] = pd.NA
    rest = [c for c in table.columns if c not in BASE_COLUMNS]
    table = table[list(BASE_COLUMNS) + rest]
    if out_csv is not None:
        Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_csv, index=False)
    return table


def _write_composites(image: np.ndarray, landmarks: np.ndarray, target: Path, face: int,
                      strengths: Sequence[float], feather_frac: float) -> None:
    """Write both mirror composites of one face at each strength as PNG next to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    line = fit_midline(landmarks)
    feather = feather_frac * float(np.linalg.norm(landmarks[45] - landmarks[36]))
    a = np.asarray(strengths, dtype=np.float64)
    stack = np.broadcast_to(image, (len(a), *image.shape))
    for side in SIDES:
        comps = mirror_composite(stack, line, side, a, feather)
        for s, comp in zip(a, comps, strict=True):
            tag = "" if len(a) == 1 and s == 1.0 else f"_a{s:g}"
            name = f"{target.name}__face{face}__mirror_{side}{tag}.png"
            Image.fromarray(comp).save(target.parent / name)
