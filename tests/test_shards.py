"""Sharded stages give the same results as one shard: scenes, renders, classifier outputs and
statistics, byte for byte; and a shard's params depend on its faces only, not the study size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from facesym.classifiers.zoo import load_zoo, zoo_entry
from facesym.config import validate_config
from facesym.cubes import data_digest, open_cube
from facesym.facemodel.base import FaceModel
from facesym.resources import fetch_resource
from facesym.scenes import sample_scenes
from facesym.stages.params import stage_config
from facesym.stages.runner import run_stage
from facesym.stages.scenes import sample_shard
from facesym.stages.shards import (
    check_faces,
    open_shards,
    shard_count,
    shard_name,
    shard_range,
    shards_of_faces,
    split_by_classifier,
)

CLASSIFIERS = ["mini_xception", "facex"]
STATS_FILES = ("summary.csv", "omnibus.csv", "derivatives.csv", "ols.csv", "laterality.csv",
               "manipulation_check.csv")


@pytest.fixture(scope="module")
def tiny(cache_dir: Path) -> dict:
    """3 emotions × 2 faces, two strengths, 64 px, two classifiers."""
    for rid in ("ict_facekit", "fer", "facex"):
        fetch_resource(rid, cache_dir)
    return validate_config({
        "study": "shards", "seed": 11,
        "resources": {"cache_dir": str(cache_dir)},
        "face_model": {"identity_modes": 10},
        "scenes": {"faces_per_emotion": 2, "emotions": ["happiness", "surprise", "neutral"]},
        "intervention": {"strengths": [0.0, 1.0]},
        "render": {"size": 64, "batch_size": 12},
        "classifiers": CLASSIFIERS,
    })


def run_layout(config: dict, model: Path, out: Path, ranges: list[list[int]]) -> Path:
    """Run scenes, render and classify per shard of ``ranges``, then the study-level stages."""
    zoo = load_zoo()
    cubes: dict[str, list[str]] = {name: [] for name in CLASSIFIERS}
    for k, faces in enumerate(ranges):
        name = shard_name(k)
        scenes, renders = out / "scenes" / f"{name}.zarr", out / "renders" / f"{name}.zarr"
        run_stage("scenes", {"model": str(model)}, {"scenes": str(scenes)},
                  stage_config(config, "scenes", faces=faces), None)
        run_stage("render", {"model": str(model), "scenes": str(scenes)},
                  {"renders": str(renders)}, stage_config(config, "render", faces=faces), None)
        for clf in CLASSIFIERS:
            cube = out / "classify" / clf / f"{name}.zarr"
            run_stage("classify", {"renders": str(renders)}, {"cube": str(cube)},
                      stage_config(config, "classify", classifier=clf,
                                   zoo_entry=zoo_entry(clf, zoo), faces=faces), None, threads=2)
            cubes[clf].append(str(cube))
    flat = [p for clf in CLASSIFIERS for p in cubes[clf]]
    stats = out / "stats"
    stats.mkdir()
    run_stage("stats", {"cubes": flat}, {
        "tests": str(stats / "tests.zarr"), "csv": str(stats / "summary.csv"),
        "md": str(stats / "summary.md"), "omnibus": str(stats / "omnibus.csv"),
        "derivatives": str(stats / "derivatives.csv"), "ols": str(stats / "ols.csv"),
        "laterality": str(stats / "laterality.csv"),
        "figure": str(stats / "dose_response.png"), "effects": str(stats / "effects.png")},
        stage_config(config, "stats"), None)
    run_stage("manipulation_check", {"cubes": flat,
                                     "scenes": str(out / "scenes" / "shard-00000.zarr")}, {
        "csv": str(stats / "manipulation_check.csv"), "md": str(stats / "manipulation_check.md"),
        "figure": str(stats / "confusion.png")}, stage_config(config, "manipulation_check"), None)
    return out


@pytest.fixture(scope="module")
def layouts(tiny: dict, ict_model: FaceModel, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny study as one shard (faces_per_shard >= N) and as three shards of two faces."""
    root = tmp_path_factory.mktemp("layouts")
    model = root / "ict.npz"
    ict_model.save(model)
    return {"one": run_layout(tiny, model, root / "one", [[0, 6]]),
            "three": run_layout(tiny, model, root / "three", [[0, 2], [2, 4], [4, 6]])}


