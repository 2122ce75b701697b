"""Scene sampling: one seeded stream per factor and face."""

from __future__ import annotations

import copy

import numpy as np

from facesym.config import validate_config
from facesym.scenes import sample_scenes

FACTOR_VARS = ["identity", "intensity", "yaw", "pitch", "roll", "light_azimuth",
               "light_elevation", "ambient", "skin_tone", "camera_distance_offset"]


def _cfg(**scenes):
    return validate_config({"scenes": scenes, "face_model": {"identity_modes": 10}})


def test_adding_faces_keeps_existing_faces_bit_identical(ict_model):
    small = sample_scenes(_cfg(faces_per_emotion=2), ict_model)
    big = sample_scenes(_cfg(faces_per_emotion=4), ict_model)
    n = small.sizes["face"]
    assert big.sizes["face"] == 2 * n
    for var in [*FACTOR_VARS, "expression_weight", "emotion"]:
        np.testing.assert_array_equal(big[var].values[:n], small[var].values)


def test_changing_one_distribution_leaves_other_factors(ict_model):
    base = _cfg(faces_per_emotion=2)
    other = copy.deepcopy(base)
    other["scenes"]["intensity"] = {"low": 0.2, "high": 0.3}
    a, b = sample_scenes(base, ict_model), sample_scenes(other, ict_model)
    assert not np.array_equal(a["intensity"].values, b["intensity"].values)
    for var in [v for v in FACTOR_VARS if v != "intensity"]:
        np.testing.assert_array_equal(a[var].values, b[var].values)


def test_balanced_emotions_and_weights(ict_model):
    ds = sample_scenes(_cfg(faces_per_emotion=3), ict_model)
    emotions = [str(e) for e in ds["emotion"].values]
    assert all(emotions.count(e) == 3 for e in set(emotions))
    neutral = np.array(emotions) == "neutral"
    assert (ds["expression_weight"].values[neutral] == 0).all()
    assert (ds["expression_weight"].values[~neutral].max(axis=1) > 0).all()
    lo, hi = 0.8, 1.0
    assert ((ds["intensity"] >= lo) & (ds["intensity"] <= hi)).all()


def test_seed_changes_draws(ict_model):
    a = sample_scenes(_cfg(faces_per_emotion=1), ict_model)
    cfg = _cfg(faces_per_emotion=1)
    cfg["seed"] = 7
    b = sample_scenes(cfg, ict_model)
    assert not np.array_equal(a["identity"].values, b["identity"].values)


def test_editing_one_pose_angle_keeps_the_others_and_the_quantiles(ict_model):
    from scipy import stats

    base = _cfg(faces_per_emotion=2)
    other = copy.deepcopy(base)
    other["scenes"]["pose_deg"]["yaw"] = {"dist": "normal", "mean": 10.0, "sd": 6.0}
    a, b = sample_scenes(base, ict_model), sample_scenes(other, ict_model)
    np.testing.assert_array_equal(a["pitch"].values, b["pitch"].values)
    np.testing.assert_array_equal(a["roll"].values, b["roll"].values)
    # the same quantile of the new distribution
    np.testing.assert_allclose(stats.norm.cdf(a["yaw"].values, 0, 3),
                               stats.norm.cdf(b["yaw"].values, 10, 6), atol=1e-12)


def test_distribution_families(ict_model):
    cfg = _cfg(faces_per_emotion=5)
    cfg["scenes"]["intensity"] = {"dist": "truncnormal", "mean": 0.9, "sd": 0.2, "low": 0.7,
                                  "high": 1.0}
    cfg["scenes"]["appearance"]["skin_tone"] = {"dist": "constant", "value": 0.25}
    ds = sample_scenes(cfg, ict_model)
    assert ((ds["intensity"] >= 0.7) & (ds["intensity"] <= 1.0)).all()
    assert (ds["skin_tone"] == 0.25).all()
    assert "truncnormal" in ds["intensity"].attrs["distribution"]


def test_bad_distribution_is_named():
    import pytest

    from facesym.config import ConfigError

    with pytest.raises(ConfigError, match=r"config key scenes.pose_deg.yaw: .*allowed: .*normal"):
        validate_config({"scenes": {"pose_deg": {"yaw": {"dist": "normal", "sd": 3}}}})
