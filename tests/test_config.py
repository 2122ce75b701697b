"""Configuration: defaults from the schema, and clear errors naming the key and what is allowed."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.cli import parse_config

from facesym.config import (
    ConfigError,
    merged_config,
    read_yaml,
    validate_config,
    validate_study_config,
)

REPO = Path(__file__).resolve().parents[1]


def test_empty_config_gets_every_default():
    cfg = validate_config({})
    assert cfg["render"]["backend"] == "numba"
    assert cfg["intervention"]["strengths"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cfg["scenes"]["light"]["ambient"] == {"low": 0.35, "high": 0.5}
    assert "happiness" in cfg["expressions"]["prototypes"]


def test_default_config_file_is_valid(default_config):
    assert default_config["study"] == "default"
    assert set(default_config["scenes"]["emotions"]) >= {"anger", "neutral"}


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ({"render": {"backend": "opengl"}}, "render.backend", "torch, numba, kaolin"),
        ({"stats": {"correction": "holmes"}}, "stats.correction", "holm"),
        ({"intervention": {"sides": ["up"]}}, "intervention.sides.0", "left, right, control"),
        ({"scenes": {"faces_per_emotion": 0}}, "scenes.faces_per_emotion", "minimum 1"),
        ({"render": {"sise": 3}}, "render", "allowed keys: appearance, backend"),
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


# ----------------------------------------------------------------------------- one truth


def test_schema_defaults_are_the_default_study():
    """config/config.yaml only names the study: the schema's defaults are what it runs."""
    from_file = validate_config(read_yaml(REPO / "config" / "config.yaml"))
    assert from_file == validate_config({})
    # the default study's size: 15 faces per emotion (config/paper.yaml is the powered one)
    assert from_file["scenes"]["faces_per_emotion"] == 15
    assert from_file["contact_sheet"]["faces"] == [0, 1]
    assert len(from_file["classifiers"]) == 6


def test_registries_are_package_data_found_outside_a_checkout(tmp_path):
    """The schema, zoo and tables load through importlib.resources, from any directory."""
    code = ("from facesym.config import validate_study_config as v; "
            "from facesym.classifiers.zoo import load_zoo; "
            "c = v({}); print(len(load_zoo()), c['scenes']['faces_per_emotion'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["15", "15"]
    src = (REPO / "src" / "facesym" / "config.py").read_text()
    assert "parents[" not in src


def test_render_backend_numba_is_allowed():
    assert validate_config({"render": {"backend": "numba"}})["render"]["backend"] == "numba"


# ----------------------------------------------------------------------------- bug 4


def _cli(*entries: str) -> dict:
    """What Snakemake makes of ``--config entries`` (nested scalars stay strings)."""
    return parse_config(list(entries))


def test_nested_command_line_values_are_parsed_back():
    raw = _cli("scenes={intensity: {low: 0.5, high: 1.0}, "
               "pose_deg: {yaw: {dist: truncnormal, mean: 0, sd: 2, low: -5, high: 5}}}",
               "expressions={prototypes: {happiness: {AU12: 0.7}}, "
               "action_units: {AU12: {mouthSmile_L: 0.9, mouthSmile_R: 0.9}}}",
               "intervention={strengths: [0, 0.5, 1]}", "stats={n_flips: null}")
    assert raw["scenes"]["intensity"]["low"] == "0.5"  # Snakemake leaves it a string
    cfg = validate_config(raw)
    assert cfg["scenes"]["intensity"] == {"low": 0.5, "high": 1.0}
    assert cfg["scenes"]["pose_deg"]["yaw"] == {"dist": "truncnormal", "mean": 0, "sd": 2,
                                                "low": -5, "high": 5}
    assert cfg["expressions"]["prototypes"]["happiness"] == {"AU12": 0.7}
    assert cfg["expressions"]["action_units"]["AU12"]["mouthSmile_L"] == 0.9
    assert cfg["intervention"]["strengths"] == [0, 0.5, 1]
    assert cfg["stats"]["n_flips"] is None


def test_nested_command_line_value_of_wrong_type_still_refused():
    with pytest.raises(ConfigError, match=r"scenes\.intensity\.low: 'lots' is not of type"):
        validate_config(_cli("scenes={intensity: {low: lots, high: 1.0}}"))


# ----------------------------------------------------------------------------- bug 5


@pytest.mark.parametrize("study", ["..", ".", "", "/tmp/x", "a/b", "../up", ".hidden", "-x"])
def test_study_must_be_a_folder_name(study):
    with pytest.raises(ConfigError, match="config key study: .*results/<study>"):
        validate_config({"study": study})


def test_study_names_that_stay_valid():
    for study in ("default", "pilot_2", "v1.2-b"):
        assert validate_config({"study": study})["study"] == study


# ----------------------------------------------------------------------------- bug 3


def test_contact_sheet_face_beyond_the_study_names_key_and_range():
    with pytest.raises(ConfigError) as err:
        validate_config({"contact_sheet": {"faces": [1000]}})
    assert "config key contact_sheet.faces: [1000]" in str(err.value)
    assert "0 to 104" in str(err.value)
    cfg = {"scenes": {"faces_per_emotion": 1, "emotions": ["anger", "neutral"]},
           "contact_sheet": {"faces": [1]}}
    assert validate_config(cfg)["contact_sheet"]["faces"] == [1]
    with pytest.raises(ConfigError, match="0 to 1;"):
        validate_config({**cfg, "contact_sheet": {"faces": [2]}})


@pytest.mark.parametrize("override", [
    {"scenes": {"faces_per_emotion": 1}, "contact_sheet": {"faces": [0]}},
    {"intervention": {"sides": ["left"]}},
    {"scenes": {"emotions": ["neutral"], "faces_per_emotion": 2}},
])
def test_small_designs_are_not_refused(override):
    validate_study_config(override)


# ----------------------------------------------------------------------------- bug 8


@pytest.mark.parametrize(("override", "key", "bound"), [
    ({"scenes": {"faces_per_emotion": 10_000_000}}, "scenes.faces_per_emotion",
     "maximum 10000"),
    ({"render": {"batch_size": 1_000_000}}, "render.batch_size", "maximum 1024"),
    ({"classify": {"batch_size": 1_000_000}}, "classify.batch_size", "maximum 4096"),
])
def test_upper_bounds(override, key, bound):
    with pytest.raises(ConfigError, match=f"config key {key}: .*{bound}"):
        validate_config(override)


def test_large_study_logs_its_estimate(caplog):
    with caplog.at_level(logging.WARNING, logger="facesym.config"):
        validate_study_config({"scenes": {"faces_per_emotion": 1000}})
    msg = caplog.text
    assert "large study 'default': 7,000 faces, 105,000 images" in msg and "GB" in msg
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="facesym.config"):
        validate_study_config({})
    assert "large study" not in caplog.text


