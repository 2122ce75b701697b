"""``facesym score``: symmetry scores and classifier outputs for a folder of photos.

One CSV row per image and face. Images that cannot be read or hold no face get one row each
with ``status`` and ``reason`` filled and the measures empty: nothing is dropped silently.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm import tqdm

from facesym.classifiers.base import (
    CANONICAL_LABELS,
    Classifier,
    InputSpec,
    preprocess,
    square_crop_boxes,
)
from facesym.classifiers.original import original_preprocess
from facesym.photos.asymmetry import asym_2d_photo, mirror_asymmetry
from facesym.photos.composite import SIDES, mirror_composite
from facesym.photos.detect import (
    DETECTORS,
    IMAGE_SUFFIXES,
    FaceFinder,
    ImageReadError,
    read_image,
)
from facesym.photos.geometry import fit_midline

BASE_COLUMNS = ("image", "face", "n_faces", "status", "reason", "detector", "det_score",
                "det_upsample", "box_x0", "box_y0", "box_x1", "box_y1", "asym_2d", "asym_mirror",
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


@dataclass(frozen=True)
class _Options:
    """What the per-image work needs besides the face finder (picklable, for workers)."""

    specs: dict[str, InputSpec]  # classifier name -> its input spec
    # classifier name -> its original-preprocessing recipe (``preprocess: original``) or None
    recipes: dict[str, str | None]
    composites_dir: Path | None
    strengths: tuple[float, ...]
    feather_frac: float
    detectors_text: str


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


def _analyse(path: Path, rel: str, finder: FaceFinder, opts: _Options
             ) -> tuple[list[dict], list[dict[str, np.ndarray]]]:
    """One image: its rows without classifier columns and, per ``ok`` row, each classifier's
    network input (1, C, s, s) as numpy (identical specs share one computation)."""
    try:
        image = read_image(path)
    except ImageReadError as err:
        return [{"image": rel, "face": -1, "n_faces": 0, "status": "unreadable",
                 "reason": str(err.__cause__ or err)}], []
    faces = finder.find(image)
    if not faces:
        return [{"image": rel, "face": -1, "n_faces": 0, "status": "no_face",
                 "reason": f"no face found by {opts.detectors_text}"}], []
    rows: list[dict] = []
    inputs: list[dict[str, np.ndarray]] = []
    max_margin = max([sp.margin for sp in opts.specs.values()], default=0.0)
    for k, face in enumerate(faces):
        lm = face.landmarks
        line = fit_midline(lm)
        rows.append({
            "image": rel, "face": k, "n_faces": len(faces), "status": "ok",
            "reason": "", "detector": face.detector, "det_score": face.score,
            "det_upsample": face.upsample,
            **dict(zip(("box_x0", "box_y0", "box_x1", "box_y1"), face.box.tolist(),
                       strict=True)),
            "asym_2d": float(asym_2d_photo(lm)),
            "asym_mirror": float(mirror_asymmetry(lm)),
            "midline_angle_deg": float(line.angle_deg()),
        })
        if opts.specs:
            patch, box = _face_patch(image, face.landmark_box, max_margin)
            done: dict[tuple[InputSpec, str | None], np.ndarray] = {}
            per_clf: dict[str, np.ndarray] = {}
            for name, spec in opts.specs.items():
                key = (spec, opts.recipes.get(name))
                if key not in done:
                    done[key] = (preprocess(patch[None], box[None], spec) if key[1] is None
                                 else original_preprocess(patch[None], box[None], key[1],
                                                          spec.size, mean=spec.mean)).numpy()
                per_clf[name] = done[key]
            inputs.append(per_clf)
        if opts.composites_dir is not None:
            _write_composites(image, lm, opts.composites_dir / rel, k, opts.strengths,
                              opts.feather_frac)
    return rows, inputs


_WORKER: dict = {}


def _init_worker(settings: dict, opts: _Options) -> None:
    """Worker start: one thread for torch (the processes share the cores), its own finder."""
    torch.set_num_threads(1)
    _WORKER["finder"] = FaceFinder(**settings)
    _WORKER["opts"] = opts


def _work(job: tuple[Path, str]) -> tuple[list[dict], list[dict[str, np.ndarray]]]:
    return _analyse(job[0], job[1], _WORKER["finder"], _WORKER["opts"])


def _analysed(jobs: Sequence[tuple[Path, str]], finder: FaceFinder | None, settings: dict,
              opts: _Options, workers: int) -> Iterator[tuple[list[dict], list[dict]]]:
    """``_analyse`` of every job, in order: here, or in ``workers`` spawned processes.

    Workers are started with ``spawn`` (dlib and torch hold threads and native state that a
    fork would copy half-initialised); at most 4 images per worker are in flight, so results
    waiting for the classifiers never pile up in memory.
    """
    if workers <= 0:
        assert finder is not None
        for path, rel in jobs:
            yield _analyse(path, rel, finder, opts)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings, opts)) as pool:
        todo = iter(jobs)
        window = deque(pool.apply_async(_work, (job,))
                       for job in itertools.islice(todo, 4 * workers))
        while window:
            result = window.popleft().get()
            job = next(todo, None)
            if job is not None:
                window.append(pool.apply_async(_work, (job,)))
            yield result


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
                 cache_dir: str | Path | None = None, mirror: str | Path | None = None,
                 workers: int = 0, upsample_policy: str = "retry",
                 detectors: Sequence[str] = DETECTORS) -> pd.DataFrame:
    """Score every image under ``photos_dir``: one row per image and face, written to ``out_csv``.

    Columns: ``image`` (path relative to the folder), ``face`` (0.. widest first; −1 on a bad
    row), ``n_faces``, ``status`` (ok / unreadable / no_face), ``reason``, ``detector``,
    ``det_score``, ``det_upsample`` (dlib's upsampling in the pass that found the face), the
    detector box, ``asym_2d`` (index against the neutral template, see
    :mod:`facesym.photos.asymmetry`), ``asym_mirror``, ``midline_angle_deg``, and per classifier
    ``<name>_<label>`` probabilities on the canonical labels plus ``<name>_top``. With
    ``composites_dir``, both mirror composites of each face (at each of ``strengths``, seam
    feather = ``feather_frac`` × outer-eye-corner distance) are written there as PNG, named
    ``<image>__face<k>__mirror_<side>[_a<strength>].png`` in the image's relative folder.

    ``finder`` (default: ``detectors`` in order with ``upsample_policy``, see
    :class:`~facesym.photos.detect.FaceFinder`) finds faces and landmarks. ``workers`` > 0 runs
    reading, detection, landmarks, crops and composites in that many processes (each builds
    the finder from ``finder.settings``) while this one runs the classifiers in batches of
    ``batch_size`` faces; rows keep the order of the images either way, and the values are
    the same as with ``workers=0``.
    """
    root = Path(photos_dir)
    paths = list_images(root, recursive)
    if finder is not None:
        settings = dict(finder.settings)
    else:
        settings = {"detectors": tuple(detectors), "cache_dir": cache_dir, "mirror": mirror,
                    "upsample_policy": upsample_policy}
        if workers <= 0:
            finder = FaceFinder(**settings)
    clfs = resolve_classifiers(classifiers, cache_dir, mirror)
    for clf in clfs:
        clf.module.eval()
    opts = _Options(specs={c.name: c.spec for c in clfs},
                    recipes={c.name: c.original if c.preprocess_mode == "original" else None
                             for c in clfs},
                    composites_dir=None if composites_dir is None else Path(composites_dir),
                    strengths=tuple(float(a) for a in strengths), feather_frac=feather_frac,
                    detectors_text=", ".join(settings["detectors"]))
    jobs = [(path, path.relative_to(root).as_posix()) for path in paths]
    rows: list[dict] = []
    pending = _Pending(rows=[], inputs={c.name: [] for c in clfs})
    results = _analysed(jobs, finder, settings, opts, workers)
    with torch.inference_mode():
        for image_rows, inputs in tqdm(results, total=len(jobs), desc="score", unit="image",
                                       disable=not progress):
            first = len(rows)
            rows.extend(image_rows)
            for k, per_clf in enumerate(inputs):
                for name, x in per_clf.items():
                    pending.inputs[name].append(torch.from_numpy(x))
                pending.rows.append(first + k)
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
