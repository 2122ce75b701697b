"""Emotions → FACS action units → face-model shape weights (tables live in configuration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from facesym.facemodel.base import FaceModel


def au_shape_weights(tables: Mapping, au: str) -> dict[str, float]:
    """The shape weights of action unit ``au``; KeyError names the known AUs."""
    aus = tables["action_units"]
    if au not in aus:
        raise KeyError(f"unknown action unit {au!r}; known: {', '.join(sorted(aus))}")
    return dict(aus[au])


def prototype_weights(emotion: str, tables: Mapping, model: FaceModel) -> np.ndarray:
    """Shape-weight vector (E,) of ``emotion``'s prototype at intensity 1.

    Weights of AUs sharing a shape add up and are capped at 1 (a blendshape's full extent).
    """
    protos = tables["prototypes"]
    if emotion not in protos:
        raise KeyError(f"no prototype for emotion {emotion!r}; known: {', '.join(sorted(protos))}")
    w = np.zeros(len(model.expression_names), dtype=np.float64)
    for au, intensity in protos[emotion].items():
        for shape, weight in au_shape_weights(tables, au).items():
            w[model.shape_index(shape)] += float(intensity) * float(weight)
    return np.minimum(w, 1.0)


def prototype_matrix(emotions: Sequence[str], tables: Mapping, model: FaceModel) -> np.ndarray:
    """Stack :func:`prototype_weights` for several emotions → (n_emotions, E)."""
    return np.stack([prototype_weights(e, tables, model) for e in emotions])


def is_symmetric_prototype(weights: np.ndarray, model: FaceModel) -> bool:
    """True when every ``*_L`` shape has the same weight as its ``*_R`` twin."""
    names = model.expression_names
    for i, name in enumerate(names):
        if name.endswith("_L"):
            twin = name[:-2] + "_R"
            if twin in names and not np.isclose(weights[i], weights[names.index(twin)]):
                return False
    return True
