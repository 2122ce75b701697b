"""``run_calibration``: search, held-out evaluation and the files a calibration writes."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import facesym
from facesym.calibration.evaluate import (
    Identities,
    RenderEvaluator,
    au_prototype,
    sample_identities,
)
from facesym.calibration.report import (
    TABLE_COLUMNS,
    held_out_summary,
    prototypes_text,
    recognition_markdown,
)
from facesym.calibration.search import (
    Cache,
    Fold,
    FoldResult,
    make_folds,
    search_emotion,
    stable_seed,
)
from facesym.calibration.settings import CalibrationSettings, au_bounds, calibration_settings
from facesym.classifiers.base import Classifier
from facesym.config import digest, select, validate_study_config
from facesym.facemodel.base import FaceModel
from facesym.provenance import git_state

log = logging.getLogger(__name__)

OUTPUTS = {"prototypes": "prototypes.yaml", "table": "recognition.csv",
           "markdown": "recognition.md", "history": "history.csv"}
METHOD = ("per emotion: the tables' prototype plus a seeded Latin hypercube within the AU "
          "bounds, shared by all folds; then per fold CMA-ES (cma package) from the fold's best "
          "point, maximising the objective over the fold's search set on the search identities; "
          "a fold's prototype is the best candidate it scored, design included (ties: the first); "
          "the written prototypes are the fold of the whole search set")


@dataclass
class CalibrationResult:
    """What :func:`run_calibration` produced (also written to ``paths``)."""

    prototypes: dict[str, dict[str, float]]
    table: pd.DataFrame
    history: pd.DataFrame
    provenance: dict
    paths: dict[str, Path]


def created_stamp() -> str:
    """UTC time now, or ``$SOURCE_DATE_EPOCH`` when set (reproducible files)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (_dt.datetime.fromtimestamp(int(epoch), _dt.UTC) if epoch
            else _dt.datetime.now(_dt.UTC))
    return when.isoformat(timespec="seconds")


def load_study_model(cfg: Mapping) -> FaceModel:
    """The study's face model, built from its verified resource (ICT) or the user's FLAME."""
    from facesym.facemodel import build_face_model
    from facesym.resources import fetch_resource

    fm = cfg["face_model"]
    if fm["name"] == "flame":
        return build_face_model(fm, fm["flame"]["path"])
    cache = Path(cfg["resources"]["cache_dir"])
    fetch_resource("ict_facekit", cache, cfg["resources"]["mirror"])
    return build_face_model(fm, cache / "ict_facekit" / "FaceXModel")


def load_classifiers(cfg: Mapping, names: tuple[str, ...]) -> dict[str, Classifier]:
    """The named classifiers from the zoo (shipped + the study's ``zoo:``), weights verified."""
    from facesym.classifiers.zoo import load_classifier, load_zoo

    zoo = load_zoo(extra=cfg["zoo"])
    res = cfg["resources"]
    return {n: load_classifier(n, zoo, cache_dir=res["cache_dir"], mirror=res["mirror"])
            for n in names}


def _rows(emotion: str, fold: Fold, names: tuple[str, ...], split: str, before, after
          ) -> list[dict]:
    rows = []
    for i, c in enumerate(names):
        if c in fold.search_set:
            role = "in_search"
        elif c in fold.held_out:
            role = "held_out"
        else:
            continue
        rows.append({"emotion": emotion, "fold": fold.name, "classifier": c, "role": role,
                     "identities": split, "n": int(before.p.shape[1]),
                     "rate_before": float(before.top1[i].mean()),
                     "rate_after": float(after.top1[i].mean()),
                     "p_before": float(before.p[i].mean()), "p_after": float(after.p[i].mean())})
    return rows


def _history(emotion: str, aus: tuple[str, ...], cache: Cache, results: list[FoldResult],
             names: tuple[str, ...]) -> list[dict]:
    rows = []
    for k in cache.keys:
        s = cache.scores[k]
        row = {"emotion": emotion, "stage": cache.stage[k],
               "folds": " ".join(r.fold.name for r in results if k in r.seen),
               "best_of": " ".join(r.fold.name for r in results if r.best == k),
               "candidate": " ".join(f"{a}={v:g}" for a, v in zip(aus, k, strict=True))}
        row.update({a: v for a, v in zip(aus, k, strict=True)})
        row.update({f"p_{c}": round(float(s.p[i].mean()), 6) for i, c in enumerate(names)})
        row.update({f"rate_{c}": round(float(s.top1[i].mean()), 6)
                    for i, c in enumerate(names)})
        rows.append(row)
    return rows


def calibrate_emotion(evaluator: RenderEvaluator, settings: CalibrationSettings, emotion: str,
                      tables: Mapping, ids: Identities, holdout: Identities
                      ) -> tuple[dict[str, float], list[dict], list[dict]]:
    """Search one emotion, score x0 and every fold's best on the held-out identities.

    Returns (written prototype, table rows, history rows).
    """
    names = settings.classifiers
    aus = settings.aus[emotion]
    lo = np.array([au_bounds(settings, a)[0] for a in aus])
    hi = np.array([au_bounds(settings, a)[1] for a in aus])
    current = tables["prototypes"].get(emotion, {})
    x0 = np.clip(np.round([float(current.get(a, 0.0)) for a in aus], 3), lo, hi)
    folds = make_folds(settings.search_set, names, settings.leave_one_out)
    results, cache = search_emotion(
        evaluator.for_emotion(emotion, aus, ids), names, folds, x0, lo, hi,
        objective=settings.objective, design=settings.design,
        evaluations=settings.evaluations, popsize=settings.popsize, sigma=settings.sigma,
        seed=stable_seed(settings.seed, emotion))
    held = Cache(evaluator.for_emotion(emotion, aus, holdout))
    x0_key = Cache.key(x0)
    held.score(np.array([x0_key] + [r.best for r in results]), "holdout")
    rows: list[dict] = []
    for r in results:
        rows += _rows(emotion, r.fold, names, "search", cache.scores[x0_key],
                      cache.scores[r.best])
        rows += _rows(emotion, r.fold, names, "holdout", held.scores[x0_key],
                      held.scores[r.best])
    return au_prototype(aus, results[0].best), rows, _history(emotion, aus, cache, results,
                                                                 names)


