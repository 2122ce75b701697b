"""A small classifier cube with known effects, to try the statistics on (and for examples)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from facesym.vocab import (
    CANONICAL_LABELS,
    EMOTION,
    FACE,
    LABEL,
    NEUTRAL,
    SIDE,
    SIDES,
    STRENGTH,
)


def synthetic_cube(drop: Mapping[str, float], n_per_emotion: int = 20,
                   emotions: Sequence[str] = ("happiness", "surprise", NEUTRAL),
                   sides: Sequence[str] = SIDES,
                   strengths: Sequence[float] = (0.0, 0.5, 1.0), noise: float = 0.02,
                   seed: int = 0,
                   base: Mapping[str, tuple[float, float]] | None = None) -> xr.Dataset:
    """A classifier cube like ``classify/<name>.zarr``: prob[face, side, strength, label] and
    emotion[face] (face i shows emotions[i mod E]).

    Each face's intended-class probability starts at a uniform draw in [0.5, 0.9] (or in
    ``base[emotion]`` = (low, high) for the emotions named there, e.g. a floor cell) and drops
    linearly by ``drop[side]`` at strength 1, with Gaussian ``noise`` growing with the
    strength; neutral faces never change. The other labels share the rest equally.

    >>> cube = synthetic_cube({"left": 0.3, "right": 0.0, "control": 0.1}, n_per_emotion=2)
    >>> dict(cube["prob"].sizes)
    {'face': 6, 'side': 3, 'strength': 3, 'label': 7}
    >>> cube["emotion"].values.tolist()[:3]
    ['happiness', 'surprise', 'neutral']
    """
    rng = np.random.default_rng(seed)
    n = n_per_emotion * len(emotions)
    emotion = np.array([emotions[i % len(emotions)] for i in range(n)])
    ranges = np.array([(base or {}).get(e, (0.5, 0.9)) for e in emotion], dtype=np.float64)
    base_p = ranges[:, 0] + (ranges[:, 1] - ranges[:, 0]) * rng.uniform(0.0, 1.0, size=n)
    prob = np.empty((n, len(sides), len(strengths), len(CANONICAL_LABELS)), dtype=np.float32)
    intended = np.array([CANONICAL_LABELS.index(e) for e in emotion])
    for s, side in enumerate(sides):
        for a, strength in enumerate(strengths):
            p = base_p - drop[side] * strength + rng.normal(0.0, noise, n) * strength
            p = np.where(emotion == NEUTRAL, base_p, p)
            prob[:, s, a, :] = ((1 - p) / (len(CANONICAL_LABELS) - 1))[:, None]
            prob[np.arange(n), s, a, intended] = p
    return xr.Dataset({"prob": ((FACE, SIDE, STRENGTH, LABEL), prob), EMOTION: (FACE, emotion)},
                      coords={FACE: np.arange(n), SIDE: list(sides),
                              STRENGTH: list(strengths), LABEL: list(CANONICAL_LABELS)})
