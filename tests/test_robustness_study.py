"""``facesym robustness`` on a tiny real study: two real classifiers re-classify the stored
renders with their packages' own preprocessing; cubes, agreement and both verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facesym.classifiers.zoo import load_classifier, load_zoo, zoo_entry
from facesym.cli import main
from facesym.config import validate_config
from facesym.cubes import open_cube
from facesym.resources import fetch_resource
from facesym.robustness import CHANGES, HOLDS, run_robustness
from facesym.stages.params import stage_config
from facesym.stages.runner import run_stage
from facesym.stages.shards import open_shards, shard_name, shard_range
from facesym.stats import omnibus_table
from facesym.stats.verdict import verdicts

CLASSIFIERS = ["mini_xception", "face_api"]  # two recipes: fer (grey 64²), face_api (RGB 112²)
N_FACES, PER_SHARD = 6, 3


@pytest.fixture(scope="module")
def study(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny study (2 emotions × 3 faces in 2 shards, 2 classifiers), its stages run
    in process exactly as the rules run them, in the workflow's results layout."""
    for rid in ("ict_facekit", "fer", "face_api"):
        fetch_resource(rid, cache_dir)
    cfg = validate_config({
        "study": "tiny", "seed": 11, "resources": {"cache_dir": str(cache_dir)},
        "face_model": {"identity_modes": 4},
        "scenes": {"faces_per_emotion": 3, "emotions": ["happiness", "neutral"]},
        "intervention": {"strengths": [0.0, 0.5, 1.0]},
        "render": {"size": 96, "batch_size": 9},
        "classify": {"flip": False},
        "classifiers": CLASSIFIERS, "shards": {"faces_per_shard": PER_SHARD}})
    root = tmp_path_factory.mktemp("study") / "results" / "tiny"
    model = str(root / "face_model" / "ict.npz")
    (root / "face_model").mkdir(parents=True)  # Snakemake makes output folders
    run_stage("face_model", {"stamp": str(cache_dir / "ict_facekit.verified.json")},
              {"model": model}, stage_config(cfg, "face_model"), None)
    zoo = load_zoo()
    cubes = []
    for k in range(2):
        shard, faces = shard_name(k), shard_range(k, N_FACES, PER_SHARD)
        scenes, renders = (str(root / d / f"{shard}.zarr") for d in ("scenes", "renders"))
        (root / "classify").mkdir(exist_ok=True)
        run_stage("scenes", {"model": model}, {"scenes": scenes},
                  stage_config(cfg, "scenes", faces=faces), None)
        run_stage("render", {"model": model, "scenes": scenes}, {"renders": renders},
                  stage_config(cfg, "render", faces=faces), None, threads=2)
        for name in CLASSIFIERS:
            cube = str(root / "classify" / name / f"{shard}.zarr")
            run_stage("classify", {"renders": renders}, {"cube": cube},
                      stage_config(cfg, "classify", classifier=name,
                                   zoo_entry=zoo_entry(name, zoo), faces=faces), None, threads=2)
    cubes = [str(root / "classify" / n / f"{shard_name(k)}.zarr") for n in CLASSIFIERS
             for k in range(2)]
    stats = root / "stats"
    outputs = {key: str(stats / file) for key, file in (
        ("tests", "tests.zarr"), ("csv", "summary.csv"), ("md", "summary.md"),
        ("omnibus", "omnibus.csv"), ("derivatives", "derivatives.csv"), ("ols", "ols.csv"),
        ("laterality", "laterality.csv"), ("figure", "dose.png"), ("effects", "fx.png"))}
    stats.mkdir()
    run_stage("stats", {"cubes": cubes}, outputs, stage_config(cfg, "stats"), None)
    return root


@pytest.fixture(scope="module")
def result(study: Path, cache_dir: Path):
    """One robustness run over every classifier of the study."""
    return run_robustness(study, cache_dir=cache_dir, progress=False)


