"""Robustness to preprocessing on real renders: facesym's vs each package's own pipeline.

Classifies the first ``--faces`` faces of a render cube twice per classifier, with
``preprocess: facesym`` and ``preprocess: original`` (the entry's ``original_preprocess``,
or the recipe below), and prints the agreement table of
:func:`facesym.classifiers.robustness.preprocessing_agreement` as Markdown::

    .venv/bin/python scripts/parity/preprocess_robustness.py results/default/renders.zarr \
        [--faces 42] [--out table.csv] [names...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facesym.classifiers.robustness import agreement_markdown, preprocessing_agreement
from facesym.classifiers.runtime import configure
from facesym.classifiers.zoo import load_classifier, load_zoo
from facesym.cubes import open_cube
from facesym.stages.classify import classify_renders

# the package each shipped classifier comes from (used when the entry names none)
RECIPES = {"mini_xception": "fer", "big_xception": "face_classification",
           "mini_xception_48": "face_classification", "face_api": "face_api",
           "networkv2": "facial_emotion_recognition", "facex": "facex"}


def main() -> None:
    """Print (and optionally save) the agreement table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("renders", type=Path)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--faces", type=int, default=42)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    zoo = load_zoo()
    renders = open_cube(args.renders).isel(face=slice(0, args.faces))
    pairs = {}
    for name in args.names or list(RECIPES):
        entry = dict(zoo[name])
        if entry.get("format") == "tflite":
            entry["engine"] = "auto"  # LiteRT where installed: the package's own engine
        recipe = entry.get("original_preprocess", RECIPES.get(name))
        cubes = []
        for mode in ("facesym", "original"):
            clf = load_classifier(name, {name: entry})
            configure(clf, {**entry, "preprocess": mode, "original_preprocess": recipe})
            cubes.append(classify_renders(clf, renders, progress=False))
        pairs[name] = (cubes[0], cubes[1])
    table = preprocessing_agreement(pairs)
    print(agreement_markdown(table))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
