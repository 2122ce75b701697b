"""``expressions.prototypes_file``: a study names a prototypes file, the scenes use it and record
where it came from, bad files are refused naming the key, and the file is a workflow input."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from facesym.config import ConfigError, validate_config
from facesym.cubes import open_cube
from facesym.expressions import (
    PROTOTYPES_FORMAT,
    prototypes_digest,
    prototypes_source_markdown,
)
from facesym.provenance import file_digest as file_sha256
from facesym.resources import fetch_resource
from facesym.stages import scenes as scenes_stage
from facesym.stages.params import stage_config

REPO = Path(__file__).resolve().parents[1]
EMOTIONS = ["happiness", "surprise", "neutral"]
# deliberately unlike the literature (happiness without AU6, surprise without the jaw drop)
CUSTOM = {"happiness": {"AU12": 0.6, "AU25": 0.3}, "surprise": {"AU1": 0.5, "AU2": 0.9}}


def write_file(path: Path, prototypes: dict, *, provenance: dict | None = None,
               carried: str | None = None, fmt: str = PROTOTYPES_FORMAT) -> Path:
    """A prototypes file in the format ``facesym calibrate`` writes."""
    body: dict = {"format": fmt}
    if provenance is not None:
        body["provenance"] = provenance
    if carried is not None:
        body["prototypes_sha256"] = carried
    body["prototypes"] = prototypes
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def study(**expressions) -> dict:
    """A small raw study config on the test model (10 identity modes)."""
    return {"seed": 3, "face_model": {"identity_modes": 10},
            "scenes": {"faces_per_emotion": 2, "emotions": EMOTIONS},
            "expressions": expressions}


def test_file_replaces_the_prototypes_it_covers(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_file(tmp_path / "p.yaml", CUSTOM)
    cfg = validate_config(study(prototypes_file="p.yaml"))
    literature = validate_config(study())
    assert cfg["expressions"]["prototypes"]["happiness"] == CUSTOM["happiness"]
    assert cfg["expressions"]["prototypes"]["neutral"] == {}
    assert cfg["expressions"]["prototypes"]["fear"] == literature["expressions"]["prototypes"][
        "fear"]
    assert validate_config(cfg)["expressions"] == cfg["expressions"]  # idempotent
    # the scenes params carry the file's prototypes and name it; other stages get the tables
    params = stage_config(cfg, "scenes", faces=[0, 6])
    assert params["expressions"]["prototypes_file"] == "p.yaml"
    assert params["expressions"]["prototypes"]["surprise"] == CUSTOM["surprise"]
    assert params != stage_config(literature, "scenes", faces=[0, 6])
    assert "prototypes_file" not in stage_config(literature, "scenes", faces=[0, 6])[
        "expressions"]  # studies without a file keep their params
    assert "prototypes_file" not in stage_config(cfg, "contact_sheet")["expressions"]


def run_scenes(cfg: dict, model_path: Path, out: Path, inputs: dict | None = None
               ) -> tuple[np.ndarray, dict]:
    """The scenes stage on faces 0..5; (expression weights, store attributes)."""
    params = stage_config(cfg, "scenes", faces=[0, 6])
    scenes_stage.run({"model": str(model_path), **(inputs or {})}, {"scenes": str(out)}, params,
                     logging.getLogger("test"))
    cube = open_cube(out)
    return cube["expression_weight"].values, dict(cube.attrs)


@pytest.fixture(scope="module")
def model_path(ict_model, tmp_path_factory) -> Path:
    """The test ICT model on disk, as the scenes stage reads it."""
    path = tmp_path_factory.mktemp("model") / "ict.npz"
    ict_model.save(path)
    return path


def test_scenes_use_the_file_and_record_it(tmp_path: Path, monkeypatch, model_path) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_file(tmp_path / "p.yaml", CUSTOM)
    cfg = validate_config(study(prototypes_file="p.yaml"))
    lit_w, lit_attrs = run_scenes(validate_config(study()), model_path, tmp_path / "lit.zarr")
    w, attrs = run_scenes(cfg, model_path, tmp_path / "file.zarr", {"prototypes": "p.yaml"})
    emotion = open_cube(tmp_path / "file.zarr")["emotion"].values
    for e in ("happiness", "surprise"):
        assert not np.allclose(w[emotion == e], lit_w[emotion == e]), e
    np.testing.assert_array_equal(w[emotion == "neutral"], lit_w[emotion == "neutral"])
    source = json.loads(attrs["prototypes_source"])
    assert source == {"kind": "file", "path": "p.yaml", "sha256": file_sha256(path),
                      "calibration": {}}
    assert json.loads(attrs["inputs"])["prototypes"]["digest"] == file_sha256(path)
    assert json.loads(lit_attrs["prototypes_source"])["kind"] == "literature"
    assert prototypes_source_markdown(lit_attrs) == (
        "Prototypes: literature FACS prototypes (sources in expressions.yaml).")
    text = prototypes_source_markdown(attrs)
    assert text.startswith("Prototypes: file `p.yaml` (sha256 " + file_sha256(path)[:12])
    assert "written by hand" in text
    # a file edited after the workflow read it: the stage refuses to disagree with its params
    write_file(path, {**CUSTOM, "happiness": {"AU12": 0.9}})
    with pytest.raises(ValueError, match="differs from the prototypes the workflow read"):
        run_scenes(cfg, model_path, tmp_path / "stale.zarr", {"prototypes": "p.yaml"})


def test_config_overrides_are_named_in_the_literature_source(tmp_path: Path, model_path
                                                             ) -> None:
    cfg = validate_config(study(prototypes={"happiness": {"AU12": 0.5}}))
    _, attrs = run_scenes(cfg, model_path, tmp_path / "s.zarr")
    assert prototypes_source_markdown(attrs).endswith(
        "overridden in the study config for happiness.")


GOOD = {"happiness": {"AU12": 0.6}, "surprise": {"AU1": 0.5}}

# name: (file prototypes or None for no file, extra file/config settings, message)
BAD: dict[str, tuple] = {
    "missing_file": (None, {}, r"config key expressions.prototypes_file: no file .*nope.yaml"),
    "wrong_format": (GOOD, {"fmt": "other/1"}, "is not a facesym prototypes file"),
    "not_covered": ({"happiness": {"AU12": 0.6}}, {}, "has no prototype for surprise"),
    "unknown_au": ({**GOOD, "surprise": {"AU99": 0.5}}, {},
                   "surprise uses unknown action unit 'AU99'"),
    "negative": ({**GOOD, "surprise": {"AU1": -0.5}}, {}, r"surprise.AU1 = -0.5 must be"),
    "beyond_facs_bounds": ({**GOOD, "surprise": {"AU26": 1.5}}, {},
                           r"surprise.AU26 = 1.5 lies outside its bounds \[0, 1.25\]"),
    "beyond_search_bounds": (GOOD, {"provenance": {"bounds": {"AU12": [0.0, 0.5]}}},
                             r"happiness.AU12 = 0.6 lies outside its bounds \[0, 0.5\]"),
    "edited_after_calibration": (GOOD, {"carried": "0" * 64}, "edited after `facesym "
                                 "calibrate`"),
    "sha256_mismatch": (GOOD, {"sha256": "0" * 64},
                        "config key expressions.prototypes_sha256: .* has SHA-256"),
    "clash": (GOOD, {"prototypes": {"happiness": {"AU12": 0.9}}},
              "and expressions.prototypes both give happiness"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_are_refused_naming_the_key(name: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    protos, extra, message = BAD[name]
    expressions = {"prototypes_file": "nope.yaml"}
    if protos is not None:
        write_file(tmp_path / "p.yaml", protos, provenance=extra.get("provenance"),
                   carried=extra.get("carried"), fmt=extra.get("fmt", PROTOTYPES_FORMAT))
        expressions = {"prototypes_file": "p.yaml"}
    if "sha256" in extra:
        expressions["prototypes_sha256"] = extra["sha256"]
    if "prototypes" in extra:
        expressions["prototypes"] = extra["prototypes"]
    with pytest.raises(ConfigError, match=message) as err:
        validate_config(study(**expressions))
    assert "config key expressions.prototypes_" in str(err.value)


def test_checksums_that_match_are_accepted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_file(tmp_path / "p.yaml", GOOD, carried=prototypes_digest(GOOD))
    cfg = validate_config(study(prototypes_file="p.yaml", prototypes_sha256=file_sha256(path),
                                prototypes={"happiness": {"AU12": 0.6}}))  # same values: fine
    assert cfg["expressions"]["prototypes"]["surprise"] == {"AU1": 0.5}
    with pytest.raises(ConfigError, match="prototypes_sha256: needs expressions.prototypes_file"):
        validate_config(study(prototypes_sha256=file_sha256(path)))


# ----------------------------------------------------------------------------- the workflow

TINY = {
    "study": "protos", "seed": 5,
    "scenes": {"faces_per_emotion": 3, "emotions": ["happiness", "neutral"]},
    "face_model": {"identity_modes": 4},
    "intervention": {"strengths": [0.0, 1.0]},
    "render": {"size": 64, "batch_size": 12},
    "classifiers": ["mini_xception"],
    "contact_sheet": {"faces": [0]},
    "expressions": {"prototypes_file": "protos/prototypes.yaml"},
}
CALIBRATION = {"search_set": ["mini_xception", "big_xception"], "evaluate_only": ["face_api"],
               "leave_one_out": True, "objective": "mean_p",
               "identities": {"search": {"seed": 4321, "n": 8}, "holdout": {"seed": 8765, "n": 8}},
               "budget": {"design": 8, "evaluations": 24},
               "bounds": {"AU12": [0.0, 1.0], "AU25": [0.0, 1.0]},
               "held_out_results": {"happiness": {
                   "mini_xception": {"written": {"rate": [0.5, 0.75], "p": [0.4, 0.6]},
                                     "loco": {"rate": [0.5, 0.625], "p": [0.4, 0.5]}}}}}


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--configfile", str(work / "tiny.yaml"), "--cores", "2",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ}, timeout=900)


@pytest.mark.slow
def test_workflow_uses_the_file_and_reruns_from_the_scenes(tmp_path: Path, cache_dir: Path
                                                           ) -> None:
    """A tiny real study names a prototypes file: its scenes carry the file's prototypes, the
    scenes store and the manipulation check name it, and editing the file re-runs the scenes
    and what depends on them, not the face model."""
    for rid in ("ict_facekit", "fer"):
        fetch_resource(rid, cache_dir)
    protos = {"happiness": {"AU12": 0.7, "AU25": 0.2}}
    (tmp_path / "protos").mkdir()
    path = write_file(tmp_path / "protos" / "prototypes.yaml", protos, provenance=CALIBRATION,
                      carried=prototypes_digest(protos))
    cfg = {**TINY, "resources": {"cache_dir": str(cache_dir)}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = _snakemake(tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results" / "protos"
    scenes = open_cube(res / "scenes" / "shard-00000.zarr")
    source = json.loads(scenes.attrs["prototypes_source"])
    assert source["path"] == "protos/prototypes.yaml" and source["sha256"] == file_sha256(path)
    assert source["calibration"]["search_set"] == ["mini_xception", "big_xception"]
    # the weights are the file's prototype × intensity (AU12 and AU25 only)
    from facesym.expressions import prototype_weights
    from facesym.facemodel.base import FaceModel

    model = FaceModel.load(res / "face_model" / "ict.npz")
    happy = scenes["emotion"].values == "happiness"
    tables = validate_config({**TINY, "expressions": {}})["expressions"]
    want = prototype_weights("happiness", {**tables, "prototypes": protos}, model)
    literature = prototype_weights("happiness", tables, model)
    got = scenes["expression_weight"].values[happy] / scenes["intensity"].values[happy, None]
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=1e-6)
    assert not np.allclose(want, literature)
    md = (res / "stats" / "manipulation_check.md").read_text()
    assert "Prototypes: calibrated file `protos/prototypes.yaml` (sha256 " in md
    assert "searched on classifiers [mini_xception, big_xception] (held out: face_api)" in md
    assert "search set 0.50 → 0.75; left out of the search 0.50 → 0.62" in md
    # nothing to do; then an edit of the file (its comment only) re-runs scenes and downstream
    dry = _snakemake(tmp_path, "--dry-run")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    path.write_text("# edited\n" + path.read_text())
    dry = _snakemake(tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-3000:]
    rules = set(re.findall(r"^(?:local)?rule (\w+):", dry.stdout, flags=re.M))
    assert rules == {"scenes", "render", "classify", "stats", "manipulation_check",
                     "contact_sheet", "all"}, dry.stdout[-3000:]