def test_original_cubes_are_the_classifiers_own_preprocessing(study: Path, result,
                                                              cache_dir: Path) -> None:
    out = study / "robustness"
    assert result.paths == {"csv": out / "robustness.csv", "md": out / "robustness.md"}
    for name in CLASSIFIERS:
        for k in range(2):
            store = out / name / f"{shard_name(k)}.zarr"
            cube = open_cube(store)
            entry = json.loads(cube.attrs["zoo_entry"])
            assert entry["preprocess"] == "original" and cube.attrs["preprocess"] == "original"
            assert json.loads(cube.attrs["inputs"])["renders"]["path"] == str(
                study / "renders" / f"{shard_name(k)}.zarr")
            assert cube.attrs["stage"] == "robustness" and "data_digest" in cube.attrs
    # the stored probabilities are what the classifier gives with its own pipeline, and not
    # what it gives with facesym's (the two preprocessings differ)
    name = "face_api"
    entry = {**zoo_entry(name, load_zoo()), "preprocess": "original"}
    clf = load_classifier(name, {name: entry}, cache_dir=cache_dir)
    renders = open_cube(study / "renders" / "shard-00001.zarr")
    images = renders["image"].isel(face=0).values.reshape(-1, *renders["image"].shape[3:])
    boxes = renders["face_box"].isel(face=0).values.reshape(-1, 4)
    _, probs = clf.predict(images, boxes)
    stored = open_cube(out / name / "shard-00001.zarr")["prob_native"].isel(face=0).values
    np.testing.assert_allclose(stored.reshape(probs.shape), probs, atol=1e-6)
    facesym = open_cube(study / "classify" / name / "shard-00001.zarr")["prob_native"]
    assert np.abs(facesym.isel(face=0).values - stored).max() > 1e-3


def test_table_has_both_verdicts_and_the_agreement(study: Path, result) -> None:
    table = pd.read_csv(result.paths["csv"])
    assert list(table["classifier"]) == CLASSIFIERS
    assert list(table["original_preprocess"]) == ["fer", "face_api"]
    # the facesym verdicts are the stats stage's own (same functions, settings, seed)
    stage = verdicts(pd.read_csv(study / "stats" / "omnibus.csv")).set_index("classifier")
    assert list(table["verdict_facesym"]) == [stage.loc[c, "verdict"] for c in CLASSIFIERS]
    recorded = omnibus_table(open_cube(study / "stats" / "tests.zarr").load())
    mine = result.omnibus["facesym"]
    for column in ("mean_diff", "ci_low", "ci_high", "p_maxT"):
        np.testing.assert_array_equal(mine[column], recorded[column], err_msg=column)
    # the original verdicts come from the original cubes: their contrasts differ
    orig = result.omnibus["original"]
    assert not np.allclose(orig["mean_diff"], mine["mean_diff"], equal_nan=True)
    for row in table.to_dict("records"):
        assert row["verdict_robust"] == (HOLDS if row["verdict_facesym"] ==
                                         row["verdict_original"] else CHANGES)
        for mode in ("facesym", "original"):
            for side in ("left", "right"):
                low, mean, high = (row[f"{side}_vs_control_{mode}_{f}"]
                                   for f in ("ci_low", "mean_diff", "ci_high"))
                assert low <= mean <= high
    assert (table["images"] == N_FACES * 3 * 3).all()
    assert ((table["top1_agreement"] > 0) & (table["top1_agreement"] <= 1)).all()
    assert (table["mean_abs_dp"] > 1e-3).all() and (table["max_abs_dp"] >= table["mean_abs_dp"]
                                                    ).all()
    md = result.paths["md"].read_text()
    assert md.startswith("# Robustness of the verdicts to preprocessing")
    assert "| classifier | original recipe | verdict (facesym) | verdict (original) |" in md
    assert "left − control (original)" in md and "all-original family" in md
    assert "## Agreement of the outputs" in md and "Study statistics: facesym" in md


def test_second_run_reuses_cubes_and_a_subset_keeps_the_family(study: Path, result,
                                                               cache_dir: Path) -> None:
    store = study / "robustness" / "face_api" / "shard-00000.zarr"
    made = (store / "zarr.json").stat().st_mtime_ns
    sub = run_robustness(study, ["face_api"], cache_dir=cache_dir, progress=False)
    assert (store / "zarr.json").stat().st_mtime_ns == made  # up to date: not re-classified
    assert list(sub.table["classifier"]) == ["face_api"]
    # mini_xception keeps its facesym cube in the original family
    kept = sub.omnibus["original"].query("classifier == 'mini_xception'")
    np.testing.assert_allclose(kept["mean_diff"], result.omnibus["facesym"].query(
        "classifier == 'mini_xception'")["mean_diff"])
    assert "mini_xception" not in sub.table["classifier"].values
    assert "facesym cubes kept" in sub.paths["md"].read_text()
    assert open_shards([store], ["prob"])["prob"].sizes["face"] == PER_SHARD


def test_cli_names_what_is_wrong(study: Path, tmp_path: Path, capsys) -> None:
    assert main(["robustness", str(study), "--classifiers", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "allowed values: mini_xception, face_api" in err
    assert main(["robustness", str(tmp_path)]) == 2
    assert "is not a finished study" in capsys.readouterr().err
