"""Appearance ablation: recognition (classifier × emotion, a = 0) per appearance variant.

Every variant renders the SAME faces: ``n_identities`` seeded identities (the study's scene
sampler: identity, intensity, pose, light, skin tone, camera offset), each in every emotion,
untouched (a = 0). Variants differ only in the look (albedo, lighting, cavity shading), the
framing (field of view) and the FACS prototypes. Each image is classified by the study's
classifiers with the renders' landmark face boxes, exactly as the classify stage does, and
recognition is top-1 == intended emotion (as in ``facesym.stats.manipulation``).

Run ``python -m facesym.ablation --help`` (or ``bench/ablation.py``).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facesym.appearance import LEGACY_LOOK, Look, appearance_masks, vertex_albedo
from facesym.classifiers.base import CANONICAL_LABELS, Classifier
from facesym.config import validate_config
from facesym.expressions import prototype_weights
from facesym.facemodel.base import FaceModel
from facesym.render import frontal_camera, project_points, render_batch
from facesym.scenes import sample_face
from facesym.stages.render import BACKGROUND_RGB, light_direction, pose_vertices

# The prototypes and framing before issue 7 (chosen then by classifier outputs), for the
# "old" variants of the ablation.
LEGACY_PROTOTYPES: dict[str, dict[str, float]] = {
    "happiness": {"AU6": 1.0, "AU12": 1.0, "AU14": 0.5, "AU25": 1.0},
    "sadness": {"AU1": 1.0, "AU4": 1.0, "AU15": 1.0, "AU17": 1.0},
    "surprise": {"AU1": 1.0, "AU2": 1.0, "AU5": 1.0, "AU26": 1.0},
    "fear": {"AU1": 1.0, "AU4": 1.0, "AU5": 1.0, "AU20": 1.0, "AU25": 1.0},
    "anger": {"AU4": 1.0, "AU7": 1.0, "AU9": 0.5, "AU10": 1.0, "AU16": 0.8, "AU26": 0.5},
    "disgust": {"AU4": 0.5, "AU9": 1.0, "AU10": 1.0, "AU17": 0.7},
    "neutral": {},
}
# AU4 at ICT's scanned extent (browDown 1.0), before it was extended to the apex.
SCANNED_AU4: dict[str, dict[str, float]] = {"AU4": {"browDown_L": 1.0, "browDown_R": 1.0}}
LEGACY_ACTION_UNITS: dict[str, dict[str, float]] = {
    "AU6": {"cheekSquint_L": 1.0, "cheekSquint_R": 1.0}, **SCANNED_AU4}
LEGACY_FOV_DEG = 20.0
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
CLASSIFIERS = ("mini_xception", "big_xception", "mini_xception_48", "face_api", "networkv2",
               "facex")


@dataclass(frozen=True)
class Variant:
    """One appearance variant: look, field of view (None = the study's), prototypes, and
    action-unit mappings or prototypes that replace the study's (e.g. :data:`SCANNED_AU4`)."""

    name: str
    look: Look
    fov_deg: float | None = None
    legacy_prototypes: bool = False
    note: str = field(default="", compare=False)
    action_units: Mapping[str, Mapping[str, float]] | None = field(default=None, compare=False)
    prototypes: Mapping[str, Mapping[str, float]] | None = field(default=None, compare=False)


def default_variants() -> list[Variant]:
    """Cumulative variants from the old look to the new default, then leave-one-out ones."""
    new = Look()
    old = LEGACY_LOOK
    albedo = Look(albedo="procedural", lighting="lambert", cavity=0.0)
    sh = Look(albedo="procedural", lighting="sh", cavity=0.0)
    return [
        Variant("old", old, LEGACY_FOV_DEG, True, "legacy look, fov 20, legacy prototypes"),
        Variant("+albedo", albedo, LEGACY_FOV_DEG, True),
        Variant("+sh", sh, LEGACY_FOV_DEG, True),
        Variant("+cavity", new, LEGACY_FOV_DEG, True),
        Variant("+framing", new, None, True),
        Variant("+prototypes", new, None, False, "literature prototypes, AU4 as scanned",
                SCANNED_AU4),
        Variant("+au4", new, None, False, "AU4 at apex (browDown 2.5): the new default"),
        Variant("+wrinkles", Look(wrinkles=1.0), None, False, "wrinkle shading (opt-in)"),
        Variant("new-au4", new, None, False, action_units=SCANNED_AU4),
        Variant("new-albedo", Look("legacy", "sh", new.cavity), None, False),
        Variant("new-sh", Look("procedural", "lambert", new.cavity), None, False),
        Variant("new-cavity", sh, None, False),
        Variant("new-framing", new, LEGACY_FOV_DEG, False),
    ]


@dataclass
class Faces:
    """The ablation's faces: identity × emotion, with the scene values of each identity."""

    identity: np.ndarray  # (N, K)
    scene: dict[str, np.ndarray]  # (N,) each, includes intensity
    emotions: tuple[str, ...]

    def expanded(self) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Identity-major rows of (identity, emotion): identity (N·E, K), scene, emotion."""
        e = len(self.emotions)
        scene = {k: np.repeat(v, e) for k, v in self.scene.items()}
        return np.repeat(self.identity, e, axis=0), scene, list(self.emotions) * len(
            self.identity)


def sample_faces(cfg: Mapping, n_identities: int, seed: int,
                 emotions: Sequence[str] = EMOTIONS) -> Faces:
    """Identities 0..n−1 of the study's scene sampler under ``seed``."""
    k = int(cfg["face_model"]["identity_modes"])
    draws = [sample_face(seed, i, cfg["scenes"], k) for i in range(n_identities)]
    identity = np.stack([d["identity"] for d in draws]) if k else np.zeros((n_identities, 0))
    scene = {key: np.array([d[key] for d in draws]) for key in draws[0] if key != "identity"}
    return Faces(identity=identity, scene=scene, emotions=tuple(emotions))


def expression_tables(cfg: Mapping, legacy: bool,
                      action_units: Mapping[str, Mapping[str, float]] | None = None,
                      prototypes: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """The study's FACS tables, or those with the legacy prototypes and AU4/AU6 mappings;
    ``action_units`` and ``prototypes`` then replace single entries."""
    tables = copy.deepcopy(dict(cfg["expressions"]))
    if legacy:
        tables["prototypes"] = {**tables["prototypes"], **LEGACY_PROTOTYPES}
        tables["action_units"] = {**tables["action_units"], **LEGACY_ACTION_UNITS}
    if action_units:
        tables["action_units"] = {**tables["action_units"], **copy.deepcopy(dict(action_units))}
    if prototypes:
        tables["prototypes"] = {**tables["prototypes"], **copy.deepcopy(dict(prototypes))}
    return tables


def render_faces(model: FaceModel, cfg: Mapping, faces: Faces, variant: Variant,
                 batch_size: int = 16, masks=None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N·E, H, W, 3) uint8 and landmark face boxes (N·E, 4) of ``variant``.

    The meshes, pose, light and camera are those of the render stage at a = 0.
    """
    rcfg = cfg["render"]
    size = int(rcfg["size"])
    fov = float(variant.fov_deg if variant.fov_deg is not None else rcfg["fov_deg"])
    pivot = torch.as_tensor(model.template[model.landmarks].mean(0), dtype=torch.float32)
    camera = frontal_camera(rcfg["distance_cm"], fov, size, target=tuple(map(float, pivot)))
    tables = expression_tables(cfg, variant.legacy_prototypes, variant.action_units,
                               variant.prototypes)
    protos = {e: prototype_weights(e, tables, model) for e in faces.emotions}
    identity, scene, emotion = faces.expanded()
    weights = np.stack([protos[e] for e in emotion]) * scene["intensity"][:, None]
    masks = masks or appearance_masks(model)
    triangles = torch.as_tensor(model.triangles)
    images, boxes = [], []
    for start in range(0, len(emotion), batch_size):
        sl = slice(start, min(len(emotion), start + batch_size))
        verts, neutrals = [], []
        for i in range(sl.start, sl.stop):
            neutral = model.identity_mesh(identity[i])
            mesh = neutral + np.tensordot(weights[i], model.expression, axes=(0, 0))
            pose = (float(scene["yaw"][i]), float(scene["pitch"][i]), float(scene["roll"][i]),
                    pivot, float(scene["camera_distance_offset"][i]))
            verts.append(pose_vertices(torch.as_tensor(mesh, dtype=torch.float32), *pose))
            neutrals.append(pose_vertices(torch.as_tensor(neutral, dtype=torch.float32), *pose))
        v = torch.stack(verts)
        ambient = torch.as_tensor(scene["ambient"][sl], dtype=torch.float32)
        light = light_direction(scene["light_azimuth"][sl], scene["light_elevation"][sl])
        img = render_batch(
            v, triangles,
            torch.as_tensor(vertex_albedo(masks, scene["skin_tone"][sl], variant.look)),
            camera, light_dir=torch.as_tensor(light, dtype=torch.float32), ambient=ambient,
            diffuse=1.0 - ambient, background_rgb=BACKGROUND_RGB, backend=rcfg["backend"],
            device=rcfg["device"], neutral_vertices=torch.stack(neutrals),
            **variant.look.shading())
        lm = project_points(v[:, model.landmarks], camera).numpy()
        images.append(img.cpu().numpy())
        boxes.append(np.concatenate([lm.min(axis=1), lm.max(axis=1)], axis=1))
    return np.concatenate(images), np.concatenate(boxes).astype(np.float32)


def recognition(classifiers: Mapping[str, Classifier], images: np.ndarray, boxes: np.ndarray,
                emotions: Sequence[str], batch_size: int = 64) -> pd.DataFrame:
    """Per classifier × emotion: recognition rate (top-1 == intended) and mean p(intended)."""
    rows = []
    emotions = np.asarray(emotions)
    for name, clf in classifiers.items():
        _, probs = clf.predict(images, boxes, batch_size=batch_size)
        canon = np.nan_to_num(clf.to_canonical(probs), nan=-1.0)
        top = np.asarray(CANONICAL_LABELS)[canon.argmax(axis=1)]
        for emo in dict.fromkeys(emotions):
            sel = emotions == emo
            target = CANONICAL_LABELS.index(emo)
            rows.append({"classifier": name, "emotion": emo,
                         "recognition": float((top[sel] == emo).mean()),
                         "p_intended": float(np.clip(canon[sel, target], 0, 1).mean())})
        rows.append({"classifier": name, "emotion": "all",
                     "recognition": float((top == emotions).mean()),
                     "p_intended": float(np.mean([np.clip(canon[i, CANONICAL_LABELS.index(e)],
                                                          0, 1) for i, e in enumerate(emotions)]))})
    return pd.DataFrame(rows)


def load_classifiers(names: Sequence[str], cache_dir: str | Path) -> dict[str, Classifier]:
    """The named classifiers from the shipped zoo (weights fetched/verified in ``cache_dir``)."""
    from facesym.classifiers.zoo import load_classifier, load_zoo

    zoo = load_zoo()
    return {n: load_classifier(n, zoo, cache_dir=cache_dir) for n in names}


def summarise(table: pd.DataFrame, threshold: float = 0.5) -> pd.DataFrame:
    """Per variant: mean recognition over classifiers (all emotions), the lowest classifier,
    and per emotion how many classifiers recognise it (rate >= threshold)."""
    out = []
    for variant, t in table.groupby("variant", sort=False):
        alls = t[t.emotion == "all"].set_index("classifier")["recognition"]
        row = {"variant": variant, "mean": round(float(alls.mean()), 3),
               "min_classifier": f"{alls.idxmin()} {alls.min():.2f}"}
        for emo in EMOTIONS:
            sel = t[t.emotion == emo]
            if len(sel):
                row[emo] = int((sel["recognition"] >= threshold).sum())
        out.append(row)
    return pd.DataFrame(out)


def run_ablation(model: FaceModel, cfg: Mapping, classifiers: Mapping[str, Classifier],
                 variants: Sequence[Variant], n_identities: int = 10, seed: int = 424242,
                 sheet_dir: Path | None = None, log=print) -> pd.DataFrame:
    """Recognition of every variant on the same faces; long table with a ``variant`` column.

    With ``sheet_dir`` a PNG contact sheet of each variant's first identities is written.
    """
    faces = sample_faces(cfg, n_identities, seed)
    masks = appearance_masks(model)
    tables = []
    for variant in variants:
        start = time.perf_counter()
        images, boxes = render_faces(model, cfg, faces, variant, masks=masks)
        t_render = time.perf_counter() - start
        _, _, emotion = faces.expanded()
        rec = recognition(classifiers, images, boxes, emotion)
        rec.insert(0, "variant", variant.name)
        tables.append(rec)
        if sheet_dir is not None:  # partial results survive an interrupted run
            pd.concat(tables).to_csv(Path(sheet_dir) / "ablation.partial.csv", index=False)
            write_sheet(images[: 3 * len(faces.emotions)], len(faces.emotions),
                        Path(sheet_dir) / f"ablation_{variant.name.strip('+')}.png")
        alls = rec[rec.emotion == "all"]["recognition"]
        log(f"{variant.name}: mean recognition {alls.mean():.3f} "
            f"(render {t_render:.1f} s, total {time.perf_counter() - start:.1f} s)")
    return pd.concat(tables, ignore_index=True)


def write_sheet(images: np.ndarray, columns: int, path: Path) -> None:
    """Tile uint8 images (N, H, W, 3) into a PNG, ``columns`` per row."""
    from PIL import Image

    n, h, w, _ = images.shape
    rows = -(-n // columns)
    sheet = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)


def markdown(table: pd.DataFrame) -> str:
    """The ablation as Markdown: summary per variant, then recognition per classifier."""
    wide = table[table.emotion == "all"].pivot(index="variant", columns="classifier",
                                               values="recognition")
    wide = wide.loc[list(dict.fromkeys(table["variant"]))]
    return ("## Summary (mean over classifiers; per emotion: classifiers with rate >= 0.5)\n\n"
            + summarise(table).to_markdown(index=False)
            + "\n\n## Recognition rate per classifier (all emotions)\n\n"
            + wide.round(2).to_markdown() + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: run the ablation on the default study and write CSV + Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="face-model cache (results/<study>/face_model/"
                                                   "ict.npz)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--seed", type=int, default=424242)
    ap.add_argument("--classifiers", nargs="+", default=list(CLASSIFIERS))
    ap.add_argument("--variants", nargs="+", default=None, help="names from default_variants")
    ap.add_argument("--cache", default="resources")
    ap.add_argument("--backend", default="numba")
    ap.add_argument("--size", type=int, default=None)
    args = ap.parse_args(argv)
    cfg = validate_config({"render": {"backend": args.backend}})
    if args.size:
        cfg["render"]["size"] = args.size
    variants = default_variants()
    if args.variants:
        variants = [v for v in variants if v.name in args.variants]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = run_ablation(FaceModel.load(args.model), cfg,
                         load_classifiers(args.classifiers, args.cache), variants,
                         args.identities, args.seed, sheet_dir=out)
    table.to_csv(out / "ablation.csv", index=False)
    (out / "ablation.md").write_text(markdown(table))
    print(markdown(table))


if __name__ == "__main__":
    main()
