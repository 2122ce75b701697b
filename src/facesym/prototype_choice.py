"""Choosing among literature prototype variants, leave-one-classifier-out.

FACS lists several prototypes and major variants per emotion (Ekman, Friesen & Hager 2002,
Investigator's Guide, Table 10-1). Which variant a study renders is a choice; made by looking
at classifier outputs it risks tuning stimuli to the classifiers under test. This module makes
that choice auditable: every candidate of an emotion is rendered on the same faces (a = 0, the
study's look and scene sampler) under two seeds, a *selection* seed and a *test* seed, and
classified by every classifier. For each classifier, the variant the OTHER classifiers
recognise best on the selection faces is scored by the held-out classifier on the test faces,
beside the study's current prototype and the held-out classifier's own best (an oracle no
study should use). If the held-out scores follow the choice, the choice generalises beyond the
classifiers that made it.

Run ``python -m facesym.prototype_choice --model results/default/face_model/ict.npz --out DIR``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from facesym.ablation import (
    CLASSIFIERS,
    Variant,
    load_classifiers,
    recognition,
    render_faces,
    sample_faces,
    write_sheet,
)
from facesym.appearance import Look, appearance_masks
from facesym.config import validate_config
from facesym.facemodel.base import FaceModel

# Candidates per emotion: (name, prototype). "current" is the study's prototype (read from
# the tables at run time); the others are Table 10-1 prototypes/variants of the Investigator's
# Guide [IG] (and fear's earlier prototype after Matsumoto et al. 2008 [MA]), at the
# intensities the shipped tables use for the same AUs. AU4 at 0.7 where the shipped
# prototype has it at 1.0 (and vice versa) tests how far the brows are drawn down.
CANDIDATES: dict[str, dict[str, dict[str, float]]] = {
    "fear": {
        "IG 1+2+4+5+20+25": {"AU1": 1.0, "AU2": 1.0, "AU4": 0.7, "AU5": 1.0, "AU20": 1.0,
                             "AU25": 1.0},
        "IG 1+2+4+5+20+26": {"AU1": 1.0, "AU2": 1.0, "AU4": 0.7, "AU5": 1.0, "AU20": 1.0,
                             "AU26": 1.0},
        "IG 1+2+4(0.7)+5+20+27": {"AU1": 1.0, "AU2": 1.0, "AU4": 0.7, "AU5": 1.0,
                                  "AU20": 1.0, "AU27": 0.8},
        "IG 1+2+4+5+27": {"AU1": 1.0, "AU2": 1.0, "AU4": 0.7, "AU5": 1.0, "AU27": 0.8},
        "MA 1+2+4+5+7+20+26": {"AU1": 1.0, "AU2": 1.0, "AU4": 0.7, "AU5": 1.0, "AU7": 0.5,
                               "AU20": 1.0, "AU26": 1.0},
    },
    "anger": {
        "IG 4+5+7+10+23+26": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU10": 1.0, "AU23": 0.4,
                              "AU26": 0.5},
        "IG 4+5+7+23+26": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU23": 0.4, "AU26": 0.5},
        "IG 4+5+7+17+23": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU17": 1.0, "AU23": 1.0},
        "IG 4+5+7+17+24": {"AU4": 1.0, "AU5": 0.6, "AU7": 1.0, "AU17": 1.0, "AU24": 1.0},
    },
    "surprise": {
        "IG 1+2+5+26": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
        "IG 1+2+5+26(1.25)": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.25},
        "IG 1+2+27": {"AU1": 1.0, "AU2": 1.0, "AU27": 0.8},
        "IG 5+27": {"AU5": 1.0, "AU27": 0.8},
    },
    "sadness": {
        "IG 1+4+15": {"AU1": 1.0, "AU4": 0.6, "AU15": 1.0},
        "IG 1+4E+15+17": {"AU1": 1.0, "AU4": 1.0, "AU15": 1.0, "AU17": 0.7},
        "IG 1+4+11+15": {"AU1": 1.0, "AU4": 0.6, "AU11": 1.0, "AU15": 1.0},
        "IG 6+15": {"AU6": 1.0, "AU15": 1.0},
    },
    "disgust": {
        "IG 9+17": {"AU9": 1.0, "AU17": 1.0},
        "IG 10+17": {"AU10": 1.0, "AU17": 1.0},
        "IG 9+15+16+26": {"AU9": 1.0, "AU15": 1.0, "AU16": 1.0, "AU26": 0.5},
        "IG 10+16+26": {"AU10": 1.0, "AU16": 1.0, "AU26": 0.5},
    },
}
CURRENT = "current"


def candidate_recognition(model: FaceModel, cfg: Mapping, classifiers: Mapping,
                          emotion: str, candidates: Mapping[str, Mapping[str, float]],
                          n_identities: int, seeds: Sequence[int],
                          sheet_dir: Path | None = None, log=print) -> pd.DataFrame:
    """Recognition of ``emotion`` per candidate × seed × classifier (a = 0, study look).

    The study's own prototype is included as ``current``; rows carry ``recognition`` and
    ``p_intended`` as in :func:`facesym.ablation.recognition`.
    """
    masks = appearance_masks(model)
    look = Look.from_config(cfg["render"]["appearance"])
    rows = []
    for seed in seeds:
        faces = sample_faces(cfg, n_identities, seed, emotions=(emotion,))
        for name, proto in {CURRENT: None, **candidates}.items():
            start = time.perf_counter()
            variant = Variant(name, look, prototypes=None if proto is None
                              else {emotion: dict(proto)})
            images, boxes = render_faces(model, cfg, faces, variant, masks=masks)
            rec = recognition(classifiers, images, boxes, [emotion] * len(images))
            rec = rec[rec.emotion == emotion].assign(candidate=name, seed=seed)
            rows.append(rec)
            if sheet_dir is not None and seed == seeds[0]:
                safe = name.replace(" ", "_").replace("+", "-")
                write_sheet(images[:6], 6, Path(sheet_dir) / f"{emotion}_{safe}.png")
            log(f"{emotion} {name} seed {seed}: mean recognition "
                f"{rec['recognition'].mean():.3f} ({time.perf_counter() - start:.1f} s)")
    return pd.concat(rows, ignore_index=True)[
        ["emotion", "candidate", "seed", "classifier", "recognition", "p_intended"]]


def leave_one_classifier_out(table: pd.DataFrame, selection_seed: int,
                             test_seed: int) -> pd.DataFrame:
    """Per emotion × held-out classifier: the candidate the other classifiers recognise best
    on the selection faces (mean rate, ties by mean p_intended), and the held-out
    classifier's rate on the test faces for it, for the current prototype, and for its own
    best candidate on the selection faces (oracle)."""
    out = []
    for emotion, t in table.groupby("emotion", sort=False):
        sel = t[t.seed == selection_seed]
        test = t[t.seed == test_seed].set_index(["candidate", "classifier"])["recognition"]
        for held in dict.fromkeys(t["classifier"]):
            others = sel[sel.classifier != held].groupby("candidate", sort=False)[
                ["recognition", "p_intended"]].mean()
            chosen = others.sort_values(["recognition", "p_intended"], ascending=False,
                                        kind="stable").index[0]
            own = sel[sel.classifier == held].set_index("candidate")[
                ["recognition", "p_intended"]]
            oracle = own.sort_values(["recognition", "p_intended"], ascending=False,
                                     kind="stable").index[0]
            out.append({"emotion": emotion, "held_out": held, "chosen_by_others": chosen,
                        "held_out_chosen": float(test[(chosen, held)]),
                        "held_out_current": float(test[(CURRENT, held)]),
                        "held_out_oracle": float(test[(oracle, held)]),
                        "oracle": oracle})
    return pd.DataFrame(out)


def choice_by_all(table: pd.DataFrame, selection_seed: int, test_seed: int) -> pd.DataFrame:
    """Per emotion × candidate: mean rate over all classifiers on both seeds and the number
    of classifiers with rate >= 0.5 on the test faces."""
    rows = []
    for (emotion, cand), t in table.groupby(["emotion", "candidate"], sort=False):
        s, te = t[t.seed == selection_seed], t[t.seed == test_seed]
        rows.append({"emotion": emotion, "candidate": cand,
                     "mean_selection": round(float(s["recognition"].mean()), 3),
                     "mean_test": round(float(te["recognition"].mean()), 3),
                     "classifiers_test_ge_0.5": int((te["recognition"] >= 0.5).sum())})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, selection_seed: int, test_seed: int) -> str:
    """Both tables as Markdown."""
    wide = table[table.seed == test_seed].pivot_table(
        index=["emotion", "candidate"], columns="classifier", values="recognition", sort=False)
    wide.index = [f"{emotion}: {candidate}" for emotion, candidate in wide.index]
    return (f"## Candidates (selection seed {selection_seed}, test seed {test_seed})\n\n"
            + choice_by_all(table, selection_seed, test_seed).to_markdown(index=False)
            + "\n\n## Recognition per classifier, test faces\n\n"
            + wide.round(2).to_markdown()
            + "\n\n## Leave one classifier out (chosen by the other classifiers on the "
              "selection faces, scored by the held-out one on the test faces)\n\n"
            + leave_one_classifier_out(table, selection_seed, test_seed).round(2)
            .to_markdown(index=False) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: candidates of each emotion, both seeds, CSV + Markdown + contact sheets."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="face-model cache (results/<study>/face_model/"
                                                   "ict.npz)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--emotions", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--identities", type=int, default=20)
    ap.add_argument("--selection-seed", type=int, default=424242)
    ap.add_argument("--test-seed", type=int, default=99)
    ap.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS))
    ap.add_argument("--cache", default="resources")
    ap.add_argument("--backend", default="numba")
    args = ap.parse_args(argv)
    cfg = validate_config({"render": {"backend": args.backend}})
    model = FaceModel.load(args.model)
    classifiers = load_classifiers(args.classifiers, args.cache)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = (args.selection_seed, args.test_seed)
    table = pd.concat([candidate_recognition(model, cfg, classifiers, e, CANDIDATES[e],
                                             args.identities, seeds, sheet_dir=out)
                       for e in args.emotions], ignore_index=True)
    table.to_csv(out / "prototype_choice.csv", index=False)
    text = markdown(table, *seeds)
    (out / "prototype_choice.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
