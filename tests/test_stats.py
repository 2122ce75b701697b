"""Statistics on data with known effects."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from facesym.stats import (
    correct,
    effect_tests,
    intended_probability,
    paired_test,
    summary_markdown,
    summary_table,
)
from facesym.vocab import CANONICAL_LABELS


def make_cube(rng, drop: dict[str, float], n_per: int = 20) -> xr.Dataset:
    """A classifier cube whose intended-class probability drops by ``drop[side]`` at a = 1."""
    emotions = ["happiness", "surprise", "neutral"]
    n = n_per * len(emotions)
    sides, strengths = ["left", "right", "control"], [0.0, 0.5, 1.0]
    base = rng.uniform(0.5, 0.9, size=n)
    prob = np.full((n, 3, 3, 7), np.nan, dtype=np.float32)
    emo = [emotions[i % 3] for i in range(n)]
    for s, side in enumerate(sides):
        for a, strength in enumerate(strengths):
            p = base - drop[side] * strength + rng.normal(0, 0.02, n) * strength
            p[np.array(emo) == "neutral"] = base[np.array(emo) == "neutral"]
            rest = (1 - p) / 6
            prob[:, s, a, :] = rest[:, None]
            for i, e in enumerate(emo):
                prob[i, s, a, CANONICAL_LABELS.index(e)] = p[i]
    return xr.Dataset({"prob": (("face", "side", "strength", "label"), prob),
                       "emotion": ("face", emo)},
                      coords={"face": np.arange(n), "side": sides, "strength": strengths,
                              "label": list(CANONICAL_LABELS)})


def test_intended_probability_picks_the_emotion_column(rng):
    cube = make_cube(rng, {"left": 0.2, "right": 0.2, "control": 0.1})
    p = intended_probability(cube["prob"], cube["emotion"])
    assert p.dims == ("face", "side", "strength")
    i = 1  # surprise
    assert p.values[i, 0, 0] == cube["prob"].values[i, 0, 0, CANONICAL_LABELS.index("surprise")]


def test_effects_detected_and_nulls_not(rng):
    cube = make_cube(rng, {"left": 0.3, "right": 0.0, "control": 0.0})
    tests = effect_tests({"clf": cube}, alpha=0.05, correction="holm")
    sig = tests["significant"].sel(classifier="clf")
    assert bool(sig.sel(emotion="happiness", comparison="left"))
    assert bool(sig.sel(emotion="happiness", comparison="left_vs_control"))
    assert not bool(sig.sel(emotion="happiness", comparison="right"))
    assert float(tests["mean_diff"].sel(classifier="clf", emotion="happiness",
                                        comparison="left")) == pytest.approx(-0.3, abs=0.02)
    # neutral faces do not change at all: no test, reported as such
    neutral = tests.sel(classifier="clf", emotion="neutral", comparison="left")
    assert np.isnan(float(neutral["p"])) and float(neutral["frac_zero"]) == 1.0
    assert tests.attrs["family_size"] == 2 * 6  # 2 emotions × 6 comparisons


def test_paired_test_dz_and_bca():
    d = np.array([-0.1, -0.2, -0.15, -0.05, -0.12, -0.3, -0.08, -0.11])
    row = paired_test(d, np.full(8, 0.8))
    assert row["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert row["ci_low"] < d.mean() < row["ci_high"]
    assert row["rbc"] == pytest.approx(-1.0)
    assert row["p"] == pytest.approx(2 / 2**8)  # exact: all signs negative


def test_holm_matches_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.005])
    reject, adj = correct(p, 0.05, "holm")
    expected = {4: 0.02, 0: 0.03, 2: 0.06, 1: 0.06}
    for i, v in expected.items():
        assert adj[i] == pytest.approx(v)
    assert np.isnan(adj[3]) and not reject[3]
    assert reject.tolist() == [True, False, False, False, True]


def test_summary_table_and_markdown(rng):
    cube = make_cube(rng, {"left": 0.3, "right": 0.3, "control": 0.1})
    tests = effect_tests({"a": cube, "b": cube}, 0.05, "holm")
    df = summary_table(tests)
    assert len(df) == 2 * 3 * 6
    md = summary_markdown(df, 0.05, "holm")
    # per classifier: one-sided, control, side − control and left − right counts, both ways
    assert ("| a | 4 lower, 0 higher of 4 | 2 lower, 0 higher of 2 | 4 lower, 0 higher of 4 "
            "| 0 lower, 0 higher of 2 |") in md
    assert md.count("\n| a |") == 18 + 1
    # the one-sided count never comes without the control's
    assert ("one-sided (left/right) 8 lower, 0 higher of 8; symmetric control 4 lower, "
            "0 higher of 4") in md


def test_manipulation_check_and_confusion(rng):
    from facesym.stats import confusion_matrices, manipulation_check

    cube = make_cube(rng, {"left": 0.3, "right": 0.3, "control": 0.1})
    table = manipulation_check({"clf": cube})
    # make_cube puts ≥ 0.5 on the intended class at a = 0: everything is recognised
    assert (table["recognition_rate"] == 1.0).all()
    assert set(table["emotion"]) == {"happiness", "surprise", "neutral", "all"}
    conf = confusion_matrices({"clf": cube})
    np.testing.assert_allclose(conf.sum("predicted").values, 1.0)
    assert float(conf.sel(classifier="clf", emotion="surprise", predicted="surprise")) == 1.0


def test_headline_counts_signs(rng):
    from facesym.stats import headline_counts

    cube = make_cube(rng, {"left": 0.3, "right": 0.0, "control": 0.0})
    head = headline_counts(summary_table(effect_tests({"c": cube}, 0.05, "holm")))
    row = head.set_index("comparison")
    assert row.loc["left", "lower"] == 2 and row.loc["right", "lower"] == 0
    assert row.loc["left_vs_control", "lower"] == 2 and row.loc["left", "tested"] == 2


def test_maxt_and_omnibus_in_effect_tests(rng):
    from facesym.stats import omnibus_table

    cube = make_cube(rng, {"left": 0.3, "right": 0.0, "control": 0.0})
    tests = effect_tests({"a": cube, "b": cube}, 0.05, "holm", n_flips=2000, seed=3)
    left = tests.sel(classifier="a", emotion="happiness", comparison="left")
    assert float(left["p_maxT"]) < 0.05 and float(left["p_maxT"]) >= float(left["p_perm"])
    right = tests.sel(classifier="a", emotion="happiness", comparison="right")
    assert float(right["p_maxT"]) > 0.05
    assert tests.attrs["n_flips"] == 2000
    omni = omnibus_table(tests).set_index(["classifier", "comparison"])
    assert bool(omni.loc[("a", "left"), "significantly_lower"])
    assert not bool(omni.loc[("a", "right"), "significantly_lower"])
    assert omni.loc[("a", "left"), "mean_diff"] == pytest.approx(-0.3, abs=0.02)


def test_dose_response_tables(rng):
    from facesym.stats import dose_response_tables

    cube = make_cube(rng, {"left": 0.3, "right": 0.0, "control": 0.1})
    deriv, ols = dose_response_tables({"a": cube}, [0.0, 1.0], 0.05)
    row = deriv[(deriv.side == "left") & (deriv.emotion == "happiness") & (deriv.point == 1.0)]
    assert row["mean"].iloc[0] == pytest.approx(-0.3, abs=0.03)
    assert {"classifier", "p_wilcoxon_holm", "significant"} <= set(deriv.columns)
    slope = ols.set_index("term").loc[lambda t: t.index.str.contains("left"), "coef"]
    assert slope.iloc[0] == pytest.approx(-0.2, abs=0.05)  # left slope − control slope


def test_dose_response_on_a_two_point_grid(rng):
    from facesym.stats import dose_response_tables

    cube = make_cube(rng, {"left": 0.3, "right": 0.0, "control": 0.1}).sel(strength=[0.0, 1.0])
    deriv, _ = dose_response_tables({"a": cube}, [0.0, 0.5, 1.0], 0.05)
    row = deriv[(deriv.side == "left") & (deriv.emotion == "happiness") & (deriv.point == 0.5)]
    assert row["mean"].iloc[0] == pytest.approx(-0.3, abs=0.03)
