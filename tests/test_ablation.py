"""The appearance ablation: variants, same faces, and its summary table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facesym.ablation import (
    SCANNED_AU4,
    Faces,
    default_variants,
    expression_tables,
    markdown,
    render_faces,
    summarise,
)
from facesym.appearance import LEGACY_LOOK, Look
from facesym.config import validate_config


def test_variants_go_from_the_old_look_to_the_new_default():
    variants = default_variants()
    assert variants[0].look == LEGACY_LOOK and variants[0].legacy_prototypes
    new = next(v for v in variants if v.name == "+au4")
    assert new.look == Look() and new.fov_deg is None and not new.legacy_prototypes
    assert new.action_units is None  # the study's own tables: the default
    assert len({v.name for v in variants}) == len(variants)


def test_legacy_and_scanned_au4_variants_keep_browdown_at_its_scanned_extent():
    cfg = validate_config({})
    assert cfg["expressions"]["action_units"]["AU4"] == {"browDown_L": 2.5, "browDown_R": 2.5}
    for legacy, units in ((True, None), (False, SCANNED_AU4)):
        tables = expression_tables(cfg, legacy, units)
        assert tables["action_units"]["AU4"] == {"browDown_L": 1.0, "browDown_R": 1.0}
    assert cfg["expressions"]["action_units"]["AU4"]["browDown_L"] == 2.5  # not mutated


def test_summary_counts_classifiers_at_or_above_one_half():
    rows = [("v", c, e, r) for c, rates in (("a", (0.5, 0.2)), ("b", (0.9, 0.6)))
            for e, r in zip(("anger", "fear"), rates, strict=True)]
    table = pd.DataFrame(rows, columns=["variant", "classifier", "emotion", "recognition"])
    alls = pd.DataFrame([("v", "a", "all", 0.35), ("v", "b", "all", 0.75)],
                        columns=table.columns)
    s = summarise(pd.concat([table, alls]))
    assert s.loc[0, "anger"] == 2 and s.loc[0, "fear"] == 1
    assert s.loc[0, "mean"] == 0.55 and s.loc[0, "min_classifier"] == "a 0.35"
    assert "| v " in markdown(pd.concat([table, alls]))


def test_variants_render_the_same_faces(ict_model):
    cfg = validate_config({"render": {"size": 48, "backend": "numba"},
                           "face_model": {"identity_modes": 4}})
    scene = {"yaw": [0.0], "pitch": [0.0], "roll": [0.0], "camera_distance_offset": [0.0],
             "ambient": [0.4], "light_azimuth": [10.0], "light_elevation": [20.0],
             "skin_tone": [0.3], "intensity": [1.0]}
    faces = Faces(np.zeros((1, 4)), {k: np.asarray(v) for k, v in scene.items()},
                  ("happiness", "neutral"))
    by_name = {v.name: v for v in default_variants()}
    old, new = by_name["old"], by_name["+au4"]
    img_old, box_old = render_faces(ict_model, cfg, faces, old)
    img_new, box_new = render_faces(ict_model, cfg, faces, new)
    assert img_old.shape == img_new.shape == (2, 48, 48, 3)
    # the neutral face is the same mesh: only the framing (fov 20 -> 15) scales its box
    ratio = (box_new[1, 2:] - box_new[1, :2]) / (box_old[1, 2:] - box_old[1, :2])
    assert np.allclose(ratio, np.tan(np.radians(10)) / np.tan(np.radians(7.5)), rtol=0.03)
    again, _ = render_faces(ict_model, cfg, faces, new)
    assert again.tobytes() == img_new.tobytes()
