"""Score AU-intensity candidates: render calibration identities at a = 0, run the classifiers."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from facesym.calibration.search import Scores
from facesym.classifiers.base import CANONICAL_LABELS, Classifier
from facesym.expressions import prototype_weights
from facesym.facemodel.base import FaceModel
from facesym.scenes import sample_face
from facesym.stages.render import StudyRenderer


@dataclass(frozen=True)
class Identities:
    """Seeded faces from the study's scene sampler: identity, intensity and scene values."""

    seed: int
    identity: np.ndarray  # (N, K)
    scene: dict[str, np.ndarray]  # scene variable -> (N,), includes "intensity"

    def __len__(self) -> int:
        return len(self.identity)


def sample_identities(cfg: Mapping, seed: int, n: int) -> Identities:
    """Faces 0..n−1 of the scene sampler with ``seed`` (the study's distributions)."""
    k = int(cfg["face_model"]["identity_modes"])
    draws = [sample_face(seed, i, cfg["scenes"], k) for i in range(n)]
    identity = (np.stack([d["identity"] for d in draws]) if k else np.zeros((n, 0)))
    scene = {key: np.array([d[key] for d in draws]) for key in draws[0] if key != "identity"}
    return Identities(seed=seed, identity=identity, scene=scene)


def au_prototype(aus: Sequence[str], x: Sequence[float]) -> dict[str, float]:
    """{AU: intensity} of a candidate, AUs at 0 left out (they are absent)."""
    return {au: round(float(v), 3) for au, v in zip(aus, x, strict=True) if round(float(v), 3)}


def renderer_config(cfg: Mapping, size: int) -> dict:
    """The study's render and intervention config at ``size`` px with the a = 0 design only."""
    icfg = dict(cfg["intervention"])
    icfg.update(sides=[icfg["sides"][0]], strengths=[0.0])
    return {"render": {**cfg["render"], "size": int(size)}, "intervention": icfg}


class RenderEvaluator:
    """``evaluate(candidates)`` for one emotion and identity set: renders, classifies, scores.

    Every candidate × identity is rendered at a = 0 (no intervention) exactly as the study
    renders: the identity's own intensity multiplies the prototype, pose, light, skin tone
    and camera come from the scene sampler.
    """

    def __init__(self, model: FaceModel, cfg: Mapping, classifiers: Mapping[str, Classifier],
                 size: int, batch_size: int = 64) -> None:
        self.model = model
        self.tables = copy.deepcopy(dict(cfg["expressions"]))
        self.renderer = StudyRenderer(model, renderer_config(cfg, size))
        self.classifiers = dict(classifiers)
        self.batch_size = batch_size
        self.renders = 0

    def weights(self, emotion: str, aus: Sequence[str], x: Sequence[float]) -> np.ndarray:
        """Shape weights (E,) of the candidate at intensity 1 (AUs on one shape add, cap 1)."""
        tables = {**self.tables, "prototypes": {emotion: dict(zip(aus, map(float, x),
                                                               strict=True))}}
        return prototype_weights(emotion, tables, self.model)

    def images(self, emotion: str, aus: Sequence[str], candidates: np.ndarray,
               ids: Identities) -> tuple[np.ndarray, np.ndarray]:
        """Renders (n·N, H, W, 3) and face boxes (n·N, 4), candidate-major."""
        n_id = len(ids)
        per_call = max(1, self.batch_size // max(1, n_id)) * n_id
        weights = np.repeat(np.stack([self.weights(emotion, aus, x) for x in candidates]),
                            n_id, axis=0) * np.tile(ids.scene["intensity"], len(candidates)
                                                    )[:, None]
        identity = np.tile(ids.identity, (len(candidates), 1))
        scene = {k: np.tile(v, len(candidates)) for k, v in ids.scene.items()}
        images, boxes = [], []
        for start in range(0, len(weights), per_call):
            sl = slice(start, start + per_call)
            res = self.renderer.render(identity[sl], weights[sl],
                                       {k: v[sl] for k, v in scene.items()})
            images.append(res.images.reshape(-1, *res.images.shape[-3:]))
            boxes.append(res.face_box.reshape(-1, 4))
        self.renders += len(weights)
        return np.concatenate(images), np.concatenate(boxes)

    def scores(self, emotion: str, aus: Sequence[str], candidates: np.ndarray,
               ids: Identities) -> list[Scores]:
        """One :class:`Scores` per candidate: p_intended and top-1 hits per classifier × face."""
        images, boxes = self.images(emotion, aus, candidates, ids)
        target = CANONICAL_LABELS.index(emotion)
        p, top1 = [], []
        for clf in self.classifiers.values():
            _, probs = clf.predict(images, boxes, batch_size=self.batch_size)
            canon = clf.to_canonical(probs)
            p.append(np.nan_to_num(canon[:, target], nan=0.0))  # label absent: never seen
            top1.append(np.nanargmax(np.nan_to_num(canon, nan=-1.0), axis=1) == target)
        p_all = np.stack(p).reshape(len(self.classifiers), len(candidates), len(ids))
        hit = np.stack(top1).reshape(p_all.shape)
        return [Scores(p=p_all[:, i], top1=hit[:, i]) for i in range(len(candidates))]

    def for_emotion(self, emotion: str, aus: Sequence[str], ids: Identities):
        """The ``evaluate`` callable of :func:`~facesym.calibration.search.search_emotion`."""
        return lambda candidates: self.scores(emotion, aus, candidates, ids)
