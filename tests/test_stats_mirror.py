"""Mirror composites in the test family: each against the original, and against each other."""

from __future__ import annotations

import numpy as np

from facesym.stats import effect_tests, summary_markdown, summary_table
from facesym.stats.synthetic import synthetic_cube
from facesym.vocab import MIRROR_LEFT, MIRROR_LEFT_VS_RIGHT, MIRROR_RIGHT, comparisons_for

SIDES = ("left", "right", "control", MIRROR_LEFT, MIRROR_RIGHT)


def test_mirror_comparisons_join_the_family() -> None:
    assert comparisons_for(SIDES)[-1] == MIRROR_LEFT_VS_RIGHT
    cube = synthetic_cube({"left": 0.3, "right": 0.3, "control": 0.15, MIRROR_LEFT: 0.2,
                           MIRROR_RIGHT: 0.0}, n_per_emotion=16, sides=SIDES, seed=3)
    tests = effect_tests({"m": cube}, n_flips=2000, seed=1)
    comparisons = list(tests["comparison"].values)
    assert {MIRROR_LEFT, MIRROR_RIGHT, MIRROR_LEFT_VS_RIGHT} <= set(comparisons)
    assert "mirror_left_vs_control" not in comparisons
    mean = tests["mean_diff"].sel(classifier="m", emotion="happiness")
    # composite vs original: the planted drop; the two composites differ by the planted 0.2
    assert np.isclose(float(mean.sel(comparison=MIRROR_LEFT)), -0.2, atol=0.03)
    assert abs(float(mean.sel(comparison=MIRROR_RIGHT))) < 0.03
    assert np.isclose(float(mean.sel(comparison=MIRROR_LEFT_VS_RIGHT)), -0.2, atol=0.03)
    table = summary_table(tests)
    assert MIRROR_LEFT_VS_RIGHT in set(table["comparison"])
    assert "mirror_left" in summary_markdown(table, 0.05, "holm")
