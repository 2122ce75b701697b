"""Manipulation check: do the classifiers see the intended emotion on the untouched renders?"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from facesym.stats.paired import intended_probability
from facesym.vocab import (
    CANONICAL_LABELS,
    CLASSIFIER,
    EMOTION,
    LABEL,
    PREDICTED,
    SIDE,
    STRENGTH,
)

ALL_EMOTIONS = "all"  # the row over every face of a classifier


def _untouched(cube: xr.Dataset) -> xr.DataArray:
    """prob[face, label] at a = 0, where every side is the same render."""
    return cube["prob"].sel({STRENGTH: 0.0}).isel({SIDE: 0})


def manipulation_check(cubes: Mapping[str, xr.Dataset]) -> pd.DataFrame:
    """Per classifier × emotion on the untouched (a = 0) renders: how often the intended emotion
    is the top class (recognition rate), its mean probability and the most common prediction;
    plus one row over all faces (emotion "all").

    >>> from facesym.stats import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.1}, n_per_emotion=4)
    >>> table = manipulation_check({"clf": cube})
    >>> table[["emotion", "n", "recognition_rate"]].to_dict("records")[-1]
    {'emotion': 'all', 'n': 12, 'recognition_rate': 1.0}
    """
    rows = []
    for name, cube in cubes.items():
        prob = _untouched(cube).load()
        emotion = np.array([str(e) for e in cube[EMOTION].values])
        labels = np.array([str(x) for x in prob[LABEL].values])
        top = labels[np.nanargmax(prob.values, axis=-1)]
        p_intended = intended_probability(prob, cube[EMOTION]).values
        for emo in dict.fromkeys(emotion):
            faces = emotion == emo
            rows.append({"classifier": name, "emotion": emo, "n": int(faces.sum()),
                         "recognition_rate": float((top[faces] == emo).mean()),
                         "mean_p_intended": float(p_intended[faces].mean()),
                         "most_common_prediction": pd.Series(top[faces]).mode().iloc[0]})
        rows.append({"classifier": name, "emotion": ALL_EMOTIONS, "n": len(emotion),
                     "recognition_rate": float((top == emotion).mean()),
                     "mean_p_intended": float(p_intended.mean()), "most_common_prediction": ""})
    return pd.DataFrame(rows)


def confusion_matrices(cubes: Mapping[str, xr.Dataset]) -> xr.DataArray:
    """Row-normalised confusion[classifier, emotion, predicted] on the a = 0 renders.

    >>> from facesym.stats import synthetic_cube
    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.1}, n_per_emotion=4)
    >>> confusion = confusion_matrices({"clf": cube})
    >>> float(confusion.sel(classifier="clf", emotion="surprise", predicted="surprise"))
    1.0
    """
    names = list(cubes)
    first = cubes[names[0]]
    emotions = list(dict.fromkeys(str(e) for e in first[EMOTION].values))
    per_classifier = []
    for cube in cubes.values():
        top = np.nanargmax(_untouched(cube).values, axis=-1)
        emotion = np.array([str(e) for e in cube[EMOTION].values])
        rows = []
        for emo in emotions:
            counts = np.bincount(top[emotion == emo], minlength=len(CANONICAL_LABELS))
            rows.append(counts / max(1, counts.sum()))
        per_classifier.append(rows)
    return xr.DataArray(np.array(per_classifier, dtype=np.float64).reshape(
                            len(names), len(emotions), len(CANONICAL_LABELS)),
                        dims=(CLASSIFIER, EMOTION, PREDICTED),
                        coords={CLASSIFIER: names, EMOTION: emotions,
                                PREDICTED: list(CANONICAL_LABELS)})