@pytest.mark.parametrize("key", ["render", "classify"])
def test_cuda_on_a_cpu_only_torch_is_refused(monkeypatch, key):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    with pytest.raises(ConfigError, match=f"config key {key}.device: 'cuda:1' needs a CUDA "
                                          "build of torch"):
        validate_study_config({key: {"device": "cuda:1"}})
    # a CUDA build without a visible GPU (a Slurm login node) is accepted
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert validate_study_config({key: {"device": "cuda:1"}})[key]["device"] == "cuda:1"


# ----------------------------------------------------------------------------- zoo


def _entry(**changes) -> dict:
    entry = {"format": "onnx", "weights": {"path": "w.onnx", "sha256": None},
             "input": {"size": 64, "colour": "grey", "mean": [127.5], "std": [127.5]},
             "labels": ["angry", "happy"], "output": "softmax"}
    return {**entry, **changes}


@pytest.mark.parametrize(("zoo", "needle"), [
    ({"../../../evil": _entry()}, "config key zoo: name '../../../evil' is not allowed"),
    ({"my": _entry(weights={"path": "w.onnx", "sha256": int("1" * 64)})},
     "zoo.my.weights.sha256: 1111111111111111111111111111111111111111111111111111111111111111 "
     "is not of type 'string'"),
    ({"my": _entry(weights={"path": "w.onnx", "sha256": "abc"})}, "zoo.my.weights.sha256"),
    ({"my": _entry(format="pickle")}, "config key zoo.my.format: 'pickle' is not one of"),
    ({"my": _entry(engine="litert")}, "config key zoo.my.format: 'tflite' was expected"),
    ({"my": _entry(format="tflite", engine="tensorrt")}, "zoo.my.engine: 'tensorrt'"),
    ({"my": _entry(format="keras_hdf5")}, "zoo.my.weights: 'resource' is a required"),
])
def test_zoo_schema_refuses(zoo, needle):
    with pytest.raises(ConfigError) as err:
        validate_study_config({"zoo": zoo, "classifiers": ["mini_xception"]})
    assert needle in str(err.value)


def test_study_zoo_entry_with_a_user_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = {"zoo": {"mine": _entry()}, "classifiers": ["mine"]}
    with pytest.raises(ConfigError, match=r"(?s)classifier file not found: .*w\.onnx.*"
                                          "working directory"):
        validate_study_config(cfg)
    (tmp_path / "w.onnx").write_bytes(b"x")  # relative to the working directory
    assert validate_study_config(cfg)["zoo"]["mine"]["format"] == "onnx"


def test_unknown_classifier_is_refused_by_the_validator():
    with pytest.raises(ConfigError, match="config key classifiers: unknown classifier 'nope'"):
        validate_study_config({"classifiers": ["nope"]})


# ----------------------------------------------------------------------------- files


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: s\nscenes:\n  faces_per_emotion: [1\n  emotions: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml, line 4, column \d+: YAML syntax error"):
        merged_config([bad])


def test_merged_config_layers_like_snakemake(tmp_path):
    base, mine = tmp_path / "base.yaml", tmp_path / "mine.yaml"
    base.write_text(yaml.safe_dump({"study": "b", "render": {"size": 96, "device": "cpu"}}))
    mine.write_text(yaml.safe_dump({"render": {"size": 64}}))
    cfg = merged_config([mine], {"study": "top"}, base=base)
    assert cfg == {"study": "top", "render": {"size": 64, "device": "cpu"}}
