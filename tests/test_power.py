"""Power: the omnibus bootstrap CI covers, the faces-needed formula holds, results reproduce."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from facesym.cubes import write_dataset
from facesym.power import (
    cube_differences,
    faces_needed,
    formula_half_width,
    needed_per_emotion,
    omnibus_contrast,
    power_report,
    stratum_variances,
    write_power_report,
)
from facesym.stats import effect_tests, synthetic_cube

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
#: per emotion: (mean, sd) of the differences; unequal on purpose
MEANS = np.array([-0.05, 0.0, 0.02, -0.12, -0.03, 0.04])
SDS = np.array([0.05, 0.15, 0.08, 0.20, 0.10, 0.12])


def skewed_differences(rng: np.random.Generator, n_per: int) -> xr.DataArray:
    """d[face] with a neutral stratum of zeros and skewed (shifted lognormal) emotions whose
    means are MEANS and SDs are SDS."""
    sigma = 0.8  # lognormal shape: skewness about 3
    unit_sd = np.sqrt((np.exp(sigma**2) - 1) * np.exp(sigma**2))
    raw = rng.lognormal(0.0, sigma, size=(len(EMOTIONS), n_per))
    d = MEANS[:, None] + SDS[:, None] * (raw - np.exp(sigma**2 / 2)) / unit_sd
    values = np.concatenate([d.ravel(), np.zeros(n_per)])
    emotion = np.concatenate([np.repeat(EMOTIONS, n_per), np.full(n_per, "neutral")])
    return xr.DataArray(values, dims="face", coords={"emotion": ("face", emotion)})


def test_stratified_mean_is_the_stats_omnibus():
    cube = synthetic_cube({"left": 0.3, "right": 0.1, "control": 0.05}, n_per_emotion=12,
                          noise=0.05, seed=3)
    diffs = cube_differences({"clf": cube})
    tests = effect_tests({"clf": cube}, n_flips=200)
    for comparison in diffs["comparison"].values:
        res = omnibus_contrast(diffs.sel(classifier="clf", comparison=comparison),
                               n_resamples=200)
        expected = float(tests["omnibus_mean_diff"].sel(classifier="clf",
                                                         comparison=comparison))
        assert res["mean"] == pytest.approx(expected, abs=1e-12)
        assert res["n_faces"] == 24 and res["n_emotions"] == 2  # neutral left out


@pytest.mark.parametrize("skewed", [False, True])
def test_ci_covers_the_true_omnibus(skewed):
    rng = np.random.default_rng(11)
    truth = MEANS.mean()
    covered, ratios = 0, []
    reps = 500
    for rep in range(reps):
        if skewed:
            diffs = skewed_differences(rng, 30)
        else:
            values = rng.normal(MEANS[:, None], SDS[:, None], size=(6, 30)).ravel()
            diffs = xr.DataArray(values, dims="face",
                                 coords={"emotion": ("face", np.repeat(EMOTIONS, 30))})
        res = omnibus_contrast(diffs, seed=rep, n_resamples=1000)
        covered += res["ci_low"] <= truth <= res["ci_high"]
        ratios.append(res["half_width"] / res["half_width_formula"])
    assert 0.93 <= covered / reps <= 0.97
    # the bootstrap and the formula estimate the same spread
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.02)


def test_formula_matches_the_spread_of_the_omnibus_across_studies():
    """Var(D) = Σ s_e² / (E² n): the SD of the omnibus over many simulated studies."""
    rng = np.random.default_rng(5)
    n, studies = 40, 4000
    d = rng.normal(MEANS[:, None, None], SDS[:, None, None], size=(6, studies, n))
    omnibus = d.mean(axis=2).mean(axis=0)  # mean over emotions of per-emotion means
    predicted = formula_half_width(SDS**2, n) / 1.959964
    assert np.std(omnibus, ddof=1) == pytest.approx(predicted, rel=0.04)
    # and the implementation's mean is that omnibus
    first = xr.DataArray(d[:, 0].ravel(), dims="face",
                         coords={"emotion": ("face", np.repeat(EMOTIONS, n))})
    assert omnibus_contrast(first, n_resamples=10)["mean"] == pytest.approx(omnibus[0])


def test_needed_faces_reach_the_target_in_simulation():
    """At the predicted n per emotion, simulated studies realise the target half-width
    (within 10 %). The population is a pilot study's empirical distribution, so its variance
    is known exactly."""
    rng = np.random.default_rng(21)
    pilot = skewed_differences(rng, 30)
    target = 0.01
    row = faces_needed(pilot, target, n_resamples=2000, n_sides=3, n_strengths=5).iloc[0]
    n = int(row["faces_per_emotion_needed"])
    assert n == needed_per_emotion(stratum_variances(pilot)["var"], target)
    assert n > 30  # the pilot is too small for ±0.01
    values, labels = pilot.values, pilot["emotion"].values
    realised = []
    for rep in range(60):
        picks = [rng.choice(values[labels == e], size=n) for e in EMOTIONS]
        study = xr.DataArray(np.concatenate(picks), dims="face",
                             coords={"emotion": ("face", np.repeat(EMOTIONS, n))})
        realised.append(omnibus_contrast(study, seed=rep, n_resamples=2000)["half_width"])
    assert np.mean(realised) == pytest.approx(target, rel=0.10)
    # one face fewer per emotion than needed would miss the target on the formula
    assert formula_half_width(stratum_variances(pilot)["var"], n - 1) > target
    # the study size follows from n: 7 emotions rendered (neutral too) × 3 sides × 5 strengths
    assert row["faces_needed"] == 7 * n and row["images_needed"] == 7 * n * 15
    assert row["faces_per_emotion_needed_q90"] >= n


def test_same_seed_same_bytes_and_names_seed_the_stream():
    rng = np.random.default_rng(2)
    diffs = xr.concat([skewed_differences(rng, 20) for _ in range(2)], dim="classifier")
    diffs = diffs.assign_coords(classifier=["a", "b"]).expand_dims(comparison=["left"])
    first = faces_needed(diffs, seed=9, n_resamples=3000)
    again = faces_needed(diffs, seed=9, n_resamples=3000)
    assert first.to_csv().encode() == again.to_csv().encode()
    # a cell's interval depends on its names and the seed, not on the other cells
    alone = faces_needed(diffs.sel(classifier=["b"]), seed=9, n_resamples=3000)
    assert alone.iloc[0].equals(first.iloc[1])
    d = diffs.sel(classifier="a", comparison="left")
    base = omnibus_contrast(d, classifier="a", comparison="left", seed=9)
    assert omnibus_contrast(d, classifier="a", comparison="right", seed=9)["ci_low"] \
        != base["ci_low"]
    assert omnibus_contrast(d, classifier="a", comparison="left", seed=10)["ci_low"] \
        != base["ci_low"]


def test_ten_thousand_resamples_are_fast():
    diffs = skewed_differences(np.random.default_rng(0), 30)  # 210 faces
    omnibus_contrast(diffs, n_resamples=100)
    start = time.perf_counter()
    omnibus_contrast(diffs, n_resamples=10_000)
    assert time.perf_counter() - start < 2.0  # about 0.1 s; generous for a shared machine


def test_inputs_are_checked():
    d = xr.DataArray([0.1, 0.2, 0.3], dims="face")
    with pytest.raises(ValueError, match="emotion"):
        omnibus_contrast(d)
    with pytest.raises(ValueError, match="at least 2 faces"):
        omnibus_contrast(d, ["fear", "fear", "anger"])
    with pytest.raises(ValueError, match="no faces"):
        omnibus_contrast(d, ["neutral"] * 3)


def test_power_report_on_a_study_folder(tmp_path):
    study = tmp_path / "results" / "study"
    (study / "classify").mkdir(parents=True)
    drops = {"strong": {"left": 0.3, "right": 0.0, "control": 0.0},
             "noisy": {"left": 0.1, "right": 0.1, "control": 0.1}}
    cubes = {}
    for i, (name, drop) in enumerate(drops.items()):
        cubes[name] = synthetic_cube(drop, n_per_emotion=15, noise=0.1 * (i + 1), seed=i)
        write_dataset(cubes[name], study / "classify" / f"{name}.zarr", {"classifier": name})
    write_dataset(xr.Dataset({"x": ("face", np.arange(3.0))}), study / "scenes.zarr",
                  {"config": json.dumps({"seed": 7})})

    table = power_report(study, 0.02, n_resamples=2000)
    assert table.attrs["seed"] == 7
    assert len(table) == 2 * 5
    assert table.equals(power_report(study, 0.02, seed=7, n_resamples=2000))
    assert not table.equals(power_report(study, 0.02, seed=8, n_resamples=2000))
    row = table.set_index(["classifier", "comparison"]).loc[("strong", "left_vs_control")]
    assert row["ci_low"] < -0.3 < row["ci_high"]
    assert row["half_width"] == pytest.approx(row["half_width_formula"], rel=0.15)
    # 3 emotions rendered (neutral included) × 3 sides × 3 strengths
    assert row["images_needed"] == row["faces_per_emotion_needed"] * 3 * 3 * 3
    assert row["hours_needed"] == pytest.approx(
        row["images_needed"] * (1 / 100 + 1 / 40) / 3600)
    # the noisier classifier needs more faces for the same precision
    need = table.set_index(["classifier", "comparison"])["faces_per_emotion_needed"]
    assert need[("noisy", "left_vs_control")] > need[("strong", "left_vs_control")]
    tests = effect_tests(cubes, n_flips=200)
    assert row["mean"] == pytest.approx(float(tests["omnibus_mean_diff"].sel(
        classifier="strong", comparison="left_vs_control")))

    text = write_power_report(table, tmp_path / "power.md", tmp_path / "power.csv")
    biggest = table[table["comparison"].str.endswith("_vs_control")] \
        .sort_values("faces_per_emotion_needed").iloc[-1]
    assert f"**{int(biggest['faces_per_emotion_needed'])} faces per emotion**" in text
    assert biggest["classifier"] == "noisy"
    assert (tmp_path / "power.md").read_text() == text
    assert (tmp_path / "power.csv").read_text().splitlines()[0].startswith(
        "classifier,comparison,mean,ci_low")


def test_power_report_reads_the_sharded_layout(tmp_path):
    """classify/<clf>/shard-<k>.zarr (what the workflow writes) gives the same table as one
    cube per classifier, and the seed comes from the first scenes shard."""
    cube = synthetic_cube({"left": 0.2, "right": 0.0, "control": 0.1}, n_per_emotion=12,
                          noise=0.1, seed=3)
    flat, sharded = tmp_path / "flat", tmp_path / "sharded"
    write_dataset(cube, flat / "classify" / "clf.zarr", {"classifier": "clf"})
    half = cube.sizes["face"] // 2
    for k, part in enumerate((cube.isel(face=slice(0, half)), cube.isel(face=slice(half, None)))):
        write_dataset(part, sharded / "classify" / "clf" / f"shard-{k:05d}.zarr",
                      {"classifier": "clf"})
    for root in (flat, sharded):
        write_dataset(xr.Dataset({"x": ("face", np.arange(3.0))}),
                      root / "scenes" / "shard-00000.zarr", {"config": json.dumps({"seed": 11})})
    a = power_report(flat, 0.02, n_resamples=500)
    b = power_report(sharded, 0.02, n_resamples=500)
    assert a.attrs["seed"] == b.attrs["seed"] == 11
    pd.testing.assert_frame_equal(a, b)