def test_sharded_stores_equal_one_shard(layouts: dict):
    one, three = layouts["one"], layouts["three"]
    for stage in ("scenes", "renders", *(f"classify/{c}" for c in CLASSIFIERS)):
        whole = open_cube(one / stage / "shard-00000.zarr")
        joined = open_shards(sorted((three / stage).glob("shard-*.zarr")))
        assert joined.sizes["face"] == 6 and list(joined["face"].values) == list(range(6))
        assert data_digest(joined) == whole.attrs["data_digest"], stage


def test_sharded_statistics_equal_one_shard(layouts: dict):
    one, three = layouts["one"] / "stats", layouts["three"] / "stats"
    digest = [open_cube(d / "tests.zarr").attrs["data_digest"] for d in (one, three)]
    assert digest[0] == digest[1]
    for name in STATS_FILES:
        assert (one / name).read_bytes() == (three / name).read_bytes(), name


def test_shard_scenes_are_the_study_scenes(tiny: dict, ict_model: FaceModel):
    """A shard's scene values are the study's rows of those faces, whatever the study size."""
    whole = sample_scenes(tiny, ict_model)
    assert data_digest(sample_shard(tiny, ict_model, [0, 6])) == data_digest(whole)
    part = sample_shard(tiny, ict_model, [4, 6])
    assert data_digest(part) == data_digest(whole.isel(face=slice(4, 6)))
    assert list(part["emotion"].values) == ["surprise", "neutral"]  # face i: emotion i mod E


def test_shard_params_depend_on_its_faces_not_the_study_size(tiny: dict):
    bigger = {**tiny, "scenes": {**tiny["scenes"], "faces_per_emotion": 5}}  # 6 -> 15 faces
    facex = {"classifier": "facex", "zoo_entry": zoo_entry("facex", load_zoo())}
    for stage, extra in (("scenes", {}), ("render", {}), ("classify", facex)):
        for k in range(shard_count(6, 4)):
            before = shard_range(k, 6, 4)
            after = shard_range(k, 15, 4)
            a = stage_config(tiny, stage, faces=before, **extra)
            b = stage_config(bigger, stage, faces=after, **extra)
            # a full shard keeps its params; the partial last one grows, so it re-runs
            assert (a == b) == (before == after), (stage, k, before, after)
        assert "faces_per_emotion" not in stage_config(bigger, stage, faces=[0, 4], **extra).get(
            "scenes", {})


def test_shard_ranges_cover_the_study_once():
    for n, per in ((210, 70), (211, 70), (5, 70), (7, 1)):
        ranges = [shard_range(k, n, per) for k in range(shard_count(n, per))]
        assert np.concatenate([np.arange(*r) for r in ranges]).tolist() == list(range(n))
        assert all(r[1] - r[0] <= per for r in ranges)
    assert shard_count(210, 70) == 3
    assert shard_count(105, 70) == 2  # the default study
    with pytest.raises(ValueError, match="outside a study of 210 faces"):
        shard_range(3, 210, 70)
    assert shards_of_faces([0, 1, 150], 70) == [0, 2]
    assert shard_name(12) == "shard-00012"


def test_stale_or_mixed_shards_are_refused(tmp_path: Path):
    ds = xr.Dataset({"prob": ("face", np.arange(3.0))}, coords={"face": [4, 5, 6]})
    with pytest.raises(ValueError, match="faces 4..6 .* this shard is faces 4..7"):
        check_faces(ds, [4, 8], tmp_path / "renders.zarr")
    check_faces(ds, [4, 7], tmp_path / "renders.zarr")
    with pytest.raises(ValueError, match="not classifier b's shards"):
        split_by_classifier(["c/a/shard-0.zarr", "c/a/shard-1.zarr"], ["a", "b"])
    with pytest.raises(ValueError, match="do not split evenly"):
        split_by_classifier(["c/a/shard-0.zarr"] * 3, ["a", "b"])


def test_open_shards_orders_faces_and_loads_only_what_is_asked(tmp_path: Path):
    from facesym.cubes import write_dataset

    paths = []
    for k, faces in enumerate(([2, 3], [0, 1])):
        ds = xr.Dataset({"prob": ("face", np.array(faces, dtype=float)),
                         "image": (("face", "y"), np.zeros((2, 4), np.uint8))},
                        coords={"face": faces})
        write_dataset(ds, tmp_path / f"shard-{k}.zarr", {"stage": "test"})
        paths.append(tmp_path / f"shard-{k}.zarr")
    joined = open_shards(paths, ["prob"])
    assert list(joined) == ["prob"] and joined["face"].values.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(joined["prob"].values, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="same face twice"):
        open_shards([paths[0], paths[0]])

