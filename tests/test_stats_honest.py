"""The answer up front, told honestly: verdicts, the Hodges–Lehmann interval, laterality and
floor cells, on cubes with planted effects (:func:`facesym.stats.synthetic_cube`)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from facesym.power import omnibus_contrast
from facesym.stats import (
    effect_tests,
    hodges_lehmann,
    omnibus_table,
    summary_markdown,
    summary_table,
    synthetic_cube,
    verdicts,
)
from facesym.stats.location import EXACT_MAX_N, walsh_rank
from facesym.stats.paired import intended_probability, paired_differences
from facesym.vocab import LEFT, LEFT_VS_RIGHT, RIGHT

#: planted drops at a = 1: the symmetry contrast side − control is drop(control) − drop(side)
PLANTED = {
    "negative": {LEFT: 0.3, RIGHT: 0.3, "control": 0.2},   # −0.1 on both sides: yes
    "positive": {LEFT: 0.1, RIGHT: 0.1, "control": 0.2},   # +0.1 on both sides: opposite
    "none": {LEFT: 0.2, RIGHT: 0.2, "control": 0.2},       # 0 on both sides: no
    "lateral": {LEFT: 0.3, RIGHT: 0.1, "control": 0.2},    # −0.1 left, +0.1 right: mixed
}


@pytest.fixture(scope="module")
def planted():
    cubes = {name: synthetic_cube(drop, n_per_emotion=20, seed=5)
             for name, drop in PLANTED.items()}
    tests = effect_tests(cubes, n_flips=2000, seed=2, n_resamples=2000)
    return cubes, tests


def test_verdicts_follow_the_planted_contrasts(planted):
    _, tests = planted
    answer = verdicts(omnibus_table(tests)).set_index("classifier")
    assert answer.loc["negative", "verdict"] == "yes"
    assert answer.loc["positive", "verdict"] == "opposite"
    assert answer.loc["none", "verdict"] == "no"
    assert answer.loc["lateral", "verdict"] == "mixed"
    assert answer.loc["lateral", "left_vs_control"] == "lower"
    assert answer.loc["lateral", "right_vs_control"] == "higher"


def test_undecided_when_the_study_is_too_small():
    cube = synthetic_cube({LEFT: 0.23, RIGHT: 0.23, "control": 0.2}, n_per_emotion=6,
                          noise=0.3, seed=1)
    tests = effect_tests({"small": cube}, n_flips=2000, n_resamples=2000)
    assert verdicts(omnibus_table(tests))["verdict"].tolist() == ["undecided at this size"]


def test_summary_opens_with_one_line_per_classifier(planted):
    _, tests = planted
    table, omnibus = summary_table(tests), omnibus_table(tests)
    md = summary_markdown(table, 0.05, "holm", omnibus)
    lines = md.splitlines()
    assert lines[1] == "" and lines[6] == ""
    heads = lines[2:6]
    assert [h.split("**")[1] for h in heads] == list(PLANTED)
    assert heads[0].split("**")[3] == "yes" and heads[1].split("**")[3] == "opposite"
    assert "Laterality left − right: -0.200 [" in heads[3]  # p_L − p_R: left lost 0.2 more
    assert "Side − control: left -0.09" in heads[0] and heads[0].count("lower, p_maxT") == 2
    # the old opening that counted only the one-sided drops is gone; both directions counted
    assert "with a significant drop" not in md
    assert "| right_vs_control | 1 of 4 | 2 of 4 | 1 | 0 |" in md
    assert "primary method is the Westfall–Young max-T" in md
    assert "**Hodges–Lehmann location shift**" in md and "**mean**" in md


def test_left_vs_right_is_the_difference_of_the_one_sided_effects(planted):
    cubes, tests = planted
    d = tests["mean_diff"]
    np.testing.assert_allclose(d.sel(comparison=LEFT_VS_RIGHT),
                               d.sel(comparison=LEFT) - d.sel(comparison=RIGHT), atol=1e-7)
    omni = tests["omnibus_mean_diff"]
    np.testing.assert_allclose(omni.sel(comparison=LEFT_VS_RIGHT),
                               omni.sel(comparison=LEFT) - omni.sel(comparison=RIGHT),
                               atol=1e-7)  # float32 probabilities
    # per face too, and as the difference of the two symmetry contrasts
    cube = cubes["lateral"]
    p = intended_probability(cube["prob"], cube["emotion"])
    per_face = paired_differences(p, [LEFT, RIGHT, "left_vs_control", "right_vs_control",
                                      LEFT_VS_RIGHT])
    lateral = per_face.sel(comparison=LEFT_VS_RIGHT)
    np.testing.assert_allclose(lateral, per_face.sel(comparison=LEFT)
                               - per_face.sel(comparison=RIGHT), atol=1e-7)
    np.testing.assert_allclose(lateral, per_face.sel(comparison="left_vs_control")
                               - per_face.sel(comparison="right_vs_control"), atol=1e-7)
    assert float(omni.sel(classifier="lateral", comparison=LEFT_VS_RIGHT)) == pytest.approx(
        -0.2, abs=0.01)


def test_floor_flags_exactly_the_planted_cells():
    drop = {LEFT: 0.02, RIGHT: 0.0, "control": 0.01}
    cubes = {"sees_all": synthetic_cube(drop, seed=3),
             "blind_to_surprise": synthetic_cube(drop, seed=3,
                                                 base={"surprise": (0.01, 0.08)}),
             "blind_to_both": synthetic_cube(drop, seed=3, base={"surprise": (0.0, 0.05),
                                                                 "happiness": (0.05, 0.12)})}
    tests = effect_tests(cubes, n_flips=500, n_resamples=500, floor=0.1)
    floor = tests["floor"].all("comparison").to_series()
    assert floor.equals(tests["floor"].any("comparison").to_series())  # per classifier × emotion
    assert sorted(floor[floor].index) == [("blind_to_both", "happiness"),
                                          ("blind_to_both", "surprise"),
                                          ("blind_to_surprise", "surprise")]
    assert float(tests["mean_p0"].sel(classifier="blind_to_surprise",
                                      emotion="surprise")) < 0.1
    # the omnibus leaves floor emotions out: only happiness remains for blind_to_surprise
    n_emotions = tests["omnibus_n_emotions"].sel(comparison=LEFT).to_series().to_dict()
    assert n_emotions == {"sees_all": 2, "blind_to_surprise": 1, "blind_to_both": 0}
    happy = tests["mean_diff"].sel(classifier="blind_to_surprise", emotion="happiness")
    np.testing.assert_allclose(
        tests["omnibus_mean_diff"].sel(classifier="blind_to_surprise"), happy, atol=1e-12)
    answer = verdicts(omnibus_table(tests)).set_index("classifier")["verdict"]
    assert answer["blind_to_both"] == "not assessable"
    # a threshold of 0 flags nothing
    assert not effect_tests(cubes, n_flips=500, n_resamples=500, floor=0.0)["floor"].any()
    md = summary_markdown(summary_table(tests), 0.05, "holm", omnibus_table(tests))
    assert "Floor: 1 of 2 emotions (surprise; 2 of 4 one-sided cells), left out." in md
    assert "below 0.1 (`stats.floor`)" in md


def test_omnibus_interval_is_the_cluster_bootstrap_of_power(planted):
    cubes, tests = planted
    cube = cubes["negative"]
    p = intended_probability(cube["prob"], cube["emotion"])
    d = paired_differences(p, ["left_vs_control"]).sel(comparison="left_vs_control")
    res = omnibus_contrast(d, cube["emotion"].values, classifier="negative",
                           comparison="left_vs_control", seed=2, n_resamples=2000)
    cell = tests.sel(classifier="negative", comparison="left_vs_control")
    assert float(cell["omnibus_ci_low"]) == res["ci_low"]
    assert float(cell["omnibus_ci_high"]) == res["ci_high"]
    assert res["ci_low"] < -0.1 < res["ci_high"] < 0


def test_hodges_lehmann_interval_inverts_the_exact_wilcoxon_test():
    rng = np.random.default_rng(0)
    for _ in range(40):
        d = rng.laplace(0.05, 0.1, size=int(rng.integers(8, 25)))
        _, low, high = hodges_lehmann(d)
        rejects = sps.wilcoxon(d, method="exact").pvalue < 0.05
        assert rejects == (low > 0 or high < 0)
    # the bounds are where the test of a shifted null starts to reject
    d = rng.normal(0.0, 1.0, 15)
    shift, low, high = hodges_lehmann(d)
    for bound, step in ((low, -1e-6), (high, 1e-6)):
        assert sps.wilcoxon(d - (bound - step), method="exact").pvalue > 0.05
        assert sps.wilcoxon(d - (bound + step), method="exact").pvalue <= 0.05
    assert low < shift < high


@pytest.mark.parametrize("n", [20, 60])
def test_hodges_lehmann_interval_covers_at_the_nominal_rate(n):
    """Symmetric, heavy-tailed differences: the exact interval covers with its achieved
    confidence (≥ 95 %), the normal approximation (n > 50) with about 95 %."""
    rng = np.random.default_rng(n)
    shift, reps = -0.07, 2000 if n <= EXACT_MAX_N else 1000
    covered = 0
    for _ in range(reps):
        d = shift + 0.1 * rng.standard_t(3, size=n)
        _, low, high = hodges_lehmann(d)
        covered += low <= shift <= high
    k, method, achieved = walsh_rank(n)
    assert method == ("exact" if n <= EXACT_MAX_N else "normal")
    assert achieved == pytest.approx(0.95, abs=0.01)
    se = np.sqrt(achieved * (1 - achieved) / reps)
    assert abs(covered / reps - achieved) < 3.5 * se