def _provenance(cfg: Mapping, settings: CalibrationSettings, classifiers: Mapping,
                table: pd.DataFrame, created: str) -> dict:
    used = sorted({a for aus in settings.aus.values() for a in aus})
    study = select(cfg, ["seed", "scenes", "render", "face_model", "intervention.sides"])
    return {
        "facesym_version": facesym.__version__, **git_state(), "created": created,
        "method": METHOD, "objective": settings.objective,
        "search_set": list(settings.search_set), "evaluate_only": list(settings.evaluate_only),
        "leave_one_out": settings.leave_one_out,
        "identities": {"search": {"seed": settings.seed, "n": settings.identities},
                       "holdout": {"seed": settings.holdout_seed,
                                   "n": settings.holdout_identities},
                       "sampler": "facesym.scenes.sample_face over the study's scenes config, "
                                  "a = 0 (no intervention)"},
        "budget": settings.budget(),
        "bounds": {a: list(settings.bounds.get(a, settings.bounds["default"])) for a in used},
        "candidate_aus": {e: list(a) for e, a in settings.aus.items()},
        "action_units": {a: dict(cfg["expressions"]["action_units"][a]) for a in used},
        "prototypes_before": {e: dict(cfg["expressions"]["prototypes"].get(e, {}))
                              for e in settings.emotions},
        "study_config_digest": digest(study),
        "render": {"size": settings.render_size, "backend": cfg["render"]["backend"]},
        "classifiers": {n: {"weights_sha256": dict(sorted(c.weights_sha256.items())),
                            "engine": str(c.engine_info.get("engine")),
                            "kernels": str(c.engine_info.get("kernels"))}
                        for n, c in classifiers.items()},
        "held_out_results": held_out_summary(table),
    }


def run_calibration(cfg_dict: Mapping, out_dir: str | Path, *, model: FaceModel | None = None,
                    classifiers: Mapping[str, Classifier] | None = None,
                    created: str | None = None) -> CalibrationResult:
    """Calibrate the prototypes of a study config and write them with their evaluation.

    ``cfg_dict`` is a raw study config (as ``facesym check-config`` reads it) with an optional
    ``calibration:`` section (:mod:`facesym.calibration.settings`). ``model`` and
    ``classifiers`` replace the study's face model and zoo classifiers (tests, notebooks);
    ``created`` fixes the date in the provenance (default: now, or ``$SOURCE_DATE_EPOCH``).
    Writes ``prototypes.yaml``, ``recognition.csv``/``.md`` and ``history.csv`` to ``out_dir``.
    """
    raw = dict(cfg_dict)
    calib = raw.pop("calibration", None) or {}
    cfg = validate_study_config(raw)
    settings = calibration_settings({**cfg, "calibration": calib})
    if settings.threads:
        torch.set_num_threads(settings.threads)
    model = model if model is not None else load_study_model(cfg)
    if classifiers is None:
        classifiers = load_classifiers(cfg, settings.classifiers)
    missing = [c for c in settings.classifiers if c not in classifiers]
    if missing:
        raise KeyError(f"classifiers not supplied: {missing}")
    ordered = {c: classifiers[c] for c in settings.classifiers}
    for seed in (settings.seed, settings.holdout_seed):
        if seed == cfg["seed"]:
            log.warning("calibration seed %d equals the study seed: calibration identities are "
                        "the study's own faces", seed)
    ids = sample_identities(cfg, settings.seed, settings.identities)
    holdout = sample_identities(cfg, settings.holdout_seed, settings.holdout_identities)
    evaluator = RenderEvaluator(model, cfg, ordered, settings.render_size, settings.batch_size)
    prototypes, rows, history = {}, [], []
    for emotion in settings.emotions:
        t0, n0 = time.perf_counter(), evaluator.renders
        proto, r, h = calibrate_emotion(evaluator, settings, emotion, cfg["expressions"], ids,
                                        holdout)
        prototypes[emotion] = proto
        rows += r
        history += h
        log.info("calibrated %s: %s (%d renders, %.0f s)", emotion, proto,
                 evaluator.renders - n0, time.perf_counter() - t0)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    provenance = _provenance(cfg, settings, ordered, table, created or created_stamp())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / v for k, v in OUTPUTS.items()}
    paths["prototypes"].write_text(prototypes_text(prototypes, provenance))
    table.to_csv(paths["table"], index=False, float_format="%.6g")
    paths["markdown"].write_text(recognition_markdown(table, provenance))
    hist = pd.DataFrame(history)
    hist.to_csv(paths["history"], index=False, float_format="%.6g")
    return CalibrationResult(prototypes, table, hist, provenance, paths)
