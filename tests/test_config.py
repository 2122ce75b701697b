"""Configuration: defaults from the schema, and clear errors naming the key and what is allowed."""

from __future__ import annotations

import pytest

from facesym.config import ConfigError, digest, stage_config, validate_config


def test_empty_config_gets_every_default():
    cfg = validate_config({})
    assert cfg["render"]["backend"] == "torch"
    assert cfg["intervention"]["strengths"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cfg["scenes"]["light"]["ambient"] == {"low": 0.35, "high": 0.5}
    assert "happiness" in cfg["expressions"]["prototypes"]


def test_default_config_file_is_valid(default_config):
    assert default_config["study"] == "default"
    assert set(default_config["scenes"]["emotions"]) >= {"anger", "neutral"}


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ({"render": {"backend": "opengl"}}, "render.backend", "torch, kaolin"),
        ({"stats": {"correction": "holmes"}}, "stats.correction", "holm"),
        ({"intervention": {"sides": ["up"]}}, "intervention.sides.0", "left, right, control"),
        ({"scenes": {"faces_per_emotion": 0}}, "scenes.faces_per_emotion", "minimum 1"),
        ({"render": {"sise": 3}}, "render", "allowed keys: backend"),
        ({"intervention": {"strengths": [0.0, 1.5]}}, "intervention.strengths.1", "maximum 1"),
    ],
)
def test_bad_value_names_key_and_allowed(override, key, allowed):
    with pytest.raises(ConfigError) as err:
        validate_config(override)
    msg = str(err.value)
    assert f"config key {key}:" in msg
    assert allowed in msg


def test_strength_grid_must_contain_zero():
    with pytest.raises(ConfigError, match="intervention.strengths: must contain 0"):
        validate_config({"intervention": {"strengths": [0.5, 1.0]}})


def test_emotion_without_prototype_is_rejected():
    cfg = {"expressions": {"prototypes": {"anger": {"AU99": 1.0}}}}
    with pytest.raises(ConfigError, match="unknown action unit 'AU99'"):
        validate_config(cfg)


def test_uniform_range_low_above_high():
    with pytest.raises(ConfigError, match="scenes.intensity: low 1.0 > high 0.5"):
        validate_config({"scenes": {"intensity": {"low": 1.0, "high": 0.5}}})


def test_user_prototypes_merge_over_builtin():
    cfg = validate_config({"expressions": {"prototypes": {"happiness": {"AU12": 0.5}}}})
    assert cfg["expressions"]["prototypes"]["happiness"] == {"AU12": 0.5}
    assert "sadness" in cfg["expressions"]["prototypes"]


def test_stage_digest_changes_only_with_its_keys():
    a = validate_config({})
    b = validate_config({"stats": {"alpha": 0.01}})
    assert digest(stage_config(a, "render")) == digest(stage_config(b, "render"))
    assert digest(stage_config(a, "stats")) != digest(stage_config(b, "stats"))


def test_command_line_strings_are_parsed_back():
    cfg = validate_config({"stats": {"alpha": "0.01"}, "render": {"size": "96"}})
    assert cfg["stats"]["alpha"] == 0.01 and cfg["render"]["size"] == 96
    with pytest.raises(ConfigError, match="config key stats.alpha"):
        validate_config({"stats": {"alpha": "small"}})


def test_flame_needs_path_and_landmarks():
    with pytest.raises(ConfigError, match="config key face_model.flame.path: required"):
        validate_config({"face_model": {"name": "flame"}})
    cfg = validate_config({"face_model": {"name": "flame",
                                          "flame": {"path": "x.pkl", "landmarks": "l.npy"}}})
    assert cfg["face_model"]["flame"]["expression_modes"] == 50
