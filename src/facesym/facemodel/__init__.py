"""Morphable face models (ICT-FaceKit, FLAME) behind one `FaceModel` (facemodel.base)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from facesym.facemodel.base import FaceModel


def build_face_model(fm_cfg: Mapping, source: str | Path,
                     landmarks: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> FaceModel:
    """Build the model ``fm_cfg`` (the ``face_model`` config section) names from ``source``.

    ``source`` is ICT-FaceKit's FaceXModel folder or the user's FLAME pickle; a FLAME landmark
    file, if the config names one, comes as ``landmarks`` (else ``flame.landmarks`` is read).
    ``face_model.mirrored_shapes`` (``from_left``/``from_right``) turns the built model into
    its mirrored template (:func:`facesym.facemodel.mirror.mirrored_model`).
    """
    from facesym.facemodel.mirror import MIRRORED_SHAPES

    mirrored = fm_cfg.get("mirrored_shapes", "none")
    if mirrored not in MIRRORED_SHAPES:
        raise ValueError(f"config key face_model.mirrored_shapes: {mirrored!r} is not one of "
                         f"{list(MIRRORED_SHAPES)}")
    if fm_cfg["name"] == "flame":
        from facesym.facemodel.flame import build_flame_model

        flame = fm_cfg["flame"]
        model = build_flame_model(
            source, identity_modes=fm_cfg["identity_modes"],
            expression_modes=flame["expression_modes"],
            landmarks=landmarks if landmarks is not None else flame["landmarks"],
            mirror_tolerance_cm=flame["mirror_tolerance_cm"],
        )
    elif fm_cfg["name"] == "ict":
        from facesym.facemodel.ict import build_ict_model

        model = build_ict_model(source, identity_modes=fm_cfg["identity_modes"],
                                progress=progress)
    else:
        raise ValueError(f"config key face_model.name: unknown model {fm_cfg['name']!r} "
                         "(allowed values: ict, flame)")
    source_side = MIRRORED_SHAPES[mirrored]
    return model if source_side is None else model.with_mirrored_shapes(source_side)
